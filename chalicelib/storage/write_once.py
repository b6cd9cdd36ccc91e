"""Every write is recognisable when it is sent again, so it is applied at most once per request.

Two ways a write gets sent twice, and what recognises each:

- botocore's own retries. An attempt whose answer is lost (a read timeout, a dropped connection) is sent again,
  and the first may already have been applied. A TransactWriteItems carries a ClientRequestToken (botocore fills
  one in: the service model marks it an idempotency token), and DynamoDB answers a resend with the same token as
  the original without applying it again (for 10 minutes; botocore resends within seconds). A single-item write
  that is not idempotent goes through `runtime.dynamodb_single_attempt()` instead, which never resends; one that
  is idempotent (a conditional Put of a whole item, an `if_not_exists`) may be resent.
- A client's retry of a request with an Idempotency-Key after an error (a 503 after a stalled database may mean the
  write landed). The idempotency middleware opens a `keyed` scope for the request: each of its transactions also
  puts a receipt item, `RECEIPT#{scope}` / {n} (n counts the request's committed transactions), on condition that it
  does not exist. The retry's transaction finds the receipt of the first attempt and is cancelled whole: this
  module raises AlreadyApplied (409 `already_applied` unless the view answers with the resource as it is now).
  A receipt costs a transactional write of a small item (2 write units) and lives as long as the key's
  idempotency record (24 h); it is never read, only conditioned on, so its expiry needs no TTL deletion.

Writes that fan out to other threads (the load generator's hits) run outside receipts (`unkeyed`): their order is
not the same from one attempt to the next, so numbering them would not match.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from chalicelib.edge.errors import Conflict
from chalicelib.storage import keys, table

RECEIPT_TTL_S = 24 * 3600
_RECEIPT_INDEX = "livestats_receipt_index"  # where a call's receipt is remembered (botocore's request context)
_NOTE = "note"


class AlreadyApplied(Conflict):
    """An earlier attempt of this request (same Idempotency-Key) applied this write; `note` is what that attempt
    noted on its receipt (e.g. the id it created), if anything."""

    code = "already_applied"

    def __init__(self, note: str | None = None) -> None:
        super().__init__("an earlier attempt with this Idempotency-Key applied this write; it was not applied again")
        self.note = note


@dataclass
class _Scope:
    receipt_pk: str
    committed: int = 0
    note: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("write_once_scope", default=None)


@contextmanager
def keyed(scope: str) -> Iterator[None]:
    """Transactions inside carry receipts under `scope` (a digest naming the request: credential, route, key)."""
    token = _scope.set(_Scope(keys.receipt_pk(scope)))
    try:
        yield
    finally:
        _scope.reset(token)


@contextmanager
def unkeyed() -> Iterator[None]:
    """Transactions inside carry no receipts (writes whose order varies between attempts)."""
    token = _scope.set(None)
    try:
        yield
    finally:
        _scope.reset(token)


def in_keyed_request() -> bool:
    return _scope.get() is not None


def applied_by_an_earlier_attempt(client: Any, table_name: str) -> bool:
    """In a keyed request that wrote nothing: whether an earlier attempt's first write has its receipt. A view may
    refuse the retry on what that write changed (a reset finds no active session, a deleted response is gone): the
    retry's answer then says the write was applied, not why it could not be done again."""
    scope = _scope.get()
    if scope is None or scope.committed:
        return False
    key = {table.PARTITION_KEY: {"S": scope.receipt_pk}, table.SORT_KEY: {"S": f"{0:04d}"}}
    return "Item" in client.get_item(TableName=table_name, Key=key, ConsistentRead=True)


def note(text: str) -> None:
    """Keep `text` on the receipt of the request's next transaction, so a retry that finds it can tell what the first
    attempt did (the id of what it created, which the retry would otherwise pick anew)."""
    scope = _scope.get()
    if scope is not None:
        scope.note = text


def prepare_transaction(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """botocore `before-parameter-build.dynamodb.TransactWriteItems`: in a keyed request, the receipt.

    Parameters are built once per call: botocore's resends carry the same receipt and token."""
    scope = _scope.get()
    if scope is None:
        return
    items = params["TransactItems"]
    table_name = next(iter(items[0].values()))["TableName"]  # each item is {"Put" | "Update" | ...: {...}}
    with scope.lock:
        n, noted = scope.committed, scope.note
    receipt: dict[str, Any] = {
        table.PARTITION_KEY: {"S": scope.receipt_pk},
        table.SORT_KEY: {"S": f"{n:04d}"},
        table.TTL_ATTRIBUTE: {"N": str(int(time.time()) + RECEIPT_TTL_S)},
    }
    if noted is not None:
        receipt[_NOTE] = {"S": noted}
    items.append(
        {
            "Put": {
                "TableName": table_name,
                "Item": receipt,
                "ConditionExpression": f"attribute_not_exists({table.PARTITION_KEY})",
                # The first attempt's receipt comes back with the cancellation: its note, without another read.
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
    )
    context[_RECEIPT_INDEX] = len(items) - 1


def settle_transaction(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """botocore `after-call.dynamodb.TransactWriteItems`: count a committed receipt, or recognise an earlier one."""
    index = context.get(_RECEIPT_INDEX)
    scope = _scope.get()
    if index is None or scope is None:
        return
    if http_response.status_code < 300:
        with scope.lock:
            scope.committed += 1
            scope.note = None
        return
    reasons = parsed.get("CancellationReasons") or []
    if len(reasons) > index and reasons[index].get("Code") == "ConditionalCheckFailed":
        earlier = reasons[index].get("Item") or {}
        raise AlreadyApplied(earlier.get(_NOTE, {}).get("S"))
