"""The DynamoDB toolkit every data-access module shares: attribute values, keys and key conditions, one
paginator, one classifier of errors (lost races, and a database that is not answering), and one retry loop for
lost races."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError, NoRegionError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from chalicelib.edge.errors import Busy, DatabaseUnavailable
from chalicelib.process import runtime, settings
from chalicelib.process.observability import logger
from chalicelib.process.request_context import BudgetSpent
from chalicelib.storage.table import PARTITION_KEY, SORT_KEY

T = TypeVar("T")

# Attempts of a read-decide-write that keeps losing races before the client is told to retry (503 busy).
MAX_ATTEMPTS = 40

# DynamoDB cannot store a non-zero magnitude below 1e-130; derived figures
# (variance sums) that small are rounding noise and are stored as 0.
_SMALLEST_STORED = 1e-120


def num(x: float | int) -> dict[str, str]:
    """A DynamoDB number attribute from a Python number (boto3 rejects floats)."""
    if isinstance(x, int):
        return {"N": str(x)}
    if x != 0 and abs(x) < _SMALLEST_STORED:
        x = 0.0
    return {"N": str(Decimal(repr(x)))}


def string(s: str) -> dict[str, str]:
    return {"S": s}


def opt_string(s: str | None) -> dict[str, Any]:
    return {"NULL": True} if s is None else {"S": s}


def read_num(attr: dict[str, str] | None) -> float | None:
    return None if attr is None or "N" not in attr else float(attr["N"])


def read_int(attr: dict[str, str] | None, default: int = 0) -> int:
    return default if attr is None or "N" not in attr else int(Decimal(attr["N"]))


def read_str(attr: dict[str, Any] | None) -> str | None:
    return None if attr is None else attr.get("S")


# --- keys and key conditions ---------------------------------------------------

# Conditions on the item a write targets.
ITEM_IS_NEW = f"attribute_not_exists({PARTITION_KEY})"
ITEM_EXISTS = f"attribute_exists({PARTITION_KEY})"


def item_key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    return {PARTITION_KEY: string(pk), SORT_KEY: string(sk)}


def sort_key_of(item: dict[str, Any]) -> str:
    return str(item[SORT_KEY]["S"])


def partition_key_of(item: dict[str, Any]) -> str:
    return str(item[PARTITION_KEY]["S"])


def sort_key_between(pk: str, low: str, high: str) -> dict[str, Any]:
    """Query arguments selecting the items of partition `pk` with low <= sort key <= high."""
    return {
        "KeyConditionExpression": f"{PARTITION_KEY} = :pk AND {SORT_KEY} BETWEEN :low AND :high",
        "ExpressionAttributeValues": {":pk": string(pk), ":low": string(low), ":high": string(high)},
    }


def partition(pk: str) -> dict[str, Any]:
    """Query arguments selecting every item of partition `pk`."""
    return {"KeyConditionExpression": f"{PARTITION_KEY} = :pk", "ExpressionAttributeValues": {":pk": string(pk)}}


def sort_key_prefix(pk: str, prefix: str) -> dict[str, Any]:
    """Query arguments selecting the items of partition `pk` whose sort key starts with `prefix`."""
    return {
        "KeyConditionExpression": f"{PARTITION_KEY} = :pk AND begins_with({SORT_KEY}, :prefix)",
        "ExpressionAttributeValues": {":pk": string(pk), ":prefix": string(prefix)},
    }


# --- reading many items ----------------------------------------------------------


def query_pages(
    client: Any, request: dict[str, Any], *, max_items: int | None = None, page_size: int | None = None
) -> Iterator[dict[str, Any]]:
    """The responses of a Query, following LastEvaluatedKey, until `max_items` items were read.

    Each page asks for no more than the items still wanted (boto3's paginator keeps the same Limit for the last
    page and drops the surplus, which costs read capacity). The last response's LastEvaluatedKey says whether more
    items follow.
    """
    request = dict(request)
    read = 0
    while True:
        wanted = [n for n in (page_size, None if max_items is None else max_items - read) if n is not None]
        if wanted:
            request["Limit"] = min(wanted)
        response: dict[str, Any] = client.query(**request)
        yield response
        read += len(response.get("Items", []))
        if "LastEvaluatedKey" not in response or (max_items is not None and read >= max_items):
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def query_items(client: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item a Query selects, however many pages that takes."""
    return [item for page in query_pages(client, request) for item in page.get("Items", [])]


def sort_keys_between(client: Any, table: str, pk: str, low: str, high: str) -> list[str]:
    """The sort keys of partition `pk` with low <= sort key <= high (strongly consistent; markers and listings)."""
    items = query_items(
        client,
        {
            "TableName": table,
            **sort_key_between(pk, low, high),
            "ProjectionExpression": SORT_KEY,
            "ConsistentRead": True,
        },
    )
    return [sort_key_of(item) for item in items]


def batch_get(
    client: Any, table: str, keys: list[dict[str, Any]], *, consistent: bool, projection: str | None = None
) -> list[dict[str, Any]]:
    """BatchGetItem over up to 100 keys, retrying unprocessed keys. Items come back unordered, with only the
    attributes `projection` names if given."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": consistent}}
    if projection is not None:
        request[table]["ProjectionExpression"] = projection

    def attempt(_: int) -> list[dict[str, Any]]:
        nonlocal request
        response = client.batch_get_item(RequestItems=request)
        items.extend(response.get("Responses", {}).get(table, []))
        request = response.get("UnprocessedKeys") or {}
        if request:
            raise LostRace
        return items

    return retry(attempt, attempts=10, busy="the database left keys unread; retry")


def batch_write(client: Any, table: str, requests: list[dict[str, Any]], attempts: int = 10) -> None:
    """Apply write requests (`PutRequest`, `DeleteRequest`) with BatchWriteItem, 25 a call, retrying unprocessed
    ones."""
    for start in range(0, len(requests), 25):
        pending: dict[str, Any] = {table: requests[start : start + 25]}

        def attempt(_: int) -> None:
            nonlocal pending
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if pending:
                raise LostRace

        retry(attempt, attempts=attempts, busy="the database left items unwritten; retry")


def batch_delete(client: Any, table: str, keys: list[dict[str, Any]]) -> None:
    """Delete the items of `keys`."""
    batch_write(client, table, [{"DeleteRequest": {"Key": key}} for key in keys])


# --- classifying errors ------------------------------------------------------------


def error_code(exc: Exception) -> str | None:
    """DynamoDB's error code of a failed call (None if the exception is not a service error)."""
    return exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None


def cancellation_codes(exc: Exception) -> list[str]:
    """Why a cancelled transaction was cancelled: one code per action, "None" for the actions that were fine."""
    reasons: Iterable[dict[str, Any]] = getattr(exc, "response", {}).get("CancellationReasons", [])
    return [reason.get("Code", "None") for reason in reasons]


def condition_failed(exc: Exception) -> bool:
    """A single-item write whose condition failed."""
    return error_code(exc) == "ConditionalCheckFailedException"


def lost_race(exc: Exception) -> bool:
    """A transaction cancelled by a failed condition (the version read is stale) or by a concurrent transaction."""
    codes = cancellation_codes(exc)
    return any(code in ("ConditionalCheckFailed", "TransactionConflict") for code in codes)


def conflicted(exc: Exception) -> bool:
    """A transaction cancelled only by a concurrent transaction: none of its conditions failed."""
    codes = cancellation_codes(exc)
    return "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes


# The database refused the request for its rate: nothing was applied.
_THROTTLED_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


def throttled(exc: ClientError) -> bool:
    """A write refused for the rate it came at, so not applied: safe to send again."""
    return error_code(exc) in _THROTTLED_CODES


# Seconds a client should wait before retrying after a 503 database_unavailable.
RETRY_AFTER_S = runtime.RETRY_AFTER_S
# Throttling that outlasted botocore's retries, and DynamoDB's own transient failures.
_UNAVAILABLE_CODES = _THROTTLED_CODES | {"InternalServerError", "ServiceUnavailable"}


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The failure in exc's chain that says the database is unreachable, stalled or overloaded, if any.

    Connection errors, timeouts, the spent request budget and throttling after retries, also when wrapped
    (e.g. by Powertools Idempotency); and no region or credentials at all (a plain `chalice local`), which never
    happens in Lambda.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (*_NOT_CONFIGURED, BotocoreConnectionError, HTTPClientError, BudgetSpent)) or (
            isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in _UNAVAILABLE_CODES
        ):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The client's 503 (with Retry-After) for such a failure, its cause logged at warning; None otherwise."""
    cause = unavailable_cause(exc)
    if cause is None:
        return None
    endpoint = getattr(cause, "kwargs", {}).get("endpoint_url") or runtime.dynamodb_endpoint()
    logger.warning(
        "database unavailable",
        extra={"cause": type(cause).__name__, "detail": str(cause), "endpoint": endpoint},
    )
    return DatabaseUnavailable(unavailable_message(cause), headers={"Retry-After": str(RETRY_AFTER_S)})


# Failures of a process with no AWS configuration at all (a plain `chalice local`): never in Lambda.
_NOT_CONFIGURED = (NoRegionError, NoCredentialsError)


def unavailable_message(cause: BaseException) -> str:
    """What the client is told: what is missing, or which database is not answering (a local one by its endpoint:
    the developer's own, which names nothing secret)."""
    if isinstance(cause, _NOT_CONFIGURED):
        missing = "region" if isinstance(cause, NoRegionError) else "credentials"
        return (
            f"No database: no AWS {missing} is configured. Locally, start `make run`, then serve with "
            "`chalice local --stage local` (not the default stage, which is a deployed one's)."
        )
    current = settings.get()
    if current.devserver_file is not None:
        return (
            f"The database of `make run` ({current.ddb_endpoint_url}) is not answering: is `make run` still running? "
            "Start it again."
        )
    if current.ddb_endpoint_url is not None:
        return f"The database at {current.ddb_endpoint_url} is not answering; retry later."
    return "The database is not answering; retry later."


# --- retrying lost races -------------------------------------------------------------


class LostRace(Exception):
    """Raised by an attempt that found the state mid-change: run the attempt again."""


def retry(
    attempt: Callable[[int], T],
    *,
    busy: str,
    lost: Callable[[ClientError], bool] = lost_race,
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """Run `attempt(n)` (n = 0, 1, ...) until it returns, backing off between attempts.

    An attempt reads, decides and writes; it lost a race if it raises LostRace or a ClientError that `lost`
    accepts, and then runs again from its read. Anything else propagates. After `attempts` lost races the caller
    gets Busy (503 busy) with `busy` as its message: a lost attempt applied nothing.
    """
    for n in range(attempts):
        try:
            return attempt(n)
        except LostRace:
            pass
        except ClientError as exc:
            if not lost(exc):
                raise
        backoff(n)
    raise Busy(busy)


def backoff(attempt: int) -> None:
    """Full-jitter exponential backoff, capped at ~50 ms: spreads retrying writers apart."""
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
