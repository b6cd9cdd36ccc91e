"""The dev server's HTTP layer over raw sockets: what never reaches the app still answers in the JSON error shape.

The server is `make run`'s handler (dev_http.DevRequestHandler) on a free port, in this process, on the test
backend. Raw sockets, because http.client refuses to send most of these requests.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.local import LocalDevServer, LocalGateway

from chalicelib.edge import web
from chalicelib.edge.errors import error_body
from devtools.dev_http import DevRequestHandler

TIMEOUT_S = 10.0  # a bound for failures: a server that waits for bytes never sent fails here


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    closed: bool  # the server closed the connection after this response

    def error(self) -> dict[str, Any]:
        """The error in the service's shape (and the checks every answer of this layer passes)."""
        assert self.headers["content-type"] == "application/json"
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", self.headers["x-request-id"]
        )
        body = json.loads(self.body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
        return dict(body["error"])


def read_response(sock: socket.socket, head: bool = False) -> Response:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a whole response: {data!r}"
        data += chunk
    header_block, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = 0 if head else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    body, extra = rest[:length], rest[length:]
    closed = False
    if headers.get("connection", "").lower() == "close":
        extra += _read_to_end(sock)
        closed = True
    assert not extra, f"bytes after the response: {extra[:100]!r}"
    return Response(int(status_line.split()[1]), headers, body, closed)


def _read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.fixture
def port(api: Any, chalice_config: Any) -> Iterator[int]:
    server = LocalDevServer(chalice_config.chalice_app, chalice_config, "127.0.0.1", 0, handler_cls=DevRequestHandler)
    thread = threading.Thread(target=server.server.serve_forever, name="devserver-http-test", daemon=True)
    thread.start()
    try:
        yield server.server.server_address[1]
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(5)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    return sock


def exchange(port: int, request: bytes, *, shut_write: bool = False, head: bool = False) -> Response:
    with connect(port) as sock:
        sock.sendall(request)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        return read_response(sock, head=head)


def stream_count(port: int, stream: str) -> int:
    response = exchange(port, f"GET /streams/{stream} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    assert response.status == 200, response.body
    return int(json.loads(response.body)["count"])


def post_head(stream: str, *headers: str) -> bytes:
    lines = [f"POST /streams/{stream}/values HTTP/1.1", "Host: t", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        pytest.param(b"GET\t/ HTTP/1.1\r\nHost: t\r\n\r\n", 400, "bad_request", id="tab-separator"),
        pytest.param(b"GET /a\tb HTTP/1.1\r\nHost: t\r\n\r\n", 400, "bad_request", id="tab-in-target"),
        pytest.param(b"GET /a\x01b HTTP/1.1\r\nHost: t\r\n\r\n", 400, "bad_request", id="control-character"),
        pytest.param(b"GET /api/\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", 400, "bad_request", id="raw-utf-8-in-target"),
        pytest.param(b"GET /api/\xff HTTP/1.1\r\nHost: t\r\n\r\n", 400, "bad_request", id="raw-byte-in-target"),
        pytest.param(b"GET /a b HTTP/1.1\r\n\r\n", 400, "bad_request", id="four-words"),
        pytest.param(b"GET /\r\n", 400, "bad_request", id="http-0.9"),
        pytest.param(b"GET / HTTX/1.1\r\n\r\n", 400, "bad_request", id="bad-version"),
        pytest.param(b"GET / HTTP/2.0\r\n\r\n", 400, "unsupported_http_version", id="http-2"),
        pytest.param(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long", id="url-over-64k"),
        pytest.param(
            b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431, "headers_too_large", id="header-100k"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n",
            431,
            "headers_too_large",
            id="101-headers",
        ),
    ],
)
def test_unparsable_requests_get_json_and_a_closed_connection(
    port: int, request_bytes: bytes, status: int, code: str
) -> None:
    response = exchange(port, request_bytes)
    assert response.status == status, response.body
    assert response.error()["code"] == code
    assert response.closed


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "BREW", "PROPFIND"])
def test_methods_the_app_never_routes_get_405_with_allow(port: int, method: str) -> None:
    response = exchange(port, f"{method} /stats HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert response.status == 405  # not 501: a 5xx would say this service is broken
    assert response.error()["code"] == "method_not_allowed"
    # The route's own Allow, as the app's 405 for a method it routes (DELETE) gives it.
    app_answer = exchange(port, b"DELETE /stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert app_answer.status == 405
    assert response.headers["allow"] == app_answer.headers["allow"] == "GET, HEAD, OPTIONS"
    # The one error shape, serialised as the app serialises it.
    assert response.body == json.dumps(json.loads(response.body), separators=(",", ":")).encode()


def test_options_is_never_an_empty_200(port: int) -> None:
    # Chalice's local gateway answers OPTIONS on a route without an OPTIONS view with 200 and no body.
    response = exchange(port, b"OPTIONS /streams/s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert "GET" in response.headers["allow"]
    if response.status == 405:
        assert response.error()["code"] == "method_not_allowed"
    else:  # the app answers OPTIONS itself
        assert response.status in (200, 204), response.body


def test_truncated_body_is_never_applied(port: int) -> None:
    # The client promises 100 bytes, sends 12 and closes its side. The 12 are valid JSON on their own, so
    # only the length check keeps this partial request from the app.
    response = exchange(port, post_head("x", "Content-Length: 100") + b'{"value": 1}', shut_write=True)
    assert response.status == 400 and response.error()["code"] == "incomplete_body"
    assert response.closed
    assert stream_count(port, "x") == 0


@pytest.mark.parametrize("length", ["-1", "abc", "1, 2", "+5", "1e3", ""])
def test_malformed_content_length_is_400(port: int, length: str) -> None:
    response = exchange(port, post_head("x", f"Content-Length: {length}") + b'{"value": 1}')
    assert response.status == 400 and response.error()["code"] == "bad_request"
    assert response.closed
    assert stream_count(port, "x") == 0


def test_conflicting_content_lengths_are_400(port: int) -> None:
    response = exchange(port, post_head("x", "Content-Length: 12", "Content-Length: 13") + b'{"value": 1}')
    assert response.status == 400 and response.error()["code"] == "bad_request"
    assert stream_count(port, "x") == 0


def test_chunked_body_is_refused_not_dropped(port: int) -> None:
    chunked = b'c\r\n{"value": 1}\r\n0\r\n\r\n'
    response = exchange(port, post_head("x", "Transfer-Encoding: chunked") + chunked)
    assert response.status == 411 and response.error()["code"] == "length_required"
    assert response.closed
    assert stream_count(port, "x") == 0


@pytest.mark.parametrize("expect", [False, True])
def test_body_over_the_service_limit_is_413_without_reading_it(port: int, expect: bool) -> None:
    # Only the headers are sent: an answer at all proves the server did not wait for the body.
    headers = [f"Content-Length: {web.MAX_BODY_BYTES + 1}", *(["Expect: 100-continue"] if expect else [])]
    response = exchange(port, post_head("x", *headers))
    assert (
        response.status == 413
        and response.error() == error_body("body_too_large", web.body_too_large().message)["error"]
    )
    assert response.closed
    assert stream_count(port, "x") == 0


def test_whole_body_is_applied_and_the_connection_kept(port: int) -> None:
    body = b'{"value": 4}'
    with connect(port) as sock:
        for expected_count in (1, 2):
            sock.sendall(post_head("y", f"Content-Length: {len(body)}") + body)
            response = read_response(sock)
            assert response.status == 200, response.body
            assert json.loads(response.body)["count"] == expected_count
            assert not response.closed
            assert re.fullmatch(
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", response.headers["x-request-id"]
            )


def test_head_writes_headers_and_never_a_body(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"HEAD /streams/s HTTP/1.1\r\nHost: t\r\n\r\n")
        head = read_response(sock, head=True)
        assert "x-request-id" in head.headers
        # A body written after the HEAD's headers would be read here as the start of the next response.
        sock.sendall(b"GET /streams/s HTTP/1.1\r\nHost: t\r\n\r\n")
        get = read_response(sock)
        assert get.status == 200 and json.loads(get.body)["stream"] == "s"


def test_head_error_from_this_layer_has_no_body(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(post_head("x", "Transfer-Encoding: chunked").replace(b"POST", b"HEAD", 1))
        response = read_response(sock, head=True)
        assert response.status == 411 and int(response.headers["content-length"]) > 0
        assert _read_to_end(sock) == b""  # headers only, then the connection closes


def test_a_crash_below_the_app_is_a_json_500(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("gateway on fire")

    monkeypatch.setattr(LocalGateway, "handle_request", broken)
    response = exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.status == 500 and response.error()["code"] == "internal_error"
    assert b"on fire" not in response.body


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /streams/s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", id="the-app"),
        pytest.param(b"GET /a\tb HTTP/1.1\r\nHost: t\r\n\r\n", id="this-layer"),
    ],
)
def test_answers_do_not_name_the_server_and_json_is_nosniff(port: int, request_bytes: bytes) -> None:
    # BaseHTTPRequestHandler would say `Server: BaseHTTP/0.6 Python/3.11.7`: its exact version, to anyone.
    response = exchange(port, request_bytes)
    assert "server" not in response.headers and "date" in response.headers
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_percent_encoded_path_parameter_reaches_the_app_decoded(port: int) -> None:
    body = b'{"value": 5}'
    head = f"POST /metric/a:b HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    assert exchange(port, head.encode() + b"\r\nConnection: close\r\n\r\n" + body).status == 200
    answer = exchange(port, b"GET /metric/a%3Ab/sum HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert answer.status == 200, answer.body
    assert json.loads(answer.body) == {"value": 5}
