"""Data access for last-hour sums. Every DynamoDB expression for sums lives here.

Writes:
  0. once per client (process) and key-minute, a SUMDIRTY marker (idempotent Put) listing the key
     under its minute: the compactor's work list. It is written before any sub-total of
     that key-minute can exist, so compaction never misses a key;
  1. ONE TransactWriteItems: Put the event item (conditional on a fresh id) + `ADD` to one of
     SUM_WRITE_SHARDS sub-total items of the key's minute, chosen at random: total, n, and the sum of its
     second (s00..s59). Both or neither: a post that fails stored nothing, and a retry whose event already
     exists is cancelled whole (ConditionalCheckFailed: it was stored). The ClientRequestToken, derived from
     the event id, makes botocore's own retries of a lost response apply once. Two transactions on one
     sub-total item conflict (TransactionConflict): retried with backoff on another random shard, Busy after
     POST_ATTEMPTS.
Sub-totals of a key live in one partition, sorted by minute then shard, so one Query reads every shard of a
whole range of minutes.
Compaction (chalicelib/metrics/compaction.py, every minute, for minutes that ended SEAL_LAG_MS ago): for each
key listed, the sum of its sub-totals is written once as a bucket item; when every key of the minute is done, a
SUMDONE marker says so.
Reads (see window.plan and window.minute_reads): buckets for whole compacted minutes, sub-totals for whole
minutes not compacted yet and for the per-second sums of the two edge minutes (one Query per
run of such minutes, not per minute), raw events only for the two edge *seconds*. A bucket equals
the sum of the sub-totals it was made from, so the answer does not depend on how far compaction got.
"""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from itertools import islice
from typing import Any

from chalicelib import keys, runtime, table
from chalicelib.dynamo import (
    ITEM_IS_NEW,
    cancellation_codes,
    item_key,
    num,
    query_items,
    read_int,
    retry,
    sort_key_between,
    sort_key_of,
)
from chalicelib.ingest.records import Delivered
from chalicelib.metrics import window
from chalicelib.metrics.window import MinuteParts, SubTotal, Totals

# Transaction attempts per post under contention (each on a freshly drawn shard) before answering Busy.
POST_ATTEMPTS = 8

# Per client (one per process in Lambda): the (table, key, minute) whose SUMDIRTY marker it wrote. Bounded,
# forgotten wholesale; a new client (tests, another database) starts empty.
_marked: weakref.WeakKeyDictionary[Any, set[tuple[str, str, int]]] = weakref.WeakKeyDictionary()
_MARKED_MAX = 100_000
_marked_lock = threading.Lock()


def second_attr(second: int) -> str:
    return f"s{second:02d}"


def sub_total_of(item: dict[str, Any]) -> SubTotal:
    """A sub-total item as read (the per-second sums it was read with)."""
    seconds = {}
    for s in range(window.SECONDS_PER_MINUTE):
        attr = item.get(second_attr(s))
        if attr is not None:
            seconds[s] = read_int(attr)
    return SubTotal(
        keys.sum_sub_minute(sort_key_of(item)), read_int(item.get("total")), read_int(item.get("n")), seconds
    )


def _call(read: Callable[[], Any]) -> Any:
    return read()


class SumStore:
    def __init__(self, client: Any, table: str, rng: random.Random | None = None) -> None:
        self.client = client
        self.table = table
        self.rng = rng or random.Random()

    # --- item shapes (the benchmark loads data with these, so shapes cannot drift) -----

    def event_item(self, key: str, value: int, at_ms: int, event_id: str, shard: int) -> dict[str, Any]:
        return {
            **item_key(keys.sum_event_pk(key, window.minute_of(at_ms), shard), keys.sum_event_sk(at_ms, event_id)),
            "v": num(value),
            "at": num(at_ms),
            table.TTL_ATTRIBUTE: num(window.expires_at(at_ms)),
        }

    def sub_total_item(
        self, key: str, minute: int, shard: int, total: int, count: int, seconds: dict[int, int]
    ) -> dict[str, Any]:
        """The sub-total item as the posts' `ADD`s leave it (tests check that the two agree)."""
        item: dict[str, Any] = {
            **item_key(keys.sum_sub_pk(key), keys.sum_sub_sk(minute, shard)),
            "total": num(total),
            "n": num(count),
            table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
        }
        item.update({second_attr(s): num(v) for s, v in seconds.items()})
        return item

    def dirty_item(self, key: str, minute: int) -> dict[str, Any]:
        return {
            **item_key(keys.sum_dirty_pk(keys.sum_dirty_partition(key)), keys.sum_dirty_sk(minute, key)),
            table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
        }

    def post_transaction(
        self, key: str, value: int, at_ms: int, event_id: str, shard: int, event_shard: int = 0, attempt: int = 0
    ) -> dict[str, Any]:
        """The arguments of the post's TransactWriteItems: the event Put and its sub-total ADD.

        The token is a digest of the event id and everything else the request carries (DynamoDB rejects a token
        reused with other parameters), plus the attempt: a retry after a conflict is a new request, and the event's
        condition keeps it from applying twice. botocore resends the token unchanged on its own retries.
        """
        minute = window.minute_of(at_ms)
        identity = f"{self.table}\0{key}\0{event_id}\0{value}\0{at_ms}\0{shard}\0{event_shard}"
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        return {
            "TransactItems": [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": self.event_item(key, value, at_ms, event_id, event_shard),
                        "ConditionExpression": ITEM_IS_NEW,
                    }
                },
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": item_key(keys.sum_sub_pk(key), keys.sum_sub_sk(minute, shard)),
                        "UpdateExpression": "ADD #total :v, #n :one, #sec :v SET #exp = :exp",
                        "ExpressionAttributeNames": {
                            "#total": "total",
                            "#n": "n",
                            "#sec": second_attr(window.second_of(at_ms)),
                            "#exp": table.TTL_ATTRIBUTE,
                        },
                        "ExpressionAttributeValues": {
                            ":v": num(value),
                            ":one": num(1),
                            ":exp": num(window.expires_at((minute + 1) * window.MINUTE_MS)),
                        },
                    }
                },
            ],
            "ClientRequestToken": f"{digest}-{attempt}",
        }

    # --- writes ---------------------------------------------------------------

    def post(self, key: str, value: int, at_ms: int, event_id: str | None = None, shard: int | None = None) -> None:
        """Store one rounded value posted at `at_ms`: its event item and its shard's sub-totals, atomically."""
        event_id = event_id or uuid.uuid4().hex[:16]
        minute = window.minute_of(at_ms)
        marker = (self.table, key, minute)
        with _marked_lock:
            marked = _marked.setdefault(self.client, set())
        if marker not in marked:
            self.client.put_item(TableName=self.table, Item=self.dirty_item(key, minute))
            if len(marked) >= _MARKED_MAX:
                marked.clear()
            marked.add(marker)
        event_shard = self.rng.randrange(keys.SUM_EVENT_SHARDS)

        def attempt(n: int) -> None:
            target = self.rng.randrange(keys.SUM_WRITE_SHARDS) if shard is None else shard
            try:
                self.client.transact_write_items(
                    **self.post_transaction(key, value, at_ms, event_id, target, event_shard, n)
                )
            except self.client.exceptions.TransactionCanceledException as exc:
                if "ConditionalCheckFailed" not in cancellation_codes(exc):
                    raise
                # The event exists: an earlier attempt of this post was applied (event and ADD).

        retry(attempt, attempts=POST_ATTEMPTS, busy="too many concurrent posters on this key; retry")

    # --- reads ----------------------------------------------------------------

    def sum(self, key: str, now_ms: int, window_ms: int) -> int:
        """The sum of the values posted at t with now - window < t <= now."""
        p = window.plan(now_ms, window_ms)
        partial_minutes = [part.minute for part in p.partial]
        seconds = {part.minute: part.seconds for part in p.partial}
        totals = self._minute_totals(key, p.whole, now_ms, also=seconds, raw_ranges=p.raw_ranges)
        return window.combine(
            p,
            {m: t.total for m, t in totals.items() if m in p.whole},
            {m: totals[m].seconds for m in partial_minutes if m in totals},
            totals.raw,
        )

    def minutes(self, key: str, now_ms: int, window_ms: int) -> list[tuple[int, int]]:
        """(minute, that minute's total) for every minute overlapping the window; the last is the minute so far."""
        span = window.minutes_overlapping(now_ms, window_ms)
        totals = self._minute_totals(key, span, now_ms)
        return [(m, totals[m].total if m in totals else 0) for m in span]

    def _minute_totals(
        self,
        key: str,
        whole: range,
        now_ms: int,
        also: Mapping[int, Sequence[int]] | None = None,
        raw_ranges: Sequence[tuple[int, int]] = (),
    ) -> Totals:
        """Totals of the minutes in `whole` (bucket, or sub-totals if not compacted), sub-totals of the minutes
        `also` maps to the seconds wanted of them, and the raw sum over `raw_ranges`, in at most two rounds of
        parallel requests (window.minute_reads decides which)."""
        also = also or {}
        reads = window.minute_reads(whole, now_ms, also)
        # Round 1, in parallel: buckets and done markers of the whole minutes, the sub-totals of the
        # minutes that cannot be compacted yet (and of the edge minutes), the raw edge seconds.
        marker_reads: list[Callable[[], Any]] = (
            [partial(self._buckets, key, whole[0], whole[-1]), partial(self.done_minutes, whole[0], whole[-1])]
            if len(whole)
            else []
        )
        run_reads: list[Callable[[], Any]] = [
            partial(self._sub_total_run, key, run, seconds) for run, seconds in reads.sub_total_runs
        ]
        raw_reads: list[Callable[[], Any]] = [partial(self._raw, key, lo, hi) for lo, hi in raw_ranges]
        results = iter(runtime.fan_out(_call, [*marker_reads, *run_reads, *raw_reads]))
        buckets: dict[int, int] = next(results) if marker_reads else {}
        done: set[int] = next(results) if marker_reads else set()
        sub_totals = [sub_total_of(item) for items in islice(results, len(run_reads)) for item in items]
        parts = window.merge_sub_totals(sub_totals, set(reads.fresh))
        raw = sum(results)
        # Round 2 (only if compaction is behind or crashed).
        missing = reads.missing(buckets, done)
        if missing:
            parts.update(self.sub_totals(key, missing))
        return window.minute_totals(whole, also, buckets, parts, raw)

    def _buckets(self, key: str, first: int, last: int) -> dict[int, int]:
        items = query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.sum_bucket_pk(key), keys.sum_minute_sk(first), keys.sum_minute_sk(last)),
                "ConsistentRead": True,
            },
        )
        return {int(sort_key_of(item)): read_int(item["total"]) for item in items}

    def done_minutes(self, first: int, last: int) -> set[int]:
        """The minutes first..last that compaction finished (their SUMDONE markers)."""
        items = query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.SUM_DONE_PK, keys.sum_minute_sk(first), keys.sum_minute_sk(last)),
                "ProjectionExpression": table.SORT_KEY,
                "ConsistentRead": True,
            },
        )
        return {int(sort_key_of(item)) for item in items}

    def sub_totals(self, key: str, minutes: Iterable[int]) -> dict[int, MinuteParts]:
        """Sub-totals of a key's minutes, merged over shards: one strongly consistent Query per run of minutes
        (at most window.MAX_RUNS), whatever their number; minutes read but not asked for are dropped."""
        wanted = set(minutes)
        pages = runtime.fan_out(lambda run: self._sub_total_run(key, run, ()), window.runs(wanted))
        return window.merge_sub_totals((sub_total_of(item) for items in pages for item in items), wanted)

    def _sub_total_run(self, key: str, run: tuple[int, int], seconds: Iterable[int]) -> list[dict[str, Any]]:
        """Every shard's sub-total item of the minutes run[0]..run[1] (one Query), with total, n and only the
        per-second sums of `seconds` (less to send and parse; the read capacity is the same)."""
        lo, hi = keys.sum_sub_sk_range(*run)
        names = {"#sk": table.SORT_KEY, "#total": "total", "#n": "n"} | {
            f"#{second_attr(s)}": second_attr(s) for s in seconds
        }
        return query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.sum_sub_pk(key), lo, hi),
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
                "ConsistentRead": True,
            },
        )

    def _raw(self, key: str, lo: int, hi: int) -> int:
        """Sum of the raw events with lo <= t <= hi (inclusive ms, inside one minute), over every shard."""
        minute = window.minute_of(lo)

        def one_shard(shard: int) -> int:
            items = query_items(
                self.client,
                {
                    "TableName": self.table,
                    **sort_key_between(
                        keys.sum_event_pk(key, minute, shard),
                        keys.sum_event_sk_bound(lo),
                        keys.sum_event_sk_bound(hi + 1),
                    ),
                    "ConsistentRead": True,
                },
            )
            # The key condition already bounds t; filter anyway (never trust anything but the timestamp).
            return sum(read_int(item["v"]) for item in items if lo <= read_int(item["at"]) <= hi)

        return sum(runtime.fan_out(one_shard, range(keys.SUM_EVENT_SHARDS)))

    def apply_delivered(self, delivered: Sequence[Delivered], now_ms: int) -> None:
        # built by the metrics helper (stub so the consumer can route metric events by this name)
        raise NotImplementedError("metric events from the events stream are not applied yet")
