"""A tiny HTTP server standing in for livestats in the client's unit tests: it records every request and answers
each with what the test's `answer` function returns."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # as on the request line: percent-encoded, with the query
    headers: dict[str, str]  # names lowercased
    body: Any  # parsed JSON, or None
    at: float  # time.monotonic() when it arrived


Answer = tuple[int, dict[str, str], Any]


def accept_all(request: Received) -> Answer:
    """POST /events' 202 for every event of the request."""
    return 202, {}, {"accepted": len(request.body["events"]), "rejected": []}


class FakeService:
    def __init__(self, answer: Callable[[Received], Answer] = accept_all) -> None:
        self.answer = answer
        self.received: list[Received] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = Received(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                    time.monotonic(),
                )
                with fake._lock:
                    fake.received.append(request)
                status, headers, body = fake.answer(request)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for_requests(self, n: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.requests()) >= n:
                return self.requests()
            time.sleep(0.01)
        raise AssertionError(f"{len(self.requests())} requests within {timeout_s} s, not {n}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeService:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
