"""What belongs to one request (or scheduled event): its id, its log keys and its time budget.

Every event runs in its own copy of the context (contextvars), so nothing one request sets is seen by
another, whether the threaded dev server runs them side by side or the scheduler runs a function in
its own thread. Work a request hands to a thread pool runs in the request's context (`ContextThreadPool`),
so it logs with the request's id and stops at the request's deadline.

The deadline: API Gateway gives up after 29 s and Lambda after 30 s. A DynamoDB call that would start
after the request's budget is spent is refused (`refuse_when_spent`, a botocore hook on every attempt),
so botocore's retries and the stores' own contention loops stop too, and the client gets a 503.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.process import settings
from chalicelib.process.observability import logger

REQUEST_ID_HEADER = "X-Request-Id"

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)
_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar("request", default=None)
_cold_start = True


def new_request_id() -> str:
    """A request id where no gateway gave one: a UUID, like API Gateway's."""
    return str(uuid.uuid4())


class BudgetSpent(Exception):
    """The request's time budget is spent: no further database call starts."""


@contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Calls made inside (and in pool tasks submitted from inside) must start within `seconds`."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def current_request() -> Request:
    """The HTTP request this context serves (for code that no view hands it to, e.g. `contract.operation`)."""
    request = _request.get()
    if request is None:
        raise RuntimeError("no HTTP request in this context")
    return request


def remaining() -> float | None:
    """Seconds left in the current budget; None outside any request."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def refuse_when_spent(**_: Any) -> None:
    """botocore `before-send` hook: no attempt starts after the budget is spent."""
    left = remaining()
    if left is not None and left <= 0:
        raise BudgetSpent(f"request budget of {settings.get().request_budget_s:g} s spent")


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in the submitter's context: its deadline and its log keys."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def request_scope(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Middleware, outermost, every event type: run the event in its own context (ids, log keys, budget)."""
    return contextvars.copy_context().run(_run_in_scope, event, get_response)


def _run_in_scope(event: Any, get_response: Callable[[Any], Any]) -> Any:
    is_http = isinstance(event, Request)
    if is_http:
        _request.set(event)
    lambda_context = event.lambda_context if is_http else getattr(event, "context", None)
    # API Gateway's id in AWS; the local gateway gives none, so make one.
    request_id = (event.context or {}).get("requestId") if is_http else None
    request_id = request_id or getattr(lambda_context, "aws_request_id", None) or new_request_id()
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(request_id=request_id, **_lambda_keys(lambda_context))
    with budget(settings.get().request_budget_s):
        if not is_http:
            return get_response(event)
        started = time.monotonic()
        response: Response = get_response(event)
    response.headers[REQUEST_ID_HEADER] = request_id
    _log_access(event, response, started)
    if event.method == "HEAD":  # the GET's status and headers, never a body (an error's included)
        return Response(body="", status_code=response.status_code, headers=response.headers)
    return response


def _lambda_keys(context: Any) -> dict[str, Any]:
    """The Lambda context's keys for log lines (what Powertools' inject_lambda_context adds, per request)."""
    global _cold_start
    if context is None:
        return {}
    cold_start, _cold_start = _cold_start, False
    return {
        "cold_start": cold_start,
        "function_name": getattr(context, "function_name", None),
        "function_memory_size": getattr(context, "memory_limit_in_mb", None),
        "function_arn": getattr(context, "invoked_function_arn", None),
        "function_request_id": getattr(context, "aws_request_id", None),
    }


def _log_access(request: Request, response: Response, started: float) -> None:
    """One line per HTTP request; an error answer carries its cause (code, message, field) here, once."""
    line: dict[str, Any] = {
        "method": request.method,
        "path": (request.context or {}).get("path"),
        "route": request.path,
        "status": response.status_code,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and isinstance(body.get("error"), dict):
        line["error"] = body["error"]
    logger.info("request", extra=line)
