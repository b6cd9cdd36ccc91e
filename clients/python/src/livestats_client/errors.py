"""The one exception type every call raises, and the subclasses a caller branches on.

The service answers every error as `{"error": {"code", "message", "field"?}}`; `LivestatsError` carries those
three and the HTTP status. A connection that fails or times out has no status: `ConnectionFailed`, status None.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any


class LivestatsError(Exception):
    """An error answer of the service, or a request that got none (`ConnectionFailed`)."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        # Seconds the service asked to wait before a retry (the answer's Retry-After), when it said.
        self.retry_after = retry_after


class InvalidRequest(LivestatsError):
    """A 4xx other than 401, 403, 404 and 429: the request itself is wrong (400, 405, 409, 413, 414, 415, 422)."""


class NotFound(LivestatsError):
    """404: no such resource (e.g. a moving-average window never created)."""


class AuthError(LivestatsError):
    """401 (no or a wrong token) or 403 (the token may not do this)."""


class Throttled(LivestatsError):
    """429: too many requests (API Gateway's throttling of a deployed stage); retry after `retry_after`."""


class Unavailable(LivestatsError):
    """502, 503 or 504: the service or what it depends on cannot answer now; retry after `retry_after`."""


class ConnectionFailed(LivestatsError):
    """No answer: the connection failed, was closed before the answer, or timed out. Status None.

    A write may or may not have been applied; retry it with the same Idempotency-Key."""


class ServerError(LivestatsError):
    """Another 5xx (500): a fault of the service."""


def error_class(status: int) -> type[LivestatsError]:
    if status == 404:
        return NotFound
    if status in (401, 403):
        return AuthError
    if status == 429:
        return Throttled
    if status in (502, 503, 504):
        return Unavailable
    if 400 <= status < 500:
        return InvalidRequest
    return ServerError


def error_from_answer(status: int, body: Any, retry_after: float | None) -> LivestatsError:
    """The exception for an error answer: the service's own shape when it is one, else the status's reason."""
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        field = detail.get("field")
        return error_class(status)(
            status,
            detail["code"],
            str(detail.get("message", "")),
            field if isinstance(field, str) else None,
            retry_after,
        )
    return error_class(status)(
        status, f"http_{status}", "the answer is not the service's error shape", None, retry_after
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds, or an HTTP date (RFC 9110); None when absent or
    unreadable. A date in the past is 0."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT; a zoneless one is read as such
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
