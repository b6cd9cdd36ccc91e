"""HTML pages and their assets, shipped with the function (no CDN)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated

from chalice import Response
from pydantic import Field

from chalicelib.contract import Strict

_DIR = Path(__file__).parent
_TYPES = {".html": "text/html; charset=utf-8", ".js": "application/javascript", ".css": "text/css"}


@cache
def _read(name: str) -> str:
    return (_DIR / name).read_text(encoding="utf-8")


# Files a browser may fetch from /assets/{name}: the pages' scripts and stylesheets.
ASSETS = frozenset(p.name for p in _DIR.iterdir() if p.suffix in (".js", ".css"))


class AssetPath(Strict):
    name: Annotated[str, Field(json_schema_extra={"enum": sorted(ASSETS)})]


# Pages load only their own scripts and styles (no inline code), talk only to this origin, and may not be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def page(name: str) -> Response:
    """A file from this folder, e.g. page("streams.html")."""
    return Response(
        body=_read(name),
        status_code=200,
        headers={"Content-Type": _TYPES[Path(name).suffix], "Cache-Control": "no-cache", **SECURITY_HEADERS},
    )
