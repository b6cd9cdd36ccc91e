"""The Chalice app class, with per-thread request state.

Chalice keeps `current_request` and `lambda_context` as plain attributes of
the app object. Lambda serves one request per process, but the threaded local
server (make run, tests) serves many at once, and one request would read
another's body. Keeping both per thread costs nothing in Lambda.
"""

from __future__ import annotations

import threading
from typing import Any

from chalice import Chalice


class ThreadSafeChalice(Chalice):
    _per_thread = threading.local()

    @property  # type: ignore[override]
    def current_request(self) -> Any:
        return getattr(self._per_thread, "request", None)

    @current_request.setter
    def current_request(self, value: Any) -> None:
        self._per_thread.request = value

    @property  # type: ignore[override]
    def lambda_context(self) -> Any:
        return getattr(self._per_thread, "context", None)

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._per_thread.context = value
