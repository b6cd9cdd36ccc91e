"""HTML pages and their assets, shipped with the function (no CDN).

Every URL in them is relative (to the page in HTML, to the service's root in scripts), so the pages work wherever
the service is mounted: at a host's root, under API Gateway's stage (`/api/`) or a custom domain's base path.
Each page names an empty icon (`data:,`), or the browser would ask for /favicon.ico at the host's root, which is
outside the service when it is mounted under a prefix.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from chalice import Response
from pydantic import Field

from chalicelib.edge.contract import Strict
from chalicelib.process import request_context

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
    """A file from this folder, e.g. page("streams.html"); a page asked for in its other form is redirected."""
    if name.endswith(".html"):
        location = _own_form()
        if location is not None:
            return Response(body="", status_code=308, headers={"Location": location, **SECURITY_HEADERS})
    return Response(
        body=_read(name),
        status_code=200,
        headers={"Content-Type": _TYPES[Path(name).suffix], "Cache-Control": "no-cache", **SECURITY_HEADERS},
    )


def own_form(route: str, requested: str) -> str | None:
    """The relative Location of the page's own URL when `requested` (the path the browser asked for, prefix
    included) is its other form, else None.

    A page's relative URLs are written for one form: the root with a trailing slash (`/api/`), every other page
    without (`/api/ui/hits`). API Gateway routes both forms to the same view (`/api` reaches `/`, `/ui/hits/`
    reaches `/ui/hits`), where `assets/x` would resolve outside the service (`/assets/x`) or one level too deep.
    The Location is relative, so it needs no knowledge of the prefix.
    """
    if route == "/":
        last = requested.rsplit("/", 1)[-1]
        return f"./{last}/" if last else None  # "./" keeps a segment holding ":" from reading as a scheme
    if requested.endswith("/") and requested.rstrip("/").endswith(route):
        return "../" + route.rsplit("/", 1)[-1]
    return None


def _own_form() -> str | None:
    request = request_context.current_request()
    context = request.context or {}
    location = own_form(context.get("resourcePath", ""), context.get("path", ""))
    if location is not None and request.query_params:
        params = request.query_params
        location += "?" + urlencode([(key, value) for key in params for value in params.getlist(key)])
    return location
