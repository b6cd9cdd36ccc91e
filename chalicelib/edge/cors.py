"""Cross-origin requests from the web origins a stage lists (settings `cors_origins`, CORS_ORIGINS).

A browser lets a page read another origin's answer only when the answer names the page's origin; before a request
with a token or a JSON body it asks first (a preflight: OPTIONS with Access-Control-Request-Method). Both are
answered here, for every route and every answer (errors, 401 and 503 included, so that a page can read why), and
only for a listed origin, named alone: never `*`, and never Access-Control-Allow-Credentials (the service reads
bearer tokens, not cookies). The same middleware runs in Lambda behind API Gateway and in the dev server; answers
that API Gateway or the dev server give without the function (their own 403, 413, 429, 504) carry none.
"""

from __future__ import annotations

from collections.abc import Callable

from chalice import Response
from chalice.app import Request

from chalicelib.process import settings

# The request headers a page may send: those the service reads.
ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-None-Match, X-Response-Token"
# The answer headers a page may read beyond the CORS-safelisted ones (Content-Type, Cache-Control, ...).
EXPOSED_HEADERS = "ETag, Idempotent-Replayed, Location, Retry-After, WWW-Authenticate, X-Request-Id, X-Response-Token"
# How long a browser may reuse a preflight's answer.
PREFLIGHT_MAX_AGE_S = 600


def cross_origin(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Middleware (outside the error shape, so errors carry it too)."""
    response = get_response(event)
    allowed = settings.get().cors_origins
    if not allowed:
        return response
    headers = dict(response.headers)
    # Answers differ by Origin: a shared cache must not hand one origin's answer to another.
    vary = headers.get("Vary")
    headers["Vary"] = f"{vary}, Origin" if isinstance(vary, str) and vary else "Origin"
    origin = event.headers.get("origin")
    if origin in allowed:
        headers["Access-Control-Allow-Origin"] = origin
        if event.method == "OPTIONS" and "access-control-request-method" in event.headers:
            # The route's own methods (its OPTIONS answer's Allow): the browser refuses any other.
            headers["Access-Control-Allow-Methods"] = headers.get("Allow", "")
            headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
        else:
            headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    response.headers = headers
    return response
