"""Counting a website's page views: the tracking snippet (count.js, shipped beside this module) and its pixel.

No AWS here: the route (chalicelib/hits/api.py) counts the hit as any other.
"""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path

# A transparent 1×1 GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_TYPE = "image/gif"
# The Accept values that take the GIF: Chalice answers a binary body only to an Accept that names a binary type
# exactly or */* (chalice.app._validate_binary_response), and API Gateway decodes it for the same (image/* covers a
# browser's image/avif-first list: chalicelib/edge/chalice_app.py).
_IMAGE_TYPES = frozenset({"*/*", "image/*", PIXEL_TYPE})


@cache
def snippet() -> str:
    return (Path(__file__).with_name("count.js")).read_text(encoding="utf-8")


def accepts_pixel(accept: str | None) -> bool:
    """Whether a request's Accept header takes the GIF (else the pixel answers 204: counted, no body)."""
    if accept is None:
        return False
    types = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return bool(types & _IMAGE_TYPES)
