"""The Chalice app class, with per-thread request state.

Chalice keeps `current_request` and `lambda_context` as plain attributes of
the app object. Lambda serves one request per process, but the threaded local
server (make run, tests) serves many at once, and one request would read
another's body. Keeping both per thread costs nothing in Lambda.

Chalice turns any exception a view raises (other than a ChaliceUnhandledError) into a 500 with a
traceback before middleware sees it. A database that is unreachable or stalled is not a bug: each view
is wrapped so that such a failure leaves as the 503 dynamo.unavailable makes of it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from chalice import Chalice

from chalicelib.edge.errors import ServiceError
from chalicelib.storage import dynamo


class ThreadSafeChalice(Chalice):
    _per_thread = threading.local()

    def __init__(self, app_name: str, **kwargs: Any) -> None:
        super().__init__(app_name, **kwargs)
        # API Gateway decodes a binary answer (the pixel's GIF) only when the request's first Accept type is one of
        # the API's binary media types, and a browser's image request starts with image/avif or image/webp.
        self.api.binary_types.append("image/*")

    @property
    def current_request(self) -> Any:
        return getattr(self._per_thread, "request", None)

    @current_request.setter
    def current_request(self, value: Any) -> None:
        self._per_thread.request = value

    @property
    def lambda_context(self) -> Any:
        return getattr(self._per_thread, "context", None)

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._per_thread.context = value

    def _register_route(self, name: str, user_handler: Callable[..., Any], kwargs: Any, **unused: Any) -> None:
        super()._register_route(name, _database_failures_as_503(user_handler), kwargs, **unused)


def _database_failures_as_503(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except ServiceError:
            raise  # already the client's answer
        except Exception as exc:
            error = dynamo.unavailable(exc)
            if error is None:
                raise
            raise error from exc

    return wrapped
