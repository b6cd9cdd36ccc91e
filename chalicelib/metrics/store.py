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
Compaction (every minute, for minutes that ended SEAL_LAG_MS ago): for each key listed,
the sum of its sub-totals is written once (`attribute_not_exists`) as a bucket item;
when every key of the minute is done, a SUMDONE marker says so.
Reads (see window.plan): buckets for whole compacted minutes, sub-totals for whole
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
from dataclasses import dataclass, field
from typing import Any

from chalicelib import keys, table
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
from chalicelib.metrics import window
from chalicelib.request_context import ContextThreadPool

# Lookback of the compactor: minutes older than this that were never compacted
# (the schedule was off) stay readable from their sub-totals, only slower.
LOOKBACK_MINUTES = 15
# Transaction attempts per post under contention (each on a freshly drawn shard) before answering Busy.
POST_ATTEMPTS = 8
# Sub-totals are read one Query per run of wanted minutes; runs this close are read as one (a few extra items
# beat a round trip), and at most MAX_RUNS Queries are made (closest runs merged first).
RUN_GAP = 4
MAX_RUNS = 4

_pool_lock = threading.Lock()
_pool: ContextThreadPool | None = None
_POOL_PREFIX = "sums-pool"

# Per client (one per process in Lambda): the (table, key, minute) whose SUMDIRTY marker it wrote. Bounded,
# forgotten wholesale; a new client (tests, another database) starts empty.
_marked: weakref.WeakKeyDictionary[Any, set[tuple[str, str, int]]] = weakref.WeakKeyDictionary()
_MARKED_MAX = 100_000


def _executor() -> ContextThreadPool:
    """Shared by every request in the process: a sum issues its independent reads in parallel."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ContextThreadPool(max_workers=32, thread_name_prefix=_POOL_PREFIX)
        return _pool


def _map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """fn over items, in parallel on the shared pool; inline for one item or inside a pool thread
    (a task waiting on tasks queued behind it in the same bounded pool could deadlock)."""
    items = list(items)
    if len(items) <= 1 or threading.current_thread().name.startswith(_POOL_PREFIX):
        return [fn(item) for item in items]
    return list(_executor().map(fn, items))


def second_attr(second: int) -> str:
    return f"s{second:02d}"


@dataclass
class MinuteParts:
    """A key's sub-totals of one minute, merged over its shards."""

    total: int = 0
    count: int = 0
    seconds: dict[int, int] = field(default_factory=dict)

    def add_item(self, item: dict[str, Any]) -> None:
        self.total += read_int(item.get("total"))
        self.count += read_int(item.get("n"))
        for s in range(window.SECONDS_PER_MINUTE):
            attr = item.get(second_attr(s))
            if attr is not None:
                self.seconds[s] = self.seconds.get(s, 0) + read_int(attr)


@dataclass(frozen=True)
class Compaction:
    minutes: list[int]  # minutes this run finished (wrote their SUMDONE marker)
    written: int  # bucket items this run wrote
    existing: int  # bucket items another run had already written


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
        with _pool_lock:
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
    ) -> _Totals:
        """Totals of the minutes in `whole` (bucket, or sub-totals if not compacted), sub-totals of the minutes
        `also` maps to the seconds wanted of them, and the raw sum over `raw_ranges`, in at most two rounds of
        parallel requests."""
        also = also or {}
        pool = _executor()
        sealed_through = window.sealable_through(now_ms)
        # Round 1, in parallel: buckets and done markers of the whole minutes, the sub-totals of the
        # minutes that cannot be compacted yet (and of the edge minutes), the raw edge seconds.
        fresh = sorted({*(m for m in whole if m > sealed_through), *also})
        futures = []
        if len(whole):
            futures.append(pool.submit(self._buckets, key, whole[0], whole[-1]))
            futures.append(pool.submit(self._done, whole[0], whole[-1]))
        run_futures = [
            pool.submit(
                self._sub_total_run, key, run, {s for m, ss in also.items() if run[0] <= m <= run[1] for s in ss}
            )
            for run in runs(fresh)
        ]
        raw_futures = [pool.submit(self._raw, key, lo, hi) for lo, hi in raw_ranges]
        buckets: dict[int, int] = futures[0].result() if futures else {}
        done: set[int] = futures[1].result() if futures else set()
        parts = _merge_sub_totals([f.result() for f in run_futures], set(fresh))
        raw = sum(f.result() for f in raw_futures)
        # Round 2 (only if compaction is behind or crashed): sub-totals of whole minutes neither bucketed nor done.
        missing = [m for m in whole if m <= sealed_through and m not in buckets and m not in done]
        if missing:
            parts.update(self._sub_totals(key, missing))
        totals = _Totals(raw=raw)
        for m in whole:
            if m in buckets:
                totals[m] = MinuteParts(total=buckets[m])
            elif m in parts:
                totals[m] = parts[m]
        for m in also:
            if m in parts:
                totals[m] = parts[m]
        return totals

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

    def _done(self, first: int, last: int) -> set[int]:
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

    def _sub_totals(self, key: str, minutes: Iterable[int]) -> dict[int, MinuteParts]:
        """Sub-totals of a key's minutes, merged over shards: one strongly consistent Query per run of minutes
        (at most MAX_RUNS), whatever their number; minutes read but not asked for are dropped."""
        wanted = set(minutes)
        return _merge_sub_totals(_map(lambda run: self._sub_total_run(key, run, ()), runs(wanted)), wanted)

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

        return sum(_map(one_shard, range(keys.SUM_EVENT_SHARDS)))

    # --- compaction -----------------------------------------------------------

    def compact(self, now_ms: int, lookback: int = LOOKBACK_MINUTES) -> Compaction:
        """Seal every finished minute of the last `lookback` that is not done yet. Idempotent; safe to overlap.

        Each bucket is written once (`attribute_not_exists`) with the sum of the minute's sub-totals, which no
        longer change (the minute ended SEAL_LAG_MS ago); the minute's SUMDONE marker goes last, so a run that
        crashes halfway leaves some buckets and no marker, and the next run completes it. Reads per run: one
        Query of done markers, one per dirty partition and one per listed key (over all its pending minutes),
        whatever the lookback.
        """
        last = window.sealable_through(now_ms)
        first = last - lookback + 1
        done = self._done(first, last)
        pending = [m for m in range(first, last + 1) if m not in done]
        listed = self._listed(pending)
        by_key = {
            key: [m for m in pending if key in listed.get(m, ())] for key in {k for ks in listed.values() for k in ks}
        }
        parts = dict(zip(by_key, _map(lambda k: self._sub_totals(k, by_key[k]), by_key), strict=True))
        finished: list[int] = []
        written = existing = 0
        for minute in pending:
            for key in sorted(listed.get(minute, ())):
                if self._put_bucket(key, minute, parts[key].get(minute, MinuteParts())):
                    written += 1
                else:
                    existing += 1
            self.client.put_item(
                TableName=self.table,
                Item={
                    **item_key(keys.SUM_DONE_PK, keys.sum_minute_sk(minute)),
                    "at": num(now_ms),
                    table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
                },
            )
            finished.append(minute)
        return Compaction(finished, written, existing)

    def _listed(self, minutes: Sequence[int]) -> dict[int, set[str]]:
        """The keys listed under each of `minutes` (dirty markers): one Query per partition over their range."""
        if not minutes:
            return {}
        lo, hi = keys.sum_dirty_sk_range(min(minutes), max(minutes))
        wanted = set(minutes)

        def one_partition(partition: int) -> list[tuple[int, str]]:
            items = query_items(
                self.client,
                {
                    "TableName": self.table,
                    **sort_key_between(keys.sum_dirty_pk(partition), lo, hi),
                    "ProjectionExpression": table.SORT_KEY,
                    "ConsistentRead": True,
                },
            )
            return [keys.sum_dirty_entry(sort_key_of(item)) for item in items]

        listed: dict[int, set[str]] = {}
        for entries in _map(one_partition, range(keys.SUM_DIRTY_PARTITIONS)):
            for minute, key in entries:
                if minute in wanted:
                    listed.setdefault(minute, set()).add(key)
        return listed

    def _put_bucket(self, key: str, minute: int, parts: MinuteParts) -> bool:
        """Write the bucket once. False if it exists (another run wrote the same figures)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **item_key(keys.sum_bucket_pk(key), keys.sum_minute_sk(minute)),
                    "total": num(parts.total),
                    "n": num(parts.count),
                    table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
                },
                ConditionExpression=ITEM_IS_NEW,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


def _merge_sub_totals(pages: Iterable[list[dict[str, Any]]], wanted: set[int]) -> dict[int, MinuteParts]:
    results: dict[int, MinuteParts] = {}
    for items in pages:
        for item in items:
            minute = keys.sum_sub_minute(sort_key_of(item))
            if minute in wanted:
                results.setdefault(minute, MinuteParts()).add_item(item)
    return results


def runs(minutes: Iterable[int], gap: int = RUN_GAP, most: int = MAX_RUNS) -> list[tuple[int, int]]:
    """Inclusive (first, last) ranges covering `minutes`: runs less than `gap` minutes apart are joined, and
    then the closest runs until at most `most` are left."""
    result: list[list[int]] = []
    for m in sorted(set(minutes)):
        if result and m - result[-1][1] <= gap:
            result[-1][1] = m
        else:
            result.append([m, m])
    while len(result) > most:
        i = min(range(len(result) - 1), key=lambda j: result[j + 1][0] - result[j][1])
        result[i : i + 2] = [[result[i][0], result[i + 1][1]]]
    return [(a, b) for a, b in result]


class _Totals(dict[int, MinuteParts]):
    """Minute -> parts, plus the raw edge-second sum."""

    def __init__(self, raw: int = 0) -> None:
        super().__init__()
        self.raw = raw
