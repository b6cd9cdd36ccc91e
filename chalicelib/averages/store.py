"""Data access for moving averages. Every DynamoDB expression for windows lives here.

One item per window (keys.average_pk, keys.AVERAGE_WINDOW_SK):

  size      N, the window's length (1..10,000)
  cap       size + slack(size): how many elements the item may hold
  elements  List of numbers, oldest first; the window is the LAST `size` of them
  version   bumped by every write; full rewrites are conditioned on it

Append, the common case, is ONE UpdateItem and no read:
`SET elements = list_append(elements, :x)` conditioned on `size(elements) < cap`,
returning ALL_NEW. DynamoDB applies updates to one item one at a time, so
concurrent appends never lose an element and need no retry loop. Elements that
fell out of the window (at most `slack` of them) stay in the list until the
list reaches `cap`; then the condition fails, the failed request returns the
item (ReturnValuesOnConditionCheckFailure=ALL_OLD, so still no separate read),
and that appender rewrites the list as exactly the window plus its element,
conditioned on `version` (optimistic locking; a loser retries with jitter,
bounded, then 503). So one append in `slack` rewrites the list.

Why not trim on every append: `REMOVE elements[0] SET elements = list_append(...)`
is rejected ("two document paths overlap"), so trimming the head means a
read-modify-write of the whole list, with retries under contention. Why not a
ring of slots (`SET e{i} = :x, head = :h+1` conditioned on head): the writer must
know `head` first (a read, or a guess that fails under contention), and it saves
nothing in capacity: DynamoDB charges an update by the size of the whole item
(the larger of before and after), not by the bytes changed. Measured on DynamoDB
Local: 10,100 numbers of 17 significant digits = 119 KB; a list_append, a
one-slot SET and a full Put of that item each consume 119 WCU.

slack(size) = max(32, ceil(sqrt(size))): the item (~size + slack elements) is
charged on every append and a rewrite costs about one extra item write per
`slack` appends, so sqrt(size) roughly minimises (size + s) * (1 + 1/s); below
~1 KB the charge is 1 WCU anyway, hence the floor of 32.

From the events stream (`apply_delivered`), a batch's values for one window append in order in ONE list_append,
which also sets the marker of the last record applied (chalicelib/ingest/applied.py), conditioned on the marker
being older. Its cap condition is the same `size(elements) < cap`, so the list may pass its cap by the batch's
values (at most INGEST_MAX_VALUES - 1) before the next append rewrites it. When the condition fails, the returned
item says why: the records already applied are dropped, and a list at its cap is rewritten (window plus the
values, markers kept) under `version`. Every Put of the item (resize, rewrite) carries the markers over.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.averages.moving_average import SimpleMovingAverage
from chalicelib.edge.errors import NotFound
from chalicelib.ingest import applied
from chalicelib.ingest.records import AverageEvent, Delivered
from chalicelib.names.refresh import minute_start
from chalicelib.names.store import NameStore, refreshes_of
from chalicelib.pure import clock
from chalicelib.storage import keys, write_once
from chalicelib.storage.dynamo import (
    ITEM_EXISTS,
    ITEM_IS_NEW,
    LostRace,
    batch_get,
    cancellation_codes,
    condition_failed,
    item_key,
    num,
    partition_key_of,
    read_int,
    retry,
    throttled,
)
from chalicelib.storage.table import PARTITION_KEY

MIN_SLACK = 32
BATCH_GET_KEYS = 100  # BatchGetItem's limit
# Values per append from the events stream (whole records): how far past its cap a list may grow.
INGEST_MAX_VALUES = 1000

_NAMES = {"#e": "elements", "#c": "cap", "#v": "version"}


def slack(size: int) -> int:
    return max(MIN_SLACK, math.isqrt(size - 1) + 1)


def capacity(size: int) -> int:
    """How many elements a window item may hold before an append rewrites it."""
    return size + slack(size)


class AverageStore:
    def __init__(self, client: Any, table: str, single_attempt: Any | None = None) -> None:
        self.client = client
        self.table = table
        # For list appends, which a resend would apply twice (runtime.dynamodb_single_attempt()).
        self.single_attempt = single_attempt or client
        self.names = NameStore(client, table)

    # --- reads --------------------------------------------------------------

    def get(self, key: str) -> SimpleMovingAverage | None:
        item = self._get_item(key)
        return None if item is None else self._window(item)

    def existing(self, names: Collection[str]) -> set[str]:
        """Which of these windows exist: one strongly consistent BatchGetItem per 100 keys, reading only the key
        (a window item can be ~120 KB; it is charged whole all the same, but not sent)."""
        found: set[str] = set()
        ordered = sorted(set(names))
        for start in range(0, len(ordered), BATCH_GET_KEYS):
            wanted = {keys.average_pk(name): name for name in ordered[start : start + BATCH_GET_KEYS]}
            items = batch_get(
                self.client,
                self.table,
                [self._key(name) for name in wanted.values()],
                consistent=True,
                projection=PARTITION_KEY,
            )
            found.update(wanted[partition_key_of(item)] for item in items)
        return found

    # --- writes -------------------------------------------------------------

    def set_size(self, key: str, size: int) -> tuple[SimpleMovingAverage, bool]:
        """Create the window or resize it (keeping the newest elements). Returns (window, created)."""

        def attempt(_: int) -> tuple[SimpleMovingAverage, bool]:
            item = self._get_item(key)
            if item is None:
                window = SimpleMovingAverage(size)
                put = self._put(key, window, version=1, condition=ITEM_IS_NEW)
            else:
                window = self._window(item)
                if window.size == size and len(item["elements"]["L"]) == len(window):
                    return window, False  # nothing to change
                window.resize(size)
                put = self._put(
                    key,
                    window,
                    version=read_int(item["version"]) + 1,
                    expected=item["version"],
                    markers=applied.marker_attrs(item),
                )
            # With the registry entry (chalicelib/names/store.py): a window is listed from the moment it exists.
            # A failed condition: another writer came first.
            now_ms = clock.now_ms()
            self.client.transact_write_items(
                TransactItems=[{"Put": put}, {"Put": self.names.entry_put("average", key, minute_start(now_ms))}]
            )
            refreshes_of(self.client).done((self.table, key), now_ms)
            return window, item is None

        return retry(attempt, busy="too many concurrent writers on this window; retry")

    def delete(self, key: str) -> None:
        """Delete the window and its registry entry in one transaction (idempotent: nothing there is no error). An
        append racing it either committed before (deleted with the window) or finds no window (404)."""
        self.client.transact_write_items(
            TransactItems=[
                {"Delete": {"TableName": self.table, "Key": self._key(key)}},
                {"Delete": self.names.entry_delete("average", key)},
            ]
        )
        refreshes_of(self.client).forget((self.table, key))

    def refresh(self, key: str) -> None:
        """After an append: the registry entry's `updated_at`, at most once per writer and minute, and only while
        the window exists (so a refresh racing a DELETE never lists a deleted window)."""
        refreshes = refreshes_of(self.client)
        now_ms = clock.now_ms()
        if refreshes.due((self.table, key), now_ms):
            self.names.refresh_if_exists("average", key, minute_start(now_ms), self._key(key))
            refreshes.done((self.table, key), now_ms)

    def append(self, key: str, x: float) -> SimpleMovingAverage:
        """Append x to an existing window; NotFound if the window was never created.

        A list append is not idempotent, so it is never sent twice: unkeyed, through the single-attempt client
        (a lost answer is the caller's 503, the value appended at most once); in a request with an
        Idempotency-Key, as a one-item transaction, which carries the request's receipt (chalicelib/storage/write_once.py)
        and is then read back. Throttling means nothing was applied: that is retried here."""

        def attempt(_: int) -> SimpleMovingAverage:
            update = {
                "TableName": self.table,
                "Key": self._key(key),
                "UpdateExpression": "SET #e = list_append(#e, :x), #v = #v + :one",
                "ConditionExpression": f"{ITEM_EXISTS} AND size(#e) < #c",
                "ExpressionAttributeNames": _NAMES,
                "ExpressionAttributeValues": {":x": {"L": [num(x)]}, ":one": num(1)},
            }
            written, item = self._write_once("Update", update)
            if written:
                return self._window(item or self._get_item(key) or {})
            if item is None:
                raise NotFound("no moving-average window with this key; create it with PUT", code="window_not_found")
            # The list is at its cap: rewrite it as the window plus x. A failed condition: another writer came first.
            window = self._window(item)
            window.add_element(x)
            put = self._put(
                key,
                window,
                version=read_int(item["version"]) + 1,
                expected=item["version"],
                markers=applied.marker_attrs(item),
            )
            if not self._write_once("Put", put)[0]:
                raise LostRace
            return window

        return retry(attempt, lost=throttled, busy="too many concurrent writers on this window; retry")

    def _write_once(self, action: str, request: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        """Send one conditional write at most once. (True, the new item where the answer carries it), or (False, the
        item as it was when the condition failed, None if there was none)."""
        request = {**request, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        try:
            if write_once.in_keyed_request():
                self.client.transact_write_items(TransactItems=[{action: request}])
                return True, None
            if action == "Update":
                new: dict[str, Any] = self.single_attempt.update_item(**request, ReturnValues="ALL_NEW")["Attributes"]
                return True, new
            self.single_attempt.put_item(**request)
            return True, None
        except ClientError as exc:
            answer: dict[str, Any] = dict(exc.response)
            if condition_failed(exc):
                return False, answer.get("Item")
            if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                return False, answer["CancellationReasons"][0].get("Item")
            raise

    def apply_delivered(self, delivered: Sequence[Delivered]) -> None:
        """Append average events of the events stream exactly once: per window and Kinesis shard, one write per
        INGEST_MAX_VALUES values. applied.Unappliable if the window does not exist."""
        groups: dict[tuple[str, str], list[Delivered]] = {}
        for d in delivered:
            assert isinstance(d.event, AverageEvent)
            groups.setdefault((d.event.key, d.shard_id), []).append(d)
        for (key, shard_id), values in groups.items():
            for run in applied.chunks(values, INGEST_MAX_VALUES):
                self._append_delivered(key, shard_id, run)

    def _append_delivered(self, key: str, shard_id: str, delivered: Sequence[Delivered]) -> None:
        todo = list(delivered)

        def attempt(_: int) -> None:
            nonlocal todo
            names, values = applied.marker_condition(shard_id, todo)
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=self._key(key),
                    UpdateExpression="SET #e = list_append(#e, :xs), #v = #v + :one, #applied = :last",
                    ConditionExpression=f"{ITEM_EXISTS} AND size(#e) < #c AND {applied.NOT_APPLIED}",
                    ExpressionAttributeNames={**_NAMES, **names},
                    ExpressionAttributeValues={**values, ":xs": {"L": [num(_value(d)) for d in todo]}, ":one": num(1)},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return
            except self.client.exceptions.ConditionalCheckFailedException as exc:
                old = exc.response.get("Item")
            if old is None:
                raise applied.Unappliable("no moving-average window with this key")
            todo = applied.unapplied(todo, applied.applied_marker(old, shard_id))
            if not todo:
                return
            if len(old["elements"]["L"]) < read_int(old["cap"]):
                raise LostRace  # only the marker was stale: append what is left
            window = self._window(old)
            for d in todo:
                window.add_element(_value(d))
            markers = {
                **applied.pruned(applied.marker_attrs(old), shard_id),
                names["#applied"]: applied.marker_condition(shard_id, todo)[1][":last"],
            }
            self.client.put_item(
                **self._put(key, window, version=read_int(old["version"]) + 1, expected=old["version"], markers=markers)
            )

        retry(attempt, lost=condition_failed, busy="too many concurrent writers on this window")

    # --- item shapes --------------------------------------------------------

    def _key(self, key: str) -> dict[str, Any]:
        return item_key(keys.average_pk(key), keys.AVERAGE_WINDOW_SK)

    def _get_item(self, key: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key=self._key(key), ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _put(
        self,
        key: str,
        window: SimpleMovingAverage,
        *,
        version: int,
        expected: dict[str, str] | None = None,
        condition: str = "#v = :expected",
        markers: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {
                **self._key(key),
                "size": num(window.size),
                "cap": num(capacity(window.size)),
                "elements": {"L": [num(x) for x in window.get_elements()]},
                "version": num(version),
                **(markers or {}),
            },
            "ConditionExpression": condition,
        }
        if expected is not None:
            put["ExpressionAttributeNames"] = {"#v": "version"}
            put["ExpressionAttributeValues"] = {":expected": expected}
        return put

    @staticmethod
    def _window(item: dict[str, Any]) -> SimpleMovingAverage:
        size = read_int(item["size"])
        stored = item["elements"]["L"]
        return SimpleMovingAverage(size, (float(e["N"]) for e in stored[-size:]))


def _value(delivered: Delivered) -> float:
    event = delivered.event
    assert isinstance(event, AverageEvent)
    return event.value
