"""A TCP proxy in front of DynamoDB Local that loses answers: the request reaches the database (and is applied), the
answer never reaches the client, whose connection is closed. That is a timeout's worst case for a write, the one
botocore resends."""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class LossyProxy:
    """Forwards 127.0.0.1:{port} to `upstream`; `lose(target, n)` loses the answers to the next n requests whose
    X-Amz-Target ends with `target` (e.g. "TransactWriteItems")."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._lock = threading.Lock()
        self._losing: dict[str, int] = {}
        self.lost = 0
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lose(self, target: str, n: int = 1) -> None:
        with self._lock:
            self._losing[target] = n

    def _take(self, request: bytes) -> bool:
        """Whether the answer to this request is to be lost (and count it)."""
        with self._lock:
            for target, n in self._losing.items():
                if n > 0 and f".{target}".encode() in request:
                    self._losing[target] = n - 1
                    self.lost += 1
                    return True
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
                request = _read_message(client)
                if not request:
                    return
                upstream.sendall(request)
                answer = _read_message(upstream)
                if self._take(request):
                    return  # the database applied it; the client never hears
                client.sendall(answer)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._closing = True
        self.server.close()

    def __enter__(self) -> LossyProxy:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def _read_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 message with a Content-Length body (what botocore and DynamoDB Local send); b"" at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
