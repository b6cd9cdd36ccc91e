"""Errors a client can cause, and the one JSON shape every error takes.

They derive from ChaliceUnhandledError so that Chalice lets them propagate
to `middleware.error_shape`, the single place that turns them into responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalice import Response
from chalice.app import ChaliceUnhandledError

from chalicelib.pure.ranges import RangeRefused


class ServiceError(ChaliceUnhandledError):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.headers = dict(headers or {})  # e.g. Allow on a 405, Retry-After on a 503


class InvalidInput(ServiceError):
    status = 400
    code = "invalid_input"


def invalid_range(refused: RangeRefused) -> InvalidInput:
    """A series range the pure rules refuse: 400 `invalid_range`, naming the parameter (rules between parameters,
    and with the clock, which no schema can state)."""
    return InvalidInput(str(refused), code="invalid_range", field=refused.field)


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        # RFC 6750: a 401 names the scheme that would be accepted.
        super().__init__(message, code=code, field=field, headers={"WWW-Authenticate": 'Bearer realm="livestats"'})


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ServiceError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "body_too_large"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class IdempotencyKeyReused(ServiceError):
    status = 422
    code = "idempotency_key_reused"


class Busy(ServiceError):
    """Contention outlasted our retries; the client may retry (nothing was applied)."""

    status = 503
    code = "busy"


class DatabaseUnavailable(ServiceError):
    """The database did not answer in time, or at all (dynamo.unavailable says when); the client may retry later."""

    status = 503
    code = "database_unavailable"


class StreamNotConfigured(ServiceError):
    """No events stream to put on in this configuration (a local database without a local Kinesis): retrying will
    not help, configuring will."""

    status = 503
    code = "stream_not_configured"


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str | list[str]] | None = None
) -> Response:
    return Response(
        body=error_body(code, message, field),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
