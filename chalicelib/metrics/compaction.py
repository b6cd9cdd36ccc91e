"""Compaction of last-hour sums: every minute, the finished minutes' sub-totals sealed into one bucket per key.

Data access (its DynamoDB expressions live here): for each key listed under a minute (SUMDIRTY markers), the minute's
stream item is marked sealed (the fence: from then on the stream's consumer cannot add to it, its write fails the
"not sealed" condition and adds to the minute's late values instead); only then are the sub-totals (the stream
item's among them) read, and their sum is written once (`attribute_not_exists`) as the bucket, in the state item;
the minute's sub-total sketches, read after the same seal, are merged, bounded and written once as its sketch bucket,
and appended to the key's prefix chain, before the sum's bucket (so a minute with a sum bucket has its sketch
bucket and, unless an overlapping run passed it by, its prefix).
Work is bounded per run: keys go in chunks, oldest minute first, each chunk sealed, read and written before the next;
a chunk ends by recording the minute's progress (SUMPROGRESS: the last key done, in sort order), and a run whose time
budget is nearly spent stops there, leaving the rest to the next run. When every key of the minute is done, a SUMDONE
marker says so. The sub-totals and done markers are read through the SumStore, which owns their shapes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from chalicelib.metrics import window
from chalicelib.metrics.generations import Generations
from chalicelib.metrics.items import (
    BUCKET_COUNT,
    BUCKET_TOTAL,
    CHAINED,
    HIGH,
    LOW,
    PREFIX_CHAIN,
    PREFIX_MINUTE,
    PREFIX_MINUTES,
    PREFIX_SKETCH,
    SKETCH_BUCKET,
)
from chalicelib.metrics.store import SumStore
from chalicelib.metrics.window import LOOKBACK_MINUTES, MinuteParts
from chalicelib.names.store import NameStore
from chalicelib.process import request_context, runtime
from chalicelib.pure.sketch import EMPTY, Sketch
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import (
    item_key,
    num,
    query_items,
    retry,
    sort_key_between,
    sort_key_of,
    sort_keys_between,
)

# Keys sealed, read and written together: large enough to keep the database busy, small enough that a chunk takes a
# small part of a run's budget.
CHUNK_KEYS = 50
# Another chunk starts only while the budget left is at least this many times what the longest chunk so far took.
CHUNK_MARGIN = 2.0
PROGRESS = "through"


@dataclass
class Compaction:
    minutes: list[int] = field(default_factory=list)  # minutes this run finished (wrote their SUMDONE marker)
    written: int = 0  # bucket items this run wrote
    existing: int = 0  # bucket items another run had already written
    stopped: bool = False  # the budget ran low: the next run goes on from where this one stopped


def compact(store: SumStore, now_ms: int, lookback: int = LOOKBACK_MINUTES) -> Compaction:
    """Seal every finished minute of the last `lookback` that is not done yet, as far as the time budget allows.
    Idempotent; safe to overlap.

    Each key's minute is sealed, then its bucket is written once (`attribute_not_exists`) with the sum of the
    minute's sub-totals, which no longer change (stream values go to the late values once sealed; direct posts
    committed within SEAL_LAG_MS); the minute's SUMDONE marker goes last, so a run that crashes or stops halfway
    leaves some buckets and no marker, and the next run completes it from the minute's progress. Reads per run: one
    Query of done markers, one of progress, one per dirty partition, and per key and minute its sub-totals and
    sketches, whatever the lookback.
    """
    span = window.compaction_minutes(now_ms, lookback)
    done = store.done_minutes(span[0], span[-1]) if len(span) else set()
    pending = [m for m in span if m not in done]
    listed = listed_keys(store, pending)
    plan = window.compaction_plan(pending, listed, _progress(store, pending), CHUNK_KEYS)
    report = Compaction()
    budget = Budget()
    for minute, chunks in plan:
        for chunk in chunks:
            if not budget.fits():
                report.stopped = True
                return report
            with budget.measured():
                written = _compact_chunk(store, minute, chunk, now_ms)
            report.written += written
            report.existing += len(chunk) - written
            _advance(store, minute, chunk[-1])
        _mark_done(store, minute, now_ms)
        report.minutes.append(minute)
    return report


class Budget:
    """Whether another chunk fits in what is left of the run's time budget (request_context's; none outside a
    request): it must leave CHUNK_MARGIN times the longest chunk so far, measured in the budget's own terms."""

    def __init__(self) -> None:
        self.longest = 0.0

    def fits(self) -> bool:
        left = request_context.remaining()
        return left is None or left > CHUNK_MARGIN * self.longest

    @contextlib.contextmanager
    def measured(self) -> Iterator[None]:
        before = request_context.remaining()
        yield
        after = request_context.remaining()
        if before is not None and after is not None:
            self.longest = max(self.longest, before - after)


def _compact_chunk(store: SumStore, minute: int, chunk: Sequence[str], now_ms: int) -> int:
    """Seal the keys' minute, then read and write each key's buckets; how many buckets this run wrote."""
    # The fence goes up before the sub-totals are read (strongly consistent): a consumer write that added to the stream
    # item came before the seal and is read; one after it fails its condition and goes to the late values.
    runtime.fan_out(lambda key: store.seal_stream(key, minute, now_ms), chunk)
    return sum(runtime.fan_out(lambda key: _compact_key(store, key, minute), chunk))


def _compact_key(store: SumStore, key: str, minute: int) -> bool:
    """One key's sealed minute: its sketch bucket, its place in the prefix chain, then its sum bucket. Whether this
    run wrote the sum bucket (False: another run had)."""
    parts = store.sub_totals(key, [minute]).get(minute, MinuteParts())
    bucket = store.sub_sketches(key, [minute]).get(minute, EMPTY).bounded()
    _put_sketch_bucket(store, key, minute, bucket)
    chained = _extend_prefix(store, key, minute, bucket)
    # The registry of keys (GET /metric): this run lists every key with values per minute anyway, so the key's
    # entry is written here, once per key and compacted minute, and never by a post (chalicelib/names/store.py).
    logical, gen = keys.metric_logical(key)
    NameStore(store.client, store.table).note(
        "metric", logical, minute * window.MINUTE_MS, Generations(store.client, store.table).check(logical, gen)
    )
    return _put_bucket(store, key, minute, parts, chained)


def listed_keys(store: SumStore, minutes: Sequence[int]) -> dict[int, set[str]]:
    """The keys listed under each of `minutes` (dirty markers): one Query per partition over their range."""
    if not minutes:
        return {}
    lo, hi = keys.sum_dirty_sk_range(min(minutes), max(minutes))
    wanted = set(minutes)

    def one_partition(partition: int) -> list[tuple[int, str]]:
        found = sort_keys_between(store.client, store.table, keys.sum_dirty_pk(partition), lo, hi)
        return [keys.sum_dirty_entry(sk) for sk in found]

    listed: dict[int, set[str]] = {}
    for entries in runtime.fan_out(one_partition, range(keys.SUM_DIRTY_PARTITIONS)):
        for minute, key in entries:
            if minute in wanted:
                listed.setdefault(minute, set()).add(key)
    return listed


def _progress(store: SumStore, minutes: Sequence[int]) -> dict[int, str]:
    """Each minute's last key done by an earlier run (every key before it, in sort order, is done too): one Query."""
    if not minutes:
        return {}
    items = query_items(
        store.client,
        {
            "TableName": store.table,
            **sort_key_between(
                keys.SUM_PROGRESS_PK, keys.sum_minute_sk(min(minutes)), keys.sum_minute_sk(max(minutes))
            ),
            "ConsistentRead": True,
        },
    )
    return {int(sort_key_of(item)): item[PROGRESS]["S"] for item in items}


def _advance(store: SumStore, minute: int, key: str) -> None:
    """Record that every key of the minute up to `key` is done; a run that got further keeps its own record."""
    client = store.client
    with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
        client.update_item(
            TableName=store.table,
            Key=item_key(keys.SUM_PROGRESS_PK, keys.sum_minute_sk(minute)),
            UpdateExpression="SET #through = :key, #exp = :exp",
            ConditionExpression="attribute_not_exists(#through) OR #through < :key",
            ExpressionAttributeNames={"#through": PROGRESS, "#exp": table.TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":key": {"S": key},
                ":exp": num(window.expires_at((minute + 1) * window.MINUTE_MS)),
            },
        )


def _mark_done(store: SumStore, minute: int, now_ms: int) -> None:
    store.client.put_item(
        TableName=store.table,
        Item={
            **item_key(keys.SUM_DONE_PK, keys.sum_minute_sk(minute)),
            "at": num(now_ms),
            table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
        },
    )


def _put_sketch_bucket(store: SumStore, key: str, minute: int, merged: Sketch) -> None:
    """Write the minute's sketch bucket (bounded: sketch.MAX_BINS per sign) once; an existing one holds the same."""
    client = store.client
    with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
        client.update_item(
            TableName=store.table,
            Key=item_key(keys.sum_sketch_pk(key), keys.sum_sketch_bucket_sk(minute)),
            UpdateExpression="SET #sketch = :sketch, #exp = :exp",
            ConditionExpression="attribute_not_exists(#sketch)",
            ExpressionAttributeNames={"#sketch": SKETCH_BUCKET, "#exp": table.TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":sketch": {"B": merged.encode()},
                ":exp": num(window.expires_at((minute + 1) * window.MINUTE_MS)),
            },
        )


def _extend_prefix(store: SumStore, key: str, minute: int, bucket: Sketch) -> bool:
    """Append the minute's bucket to the key's prefix chain: its prefix P(minute) = the head's + the bucket, and the
    head moves to it, in one transaction conditional on the head read (so the chain only grows at its head, in
    minute order, each minute once). A head already at or past the minute leaves the chain alone: the minute is in
    it, or was passed by (a run that had it out of its lookback got ahead of a slower one). Whether the minute is in
    the chain (its prefix exists), for the sum's bucket, written after it."""
    client = store.client
    expires = num(window.expires_at((minute + 1) * window.MINUTE_MS))

    def attempt(_: int) -> bool:
        head = store.prefix_head(key)
        if head is not None and head.minute >= minute:
            found = store.prefix_at_or_before(key, minute)
            return found is not None and found.minute == minute
        chain, k, cum = (head.chain, head.k + 1, head.sketch.merge(bucket)) if head else (minute, 1, bucket)
        fields = {
            PREFIX_CHAIN: num(chain),
            PREFIX_MINUTES: num(k),
            PREFIX_SKETCH: {"B": cum.encode()},
            table.TTL_ATTRIBUTE: expires,
        }
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": store.table,
                        "Item": {
                            **item_key(keys.sum_sketch_pk(key), keys.SUM_SKETCH_HEAD_SK),
                            PREFIX_MINUTE: num(minute),
                            **fields,
                        },
                        "ConditionExpression": "attribute_not_exists(#m) OR #m = :head",
                        "ExpressionAttributeNames": {"#m": PREFIX_MINUTE},
                        "ExpressionAttributeValues": {":head": num(head.minute if head else -1)},
                    }
                },
                {
                    "Put": {
                        "TableName": store.table,
                        "Item": {**item_key(keys.sum_sketch_pk(key), keys.sum_sketch_prefix_sk(minute)), **fields},
                        "ConditionExpression": "attribute_not_exists(#cum)",
                        "ExpressionAttributeNames": {"#cum": PREFIX_SKETCH},
                    }
                },
            ]
        )
        return True

    return retry(attempt, busy="the key's prefix chain kept changing; compaction resumes next run")


def _put_bucket(store: SumStore, key: str, minute: int, parts: MinuteParts, chained: bool) -> bool:
    """Write the bucket once, saying whether the minute's sketch is in the prefix chain. False if it exists (another
    run wrote the same figures)."""
    client = store.client
    # The minute's extremes, from its sub-totals' (the stream item's among them); none if one of them keeps none.
    low, high = parts.extremes.bounds()
    extremes_values = {":lo": num(low), ":hi": num(high)} if low is not None and high is not None else {}
    extremes_set = ", #lo = :lo, #hi = :hi" if extremes_values else ""
    extremes_names = {"#lo": LOW, "#hi": HIGH} if extremes_values else {}
    try:
        client.update_item(
            TableName=store.table,
            Key=item_key(keys.sum_bucket_pk(key), keys.sum_minute_sk(minute)),
            UpdateExpression=f"SET #total = :total, #n = :n, #chained = :chained, #exp = :exp{extremes_set}",
            ConditionExpression="attribute_not_exists(#total)",
            ExpressionAttributeNames={
                "#total": BUCKET_TOTAL,
                "#n": BUCKET_COUNT,
                "#chained": CHAINED,
                "#exp": table.TTL_ATTRIBUTE,
                **extremes_names,
            },
            ExpressionAttributeValues={
                ":total": num(parts.total),
                ":n": num(parts.count),
                ":chained": num(int(chained)),
                ":exp": num(window.expires_at((minute + 1) * window.MINUTE_MS)),
                **extremes_values,
            },
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True
