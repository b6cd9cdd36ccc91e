"""Routes that answer what no feature route does, in the service's error shape.

API Gateway would otherwise answer an unknown path with its own 403
"Missing Authentication Token", and an unsupported method likewise.
"""

from __future__ import annotations

from chalice import Chalice

from chalicelib.errors import MethodNotAllowed, NotFound

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def install_fallback_routes(app: Chalice) -> None:
    """Call last: a 405 for every other method of each known path, a 404 for the rest."""
    for path, entries in list(app.routes.items()):
        allowed = sorted(entries)
        missing = [m for m in HTTP_METHODS if m not in entries]
        if missing:
            app.route(path, methods=missing, name=_name("method_not_allowed", path))(_method_not_allowed(allowed))

    @app.route("/{proxy+}", methods=list(HTTP_METHODS))
    def not_found() -> None:
        raise NotFound("no such resource")


def _name(prefix: str, path: str) -> str:
    return prefix + "".join(ch if ch.isalnum() else "_" for ch in path)


def _method_not_allowed(allowed: list[str]):  # type: ignore[no-untyped-def]
    def handler(**_: str) -> None:
        raise MethodNotAllowed(f"method not allowed; use {', '.join(allowed)}")

    return handler
