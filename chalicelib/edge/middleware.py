"""HTTP middleware: the error shape, idempotency keys, logging and metrics."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.edge import auth, web
from chalicelib.edge.errors import Conflict, IdempotencyKeyReused, InvalidInput, NotFound, ServiceError, error_response
from chalicelib.process import request_context, runtime, settings
from chalicelib.process.observability import count, logger
from chalicelib.storage import dynamo, keys, table, write_once

GetResponse = Callable[[Request], Response]

# Chalice's own error bodies ({"Code": ..., "Message": ...}) mapped to ours.
_CHALICE_CODES = {
    "BadRequestError": "bad_request",
    "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type",
    "BadRequest": "bad_request",
    "InternalServerError": "internal_error",
}


NO_SNIFF = {"X-Content-Type-Options": "nosniff"}


def error_shape(event: Request, get_response: GetResponse) -> Response:
    """Every error leaves in one JSON shape; no stack trace reaches a client. Every answer says `nosniff`: a
    browser must not run a JSON answer that echoes a client's text as a script or a page."""
    response = _shaped(event, get_response)
    response.headers = {**response.headers, **NO_SNIFF}
    return response


def _shaped(event: Request, get_response: GetResponse) -> Response:
    try:
        response = get_response(event)
    except ServiceError as exc:
        return _service_error_response(exc)
    except Exception as exc:
        unavailable = dynamo.unavailable(exc)  # e.g. idempotency records meeting a stalled database
        if unavailable is not None:
            return _service_error_response(unavailable)
        # Chalice logs view errors itself; this catches failures in middleware.
        logger.exception("unhandled error outside a view")
        count("ServerErrors")
        return error_response(500, "internal_error", "An internal error occurred.")
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body and "Message" in body:
        code = _CHALICE_CODES.get(body["Code"], "error")
        message = "An internal error occurred." if code == "internal_error" else str(body["Message"])
        count("ServerErrors" if response.status_code >= 500 else "ClientErrors")
        headers = {k: v for k, v in response.headers.items() if k.lower() == "allow"}
        field = "Content-Type" if code == "unsupported_media_type" else None  # as web.json_body names it
        return error_response(response.status_code, code, message, field, headers=headers)
    return response


def _service_error_response(exc: ServiceError) -> Response:
    count("ServerErrors" if exc.status >= 500 else "ClientErrors")
    return error_response(exc.status, exc.code, exc.message, exc.field, headers=exc.headers)


IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class _NotRecorded(Exception):
    """Carries a response that must not be stored (an error): retrying may succeed."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__("response not recorded")
        self.response = response


class _IdempotentRunner:
    """Powertools Idempotency, built on first use (after moto or the endpoint is set)."""

    def __init__(self, client: Any) -> None:
        # Imported on the first keyed request, not at start: Powertools Idempotency imports boto3 (~50 ms).
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        self.client = client
        self.config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="body",
            expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
            raise_on_no_idempotency_key=True,
        )
        # A key's in-progress record lasts as long as its request may still write, so a retry after a 503 runs (and
        # finds the first attempt's receipts) instead of meeting 409 for the record's 24 hours.
        self.config.register_lambda_context(_WritesMayLand())  # type: ignore[arg-type]
        persistence = DynamoDBPersistenceLayer(
            table_name=runtime.table_name(),
            key_attr=table.PARTITION_KEY,
            sort_key_attr=table.SORT_KEY,
            static_pk_value=keys.IDEMPOTENCY_PARTITION,
            expiry_attr=table.TTL_ATTRIBUTE,
            boto3_client=client,
        )

        # Powertools types the decorator's result as Any; it returns a wrapper with apply's signature.
        @idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=self.config)  # type: ignore[untyped-decorator]
        def apply(request: dict[str, Any], respond: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            response = respond()
            if response["status"] >= 400:
                raise _NotRecorded(response)
            return response

        self.apply = apply


class _WritesMayLand:
    """What Powertools reads as the Lambda context's remaining time: how long the current request may still write
    (its budget, then one database attempt in flight). Read in the request's own context, so one shared object
    answers for each request."""

    def get_remaining_time_in_millis(self) -> int:
        current = settings.get()
        left = request_context.remaining()
        budget = current.request_budget_s if left is None else max(left, 0.0)
        return int((budget + current.db_connect_timeout_s + current.db_read_timeout_s) * 1000)


def _idempotent_runner() -> _IdempotentRunner:
    return runtime.cached("idempotency_runner", lambda: _IdempotentRunner(runtime.dynamodb()))


def _body_fingerprint(raw: bytes | str) -> str:
    """What a retry must repeat: the body as parsed JSON, so that spacing and key order do not make it another
    request (a client may serialise its retry anew); the text as sent when it is not JSON the service takes."""
    data = raw.encode() if isinstance(raw, str) else raw
    # Over the limit the view refuses it unparsed, and any refusal is not recorded: never parse for those here.
    if len(data) <= web.MAX_BODY_BYTES:
        with contextlib.suppress(ServiceError):
            return json.dumps(web.parse_json_once(data), sort_keys=True, separators=(",", ":"))
    return data.decode("utf-8", "replace")


def _protected_write(event: Request, get_response: GetResponse, key: str) -> Response:
    """The key protects the write too: a retry after an error finds the first attempt's receipts."""
    with write_once.keyed(hashlib.sha256(key.encode()).hexdigest()[:32]):
        try:
            return get_response(event)
        except (NotFound, Conflict):
            # Refused on what an earlier attempt's write changed (no session left to reset, a response gone)?
            if write_once.applied_by_an_earlier_attempt(runtime.dynamodb(), runtime.table_name()):
                raise write_once.AlreadyApplied() from None
            raise


def _idempotency_request(event: Request, key: str) -> dict[str, str]:
    """What Powertools keys the record on ("key") and compares a retry with ("body")."""
    # The route template plus its parameters names the resource the same way in API Gateway and locally.
    target = f"{event.path} {json.dumps(event.uri_params or {}, sort_keys=True)}"
    return {
        # Bound to the credential that passed `auth.authorizer`: the same key under another credential is
        # another request, and a replay goes only to the credential that made the original.
        "key": f"{auth.principal(event).binding} {event.method} {target} {key}",
        "body": _body_fingerprint(event.raw_body or b""),
    }


def keyed_identity(event: Request) -> str | None:
    """What makes a request with an Idempotency-Key the same request when it is retried: its key as bound to the
    credential and route, and its body; None without a key (the middleware has refused a malformed one)."""
    key = event.headers.get(IDEMPOTENCY_HEADER)
    if key is None or event.method not in _MUTATING:
        return None
    request = _idempotency_request(event, key)
    return f"{request['key']}\n{request['body']}"


def idempotency(event: Request, get_response: GetResponse) -> Response:
    """A mutating request with an Idempotency-Key header is applied at most once per key."""
    key = event.headers.get(IDEMPOTENCY_HEADER)
    if key is None or event.method not in _MUTATING:
        return get_response(event)
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 1 to 255 visible ASCII characters", field=IDEMPOTENCY_HEADER)
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    runner = _idempotent_runner()
    request = _idempotency_request(event, key)
    executed = False

    def respond() -> dict[str, Any]:
        nonlocal executed
        executed = True
        response = _protected_write(event, get_response, request["key"])
        body = response.body
        return {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": body if isinstance(body, str) else json.dumps(body, separators=(",", ":")),
        }

    try:
        stored = runner.apply(request=request, respond=respond)
    except _NotRecorded as not_recorded:
        stored = not_recorded.response
    except IdempotencyValidationError:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body", field=IDEMPOTENCY_HEADER
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry shortly", code="idempotency_in_progress"
        ) from None
    headers = dict(stored["headers"])
    if not executed:
        headers["Idempotent-Replayed"] = "true"
    return Response(body=stored["body"], status_code=stored["status"], headers=headers)
