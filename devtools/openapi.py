"""`make openapi`: print the OpenAPI document of the app (`python -m devtools.openapi > openapi.json`).

Rendered from outside the library: chalicelib/edge/openapi.py takes the app as an argument and never imports it.
"""

from __future__ import annotations

from app import app
from chalicelib.edge import openapi

if __name__ == "__main__":
    print(openapi.render(app), end="")
