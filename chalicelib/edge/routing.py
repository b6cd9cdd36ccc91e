"""Routes that answer what no feature route does, in the service's error shape.

API Gateway would otherwise answer an unknown path with its own 403
"Missing Authentication Token", and an unsupported method likewise.

Every path also answers HEAD as its GET would, without a body (unless its GET changes state, see
`changes_state`), and OPTIONS with 204 and an `Allow` header; every 405 carries `Allow`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Chalice, Response

from chalicelib.edge.errors import MethodNotAllowed, NotFound

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_CHANGES_STATE = "_changes_state_on_get"
_REFUSES = "_refuses_method"


def changes_state(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a GET view that writes (a hit counter): HEAD, a safe method, must not run it, so it gets a 405."""
    setattr(view, _CHANGES_STATE, True)
    return view


def is_state_changing_get(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, _CHANGES_STATE, False))


def install_fallback_routes(app: Chalice) -> None:
    """Call last: HEAD and OPTIONS, a 405 for every other method of each known path, a 404 for the rest."""
    for path, entries in list(app.routes.items()):
        methods = set(entries) | {"OPTIONS"}
        get = entries.get("GET")
        if get is not None and "HEAD" not in entries and not is_state_changing_get(get.view_function):
            # The GET view itself, so HEAD is checked exactly as GET (its authorization policy is the view's);
            # middleware.error_shape sends a HEAD's answer without its body.
            app.route(path, methods=["HEAD"], name=_name("head", path))(get.view_function)
            methods.add("HEAD")
        allow = ", ".join(m for m in HTTP_METHODS if m in methods)
        if "OPTIONS" not in entries:
            app.route(path, methods=["OPTIONS"], name=_name("options", path))(_options(allow))
        missing = [m for m in HTTP_METHODS if m not in methods]
        if missing:
            app.route(path, methods=missing, name=_name("method_not_allowed", path))(_method_not_allowed(allow))

    @app.route("/{proxy+}", methods=list(HTTP_METHODS))
    def not_found() -> None:
        raise NotFound("no such resource")


def allowed_methods(app: Chalice, path: str) -> list[str]:
    """The methods route `path` answers (not with a 405), in HTTP_METHODS order: what its `Allow` lists."""
    entries = app.routes[path]
    return [m for m in HTTP_METHODS if m in entries and not getattr(entries[m].view_function, _REFUSES, False)]


def _name(prefix: str, path: str) -> str:
    return prefix + "".join(ch if ch.isalnum() else "_" for ch in path)


def _options(allow: str) -> Callable[..., Response]:
    def handler(**_: str) -> Response:
        return Response(body="", status_code=204, headers={"Allow": allow})

    return handler


def _method_not_allowed(allow: str) -> Callable[..., None]:
    def handler(**_: str) -> None:
        raise MethodNotAllowed(f"method not allowed; use {allow}", headers={"Allow": allow})

    setattr(handler, _REFUSES, True)
    return handler
