"""Small helpers for the low-level DynamoDB client shared by every data-access module."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

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


def batch_get(client: Any, table: str, keys: list[dict[str, Any]], *, consistent: bool) -> list[dict[str, Any]]:
    """BatchGetItem over up to 100 keys, retrying unprocessed keys. Items come back unordered."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": consistent}}
    for attempt in range(10):
        response = client.batch_get_item(RequestItems=request, ReturnConsumedCapacity="TOTAL")
        items.extend(response.get("Responses", {}).get(table, []))
        request = response.get("UnprocessedKeys") or {}
        if not request:
            return items
        backoff(attempt)
    raise RuntimeError("BatchGetItem left keys unprocessed after 10 attempts")


def cancellation_codes(exc: Exception) -> list[str]:
    reasons: Iterable[dict[str, Any]] = getattr(exc, "response", {}).get("CancellationReasons", [])
    return [reason.get("Code", "None") for reason in reasons]


def is_contention(exc: Exception) -> bool:
    """A cancelled transaction that lost a race (and may simply be retried)."""
    codes = cancellation_codes(exc)
    return any(code in ("ConditionalCheckFailed", "TransactionConflict") for code in codes)


def backoff(attempt: int) -> None:
    """Full-jitter exponential backoff, capped at ~50 ms: spreads retrying writers apart."""
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
