"""TCP proxies that lose answers: the request reaches the server (and is applied), the answer never reaches the
client, whose connection is closed. That is a timeout's worst case for a write, the one a client resends.

`AnswerLosingProxy` forwards every request and asks `loses(request, answer)` whether to drop the answer;
`LossyProxy` drops DynamoDB answers by operation. The Python client's tests drop `POST /events` answers with it too
(clients/python/tests/test_client_devserver.py)."""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self


class AnswerLosingProxy:
    """Forwards 127.0.0.1:{port} to 127.0.0.1:{upstream_port}, request by request; an answer `loses` picks never
    reaches the client."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def loses(self, request: bytes, answer: bytes) -> bool:
        """Whether the answer to this request (applied upstream) is lost. Called under no lock; none is lost here."""
        return False

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """One client connection: each request goes upstream whole, then its answer comes back (or is lost)."""
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        try:
            while True:
                request = read_message(client)
                if not request:
                    return
                upstream.sendall(request)
                answer = read_message(upstream)
                if self.loses(request, answer):
                    return  # the server applied it; the client never hears
                client.sendall(answer)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._closing = True
        self.server.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class LossyProxy(AnswerLosingProxy):
    """In front of DynamoDB Local: `lose(target, n)` loses the answers to the next n requests whose X-Amz-Target
    ends with `target` (e.g. "TransactWriteItems")."""

    def __init__(self, upstream_port: int) -> None:
        self._losing: dict[str, int] = {}
        self.lost = 0
        super().__init__(upstream_port)

    @property
    def endpoint_url(self) -> str:
        return self.url

    def lose(self, target: str, n: int = 1) -> None:
        with self._lock:
            self._losing[target] = n

    def loses(self, request: bytes, answer: bytes) -> bool:
        with self._lock:
            for target, n in self._losing.items():
                if n > 0 and f".{target}".encode() in request:
                    self._losing[target] = n - 1
                    self.lost += 1
                    return True
        return False


def header(head: str, name: str) -> str | None:
    """A header's value in a message's head (its first line skipped), by lower-case name; None if absent."""
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def read_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 message with a Content-Length body (what botocore, httpx, DynamoDB Local and the dev server
    send); b"" at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(header(head.decode("latin-1"), "content-length") or 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
