"""The dev server's HTTP layer (`make run`): Chalice's request handler, kept inside the service's contract.

What never reaches the app is answered here in the service's JSON error shape, with a generated X-Request-Id: a
malformed request line, an unknown method, a body that is truncated, chunked or too large (see docs/design.md, "Its
HTTP layer").
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import chalice.local
from chalice.app import Chalice
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalGatewayException

from chalicelib.edge import routing, web
from chalicelib.edge.errors import error_body

# The dev server's logger, whichever of its modules logs.
log = logging.getLogger("devtools.devserver")

# A client that stops sending mid-body must not hold a server thread forever.
BODY_READ_TIMEOUT_S = 30.0
MAX_MESSAGE_CHARS = 200
# method SP request-target SP HTTP-version, nothing else: BaseHTTPRequestHandler splits on any whitespace,
# so a tab or a control character would otherwise pass. A request-target is visible ASCII (RFC 9112): other bytes
# must be percent-encoded, and the standard library would read raw UTF-8 as Latin-1.
_REQUEST_LINE = re.compile(rb"[!-~]+ [!-~]+ HTTP/[0-9]\.[0-9]\r?\n")
DIGITS = re.compile(r"[0-9]+")
# BaseHTTPRequestHandler's own rejections as (status, code). No 5xx: a 5xx would mean a bug in this service.
_STDLIB_REJECTIONS: dict[int, tuple[int, str]] = {
    HTTPStatus.BAD_REQUEST: (400, "bad_request"),
    HTTPStatus.REQUEST_URI_TOO_LONG: (414, "uri_too_long"),
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: (431, "headers_too_large"),
    HTTPStatus.NOT_IMPLEMENTED: (405, "method_not_allowed"),  # no do_<METHOD>: TRACE, CONNECT, made-up ones
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: (400, "unsupported_http_version"),
}
_GATEWAY_CODES = {401: "unauthorized", 403: "forbidden", 500: "internal_error"}


class RequestRejected(Exception):
    """A request this layer answers itself, in the service's error shape, without calling the app."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


class DevRequestHandler(ChaliceRequestHandler):
    """Chalice's request handler with the HTTP layer kept inside the service's contract.

    Whatever the app never sees (an unparsable request, an unknown method, a body that is truncated, chunked or
    too large) is answered here as `{"error": {"code", "message"}}` JSON with an X-Request-Id, and a body is
    handed to the app only when it arrived whole. HEAD responses carry the headers and never a body.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: the app logs every request it answers (its JSON access line), and this layer logs each answer it
        makes itself (log_error). http.server's own line would be a second line for the same request."""

    # socketserver sets TCP_NODELAY for us. Without it, a keep-alive client stalls ~40 ms per request
    # (headers and body go out in separate small writes: Nagle's algorithm meets delayed ACK).
    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Chalice, config: Config) -> None:
        self.app_object = app_object  # before super().__init__, which handles the whole connection
        super().__init__(request, client_address, server, app_object, config)

    # --- what BaseHTTPRequestHandler rejects

    def parse_request(self) -> bool:
        line = self.raw_requestline  # type: ignore[attr-defined]  # set by handle_one_request; typeshed omits it
        if line.strip() and not _REQUEST_LINE.fullmatch(line):
            # None, as BaseHTTPRequestHandler.parse_request itself starts (typeshed says str)
            self.command, self.requestline = None, str(line, "iso-8859-1").rstrip("\r\n")  # type: ignore[assignment]
            self.send_error(HTTPStatus.BAD_REQUEST, f"malformed request line {self.requestline!r}")
            return False
        return bool(super().parse_request())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """BaseHTTPRequestHandler's rejections, as JSON instead of its HTML page; the connection closes."""
        status, error_code = _STDLIB_REJECTIONS.get(code, (400, "bad_request"))
        headers = {}
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            allowed = self._allowed_methods()
            text = f"method {self.command} not allowed; use {', '.join(allowed)}"
            headers["Allow"] = ", ".join(allowed)
        else:
            text = message or HTTPStatus(code).phrase
            text = f"{text}: {explain}" if explain else text
        self.log_error("code %d, message %s", status, text)
        # A request line that never parsed leaves request_version at HTTP/0.9, which suppresses the status line.
        self.request_version = "HTTP/1.1"
        self._send_json_error(status, error_code, text, headers)

    def handle_expect_100(self) -> bool:
        # Refuse an unacceptable body before the client sends it.
        try:
            self._declared_body_length()
        except RequestRejected as exc:
            self._send_rejection(exc)
            return False
        return bool(super().handle_expect_100())

    # --- requests the app would get

    def _generic_handle(self) -> None:
        try:
            if self.command == "OPTIONS":
                # For a route without an OPTIONS view, Chalice's gateway would answer 200 with an empty body.
                allowed = self._allowed_methods()
                if "OPTIONS" not in allowed:
                    message = f"method OPTIONS not allowed; use {', '.join(allowed)}"
                    raise RequestRejected(405, "method_not_allowed", message, {"Allow": ", ".join(allowed)})
            super()._generic_handle()  # calls _parse_payload first: a RequestRejected means the app was not called
        except RequestRejected as exc:
            self._send_rejection(exc)
        except OSError:
            raise  # the client went away mid-response: nothing more to send
        except Exception:
            log.exception("request failed in the local gateway")
            self._send_json_error(500, "internal_error", "An internal error occurred.")

    # The parent bound its own _generic_handle to these names; bind ours.
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _generic_handle

    def _parse_payload(self) -> tuple[dict[str, Any], bytes | None]:
        length = self._declared_body_length()
        body = self._read_body(length) if length else None
        return dict(self.headers), body

    def _declared_body_length(self) -> int:
        if "Transfer-Encoding" in self.headers:
            raise RequestRejected(
                411, "length_required", "chunked request bodies are not supported; send a Content-Length"
            )
        values = [v.strip() for v in self.headers.get_all("Content-Length", [])]
        if not values:
            return 0
        if len(set(values)) != 1 or not DIGITS.fullmatch(values[0]):
            raise RequestRejected(400, "bad_request", f"invalid Content-Length {', '.join(values)!r}")
        length = int(values[0])
        if length > web.MAX_BODY_BYTES:  # the app would refuse it: refuse it unread, as the app words it
            too_large = web.body_too_large()
            raise RequestRejected(too_large.status, too_large.code, too_large.message)
        return length

    def _read_body(self, length: int) -> bytes:
        self.connection.settimeout(BODY_READ_TIMEOUT_S)
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise RequestRejected(
                400, "incomplete_body", f"the request body did not arrive within {BODY_READ_TIMEOUT_S:.0f} s"
            ) from None
        finally:
            self.connection.settimeout(self.timeout)
        if len(body) < length:  # the client closed early: never apply part of a request
            raise RequestRejected(
                400, "incomplete_body", f"the request body ended after {len(body)} of {length} bytes (Content-Length)"
            )
        return body

    def _allowed_methods(self) -> list[str]:
        """The methods the app answers for this path, as its own 405s list them (all if it matches no route)."""
        try:
            # chalice.local.RouteMatcher is looked up now: devtools.local_routes may have replaced it.
            route = chalice.local.RouteMatcher(list(self.app_object.routes)).match_route(self.path)
        except ValueError:  # chalice's matcher raises where devtools.local_routes' returns None
            route = None
        if route is None:
            return [m for m in routing.HTTP_METHODS if m != "OPTIONS"]
        return routing.allowed_methods(self.app_object, route.route)

    # --- responses

    def send_response(self, code: int, message: str | None = None) -> None:
        """BaseHTTPRequestHandler's, without its `Server: BaseHTTP/0.6 Python/3.x.y` header: the exact server and
        Python version help only whoever looks for a known flaw in them."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _send_error_response(self, error: LocalGatewayException) -> None:
        """The local gateway's own refusals (authorizers, no route) in the service's shape."""
        try:
            message = str(json.loads(error.body or b"{}").get("message") or "")
        except (ValueError, AttributeError):
            message = ""
        status = error.CODE
        self._send_json_error(
            status,
            _GATEWAY_CODES.get(status, "error"),
            message or HTTPStatus(status).phrase,
            {k: v for k, v in error.headers.items() if k.lower() not in ("content-type", "content-length")},
            close=False,
        )

    def _send_http_response_with_body(self, code: int, headers: dict[str, Any], body: str | bytes) -> None:
        payload = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self._send_headers(headers)
        if self.command != "HEAD":  # HEAD: the GET's headers (Content-Length included), never a body
            self.wfile.write(payload)

    def _send_headers(self, headers: dict[str, Any]) -> None:
        if not any(name.lower() == "x-request-id" for name in headers):
            # Imported here, not at the top: the project's code loads only after its stage's environment is set.
            from chalicelib.process.request_context import new_request_id

            headers = {**headers, "X-Request-Id": new_request_id()}
        super()._send_headers(headers)

    def _send_rejection(self, exc: RequestRejected) -> None:
        self.log_error("code %d, message %s", exc.status, exc.message)
        # After a truncated body the client may be gone already; the connection closes either way.
        with contextlib.suppress(OSError):
            self._send_json_error(exc.status, exc.code, exc.message, exc.headers)

    def _send_json_error(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None, *, close: bool = True
    ) -> None:
        """An answer from this layer; `close` (the default) when the rest of the request was not read."""
        body = json.dumps(error_body(code, message[:MAX_MESSAGE_CHARS]), separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")  # as the app's own answers (middleware.error_shape)
        if close:
            self.send_header("Connection", "close")
        self._send_headers(dict(headers or {}))
        if self.command != "HEAD":
            self.wfile.write(body)
