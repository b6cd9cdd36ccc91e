"""Data access for the history of metric values: rolled-up hours and days, and minutes read as buckets.

Every DynamoDB expression of rollups lives here (the minute items are read through SumStore, which owns them). Items
(chalicelib/storage/keys.py): a key's hour and day buckets (SUMR#{key}), the periods every key of which is rolled up
(SUMRDONE), a run's progress through a period's keys (SUMRPROGRESS), and the keys to roll up per period (SUMRKEYS#:
hours the events stream wrote to, listed by the consumer before it applies them, since a value that comes after its
minute was compacted leaves no SUMDIRTY marker; days with hour buckets, listed by the hour rollup before it writes one).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from chalicelib.ingest.records import Delivered
from chalicelib.metrics import batch, compaction, rollup, window
from chalicelib.metrics.items import sketch_of
from chalicelib.metrics.rollup import DAY, HOUR, NOTHING, Bucket, Retention
from chalicelib.metrics.store import SumStore
from chalicelib.process import runtime, settings
from chalicelib.pure.sketch import EMPTY, Sketch
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import (
    item_key,
    num,
    query_items,
    read_int,
    sort_key_between,
    sort_key_of,
    sort_keys_between,
)

A = TypeVar("A")
B = TypeVar("B")
TOTAL, COUNT, LOW, HIGH, SKETCH = "total", "n", "mn", "mx", "sketch"
PROGRESS = "through"
# Per process: the (table, key, hour) whose SUMRKEYS marker it wrote (one write per key and hour, not per value).
_listed: set[tuple[str, str, int]] = set()
_listed_lock = threading.Lock()
_LISTED_MAX = 100_000
# A period's items outlive its retention by a day, so no item inside a readable range has expired.
EXPIRY_SLACK_S = 86_400


def retention() -> Retention:
    """The tiers' retention, from the stage's settings."""
    current = settings.get()
    return Retention(
        current.metric_minutes_retention_h * rollup.HOUR_MS,
        current.metric_hours_retention_d * rollup.DAY_MS,
        current.metric_days_retention_d * rollup.DAY_MS,
    )


class RollupStore:
    def __init__(self, sums: SumStore, tiers: Retention | None = None) -> None:
        self.sums = sums
        self.client = sums.client
        self.table = sums.table
        self.tiers = tiers or retention()

    # --- the write path: the stream's keys per hour ----------------------------------------------------------

    def list_stream_hours(self, delivered: Sequence[Delivered]) -> None:
        """List each (key, hour) of a consumer batch's metric events for the hour rollup, once per process, before
        the values are applied (so the rollup finds a key whose values all came late)."""
        wanted = {(batch.metric(d).key, batch.metric(d).time_ms // rollup.HOUR_MS) for d in delivered}
        with _listed_lock:
            todo = [(k, h) for k, h in wanted if (self.table, k, h) not in _listed]
        for key, hour in todo:
            self._put_listing(key, HOUR, hour)
        with _listed_lock:
            if len(_listed) >= _LISTED_MAX:
                _listed.clear()
            _listed.update((self.table, k, h) for k, h in todo)

    def _put_listing(self, key: str, tier: str, period: int) -> None:
        # Needed until the period is rolled up: an hour's while its minutes live, a day's while its hours do.
        end_s = (period + 1) * rollup.TIER_MS[tier] // window.SECOND_MS
        lives = window.RETENTION_S if tier == HOUR else self.tiers.hours_ms // window.SECOND_MS
        self.client.put_item(
            TableName=self.table,
            Item={
                **item_key(keys.sum_rollup_keys_pk(key), keys.sum_rollup_keys_sk(tier, period, key)),
                table.TTL_ATTRIBUTE: num(end_s + lives + EXPIRY_SLACK_S),
            },
        )

    # --- reads ------------------------------------------------------------------------------------------------

    def buckets(self, key: str, tier: str, first: int, last: int, with_sketch: bool) -> dict[int, Bucket]:
        """The key's rolled-up buckets of `tier`, periods first..last: one Query of their figures, and one of their
        sketches if asked for (apart, so that figures alone cost a few dozen bytes a period)."""

        def read(pk: str) -> list[dict[str, Any]]:
            return query_items(
                self.client,
                {
                    "TableName": self.table,
                    **sort_key_between(pk, keys.sum_rollup_sk(tier, first), keys.sum_rollup_sk(tier, last)),
                    # Written just before the period's done marker, which is read strongly consistent too.
                    "ConsistentRead": True,
                },
            )

        pks = [keys.sum_rollup_pk(key), *([keys.sum_rollup_sketch_pk(key)] if with_sketch else [])]
        figures, *sketch_items = runtime.fan_out(read, pks)
        sketches = {
            keys.sum_rollup_period(sort_key_of(i)): sketch_of(i, SKETCH) for items in sketch_items for i in items
        }
        return {
            (period := keys.sum_rollup_period(sort_key_of(item))): _bucket_of(item, sketches.get(period, EMPTY))
            for item in figures
        }

    def done(self, tier: str, first: int, last: int) -> set[int]:
        """The periods of `tier` first..last every key of which is rolled up (one Query)."""
        if first > last:
            return set()
        low, high = keys.sum_rollup_sk(tier, first), keys.sum_rollup_sk(tier, last)
        return {
            keys.sum_rollup_period(sk)
            for sk in sort_keys_between(self.client, self.table, keys.SUM_ROLLUP_DONE_PK, low, high)
        }

    def minute_buckets(self, key: str, first: int, last: int, now_ms: int, with_sketch: bool) -> dict[int, Bucket]:
        """The key's minutes first..last as buckets, exactly as the last-hour reads take them: the compacted bucket
        or else the sub-totals, plus the late values (window.minute_totals); sketches (with_sketch) from the sketch
        buckets or else the sub-total sketches, plus the late values' (window.window_sketch). Reads grow with the
        minutes, not with their values: a Query each of state items, done markers and sketch buckets, and the
        sub-totals of the minutes not compacted."""
        span = range(first, last + 1)
        reads = window.minute_reads(span, now_ms, {})
        states: dict[int, window.MinuteState]
        done: set[int]
        states, done = together(
            partial(self.sums.minute_states, key, first, last), partial(self.sums.done_minutes, first, last)
        )
        uncompacted = sorted({*reads.fresh, *reads.missing(states, done)})
        parts = self.sums.sub_totals(key, uncompacted) if uncompacted else {}
        totals = window.minute_totals(span, (), states, parts, 0)
        sketches: dict[int, Sketch] = {}
        if with_sketch:
            sketch_buckets, late_bins = self.sums.sketch_buckets_of(key, first, last)
            subs = self.sums.sub_sketches(key, uncompacted) if uncompacted else {}
            for m in totals:
                state = states.get(m)
                late = [state.late_sketch] if state is not None else []
                late += [late_bins[m]] if m in late_bins else []
                sketches[m] = window.window_sketch(range(m, m + 1), sketch_buckets, subs, {m: EMPTY.merge(*late)})
        found: dict[int, Bucket] = {}
        for m, part in totals.items():
            if part.count == 0:
                continue
            state = states.get(m)
            compacted = state.extremes if state is not None and state.total is not None else window.NO_VALUES
            low, high = compacted.merge(part.extremes).bounds()
            found[m] = Bucket(part.count, part.total, low, high, sketches.get(m, EMPTY))
        return found

    def keys_of_hour(self, hour: int) -> set[str]:
        """Every key with values in the hour: listed under one of its minutes for compaction (SUMDIRTY) or by the
        events stream's consumer (SUMRKEYS), one Query per partition of each."""
        minutes = range(hour * 60, hour * 60 + 60)
        listed = compaction.listed_keys(self.sums, minutes)
        found = {k for ks in listed.values() for k in ks}
        return found | self._listed_keys(HOUR, hour)

    def keys_of_day(self, day: int) -> set[str]:
        """Every key with an hour bucket in the day (the hour rollup lists it before writing one)."""
        return self._listed_keys(DAY, day)

    def _listed_keys(self, tier: str, period: int) -> set[str]:
        prefix = keys.sum_rollup_keys_prefix(tier, period)

        def one_partition(pk: str) -> list[str]:
            found = sort_keys_between(self.client, self.table, pk, prefix, prefix + "~")  # keys sort before "~"
            return [keys.sum_rollup_keys_entry(sk) for sk in found]

        return {k for ks in runtime.fan_out(one_partition, keys.sum_rollup_keys_partitions()) for k in ks}

    def progress(self, tier: str, period: int) -> str | None:
        item = self.client.get_item(
            TableName=self.table,
            Key=item_key(keys.SUM_ROLLUP_PROGRESS_PK, keys.sum_rollup_sk(tier, period)),
            ConsistentRead=True,
        ).get("Item")
        return None if item is None else str(item[PROGRESS]["S"])

    # --- rollup writes ---------------------------------------------------------------------------------------

    def put_bucket(self, key: str, tier: str, period: int, bucket: Bucket) -> bool:
        """Write a final period's bucket once (a second run computes the same figures); False if it existed. An
        hour's key is listed under its day first, so the day's rollup finds it."""
        if tier == HOUR:
            self._put_listing(key, DAY, period // 24)
        extremes = (
            {LOW: num(bucket.low), HIGH: num(bucket.high)} if bucket.low is not None and bucket.high is not None else {}
        )
        sk = keys.sum_rollup_sk(tier, period)
        expires = num(self._expires(tier, period))
        sketch_item = {SKETCH: {"B": bucket.sketch.bounded().encode()}, table.TTL_ATTRIBUTE: expires}
        self._put_once({**item_key(keys.sum_rollup_sketch_pk(key), sk), **sketch_item})
        figures = {TOTAL: num(bucket.total), COUNT: num(bucket.count), **extremes, table.TTL_ATTRIBUTE: expires}
        return self._put_once({**item_key(keys.sum_rollup_pk(key), sk), **figures})

    def _put_once(self, item: dict[str, Any]) -> bool:
        """Put an item that does not exist yet; False if it does (a run before wrote the same final figures)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#sk)",
                ExpressionAttributeNames={"#sk": table.SORT_KEY},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def advance(self, tier: str, period: int, key: str) -> None:
        """Record that every key of the period up to `key` is done; a run that got further keeps its own record."""
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table,
                Key=item_key(keys.SUM_ROLLUP_PROGRESS_PK, keys.sum_rollup_sk(tier, period)),
                UpdateExpression="SET #through = :key, #exp = :exp",
                ConditionExpression="attribute_not_exists(#through) OR #through < :key",
                ExpressionAttributeNames={"#through": PROGRESS, "#exp": table.TTL_ATTRIBUTE},
                ExpressionAttributeValues={":key": {"S": key}, ":exp": num(self._expires(tier, period))},
            )

    def mark_done(self, tier: str, period: int, now_ms: int) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                **item_key(keys.SUM_ROLLUP_DONE_PK, keys.sum_rollup_sk(tier, period)),
                "at": num(now_ms),
                table.TTL_ATTRIBUTE: num(self._expires(tier, period)),
            },
        )

    def _expires(self, tier: str, period: int) -> int:
        span = rollup.TIER_MS[tier]
        return ((period + 1) * span + self.tiers.of(tier)) // window.SECOND_MS + EXPIRY_SLACK_S


def together(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """Two reads in parallel."""
    results: list[Any] = runtime.fan_out(lambda read: read(), [first, second])
    return results[0], results[1]


def _bucket_of(item: dict[str, Any], sketch: Sketch) -> Bucket:
    count = read_int(item.get(COUNT))
    if count == 0:
        return NOTHING
    low = read_int(item[LOW]) if LOW in item else None
    high = read_int(item[HIGH]) if HIGH in item else None
    return Bucket(count, read_int(item.get(TOTAL)), low, high, sketch)


def series(rollups: RollupStore, key: str, span: rollup.SeriesRange, now_ms: int, with_sketch: bool) -> list[Bucket]:
    """One bucket per point of `span`: each period from its tier's bucket where the period is done, else from the
    tier below (rollup.point_sources). Reads: the done markers and buckets of the tiers the step needs (one Query
    each), and the minutes of the periods not rolled up yet (normally the last day or so; window.runs bounds the
    Queries)."""
    end_ms = span.first + span.points * span.step_ms
    done_days: set[int] = set()
    done_hours: set[int] = set()
    days: dict[int, Bucket] = {}
    hours: dict[int, Bucket] = {}
    if span.tier == DAY:
        first_day, last_day = span.first // rollup.DAY_MS, (end_ms - 1) // rollup.DAY_MS
        done_days, days = together(
            partial(rollups.done, DAY, first_day, last_day),
            partial(rollups.buckets, key, DAY, first_day, last_day, with_sketch),
        )
        open_days = [d for d in range(first_day, last_day + 1) if d not in done_days]
        if open_days:
            first_hour, last_hour = open_days[0] * 24, open_days[-1] * 24 + 23
        else:
            first_hour, last_hour = 0, -1
    elif span.tier == HOUR:
        first_hour, last_hour = span.first // rollup.HOUR_MS, (end_ms - 1) // rollup.HOUR_MS
    else:
        first_hour, last_hour = 0, -1
    if first_hour <= last_hour:
        done_hours, hours = together(
            partial(rollups.done, HOUR, first_hour, last_hour),
            partial(rollups.buckets, key, HOUR, first_hour, last_hour, with_sketch),
        )
    sources = [rollup.point_sources(start, span.step_ms, span.tier, done_hours, done_days) for start in span.starts]
    wanted = {period for point in sources for tier, period in point if tier == rollup.MINUTE}
    minutes: dict[int, Bucket] = {}
    for found in runtime.fan_out(
        lambda run: rollups.minute_buckets(key, run[0], run[1], now_ms, with_sketch),
        window.runs(wanted, gap=60),
    ):
        minutes.update(found)
    by_tier = {rollup.MINUTE: minutes, HOUR: hours, DAY: days}
    return [rollup.merge_all(by_tier[tier].get(period, NOTHING) for tier, period in point) for point in sources]
