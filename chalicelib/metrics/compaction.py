"""Compaction of last-hour sums: every minute, the finished minutes' sub-totals sealed into one bucket per key.

Data access (its DynamoDB expressions live here): for each key listed under a minute (SUMDIRTY markers), the minute's
stream item is marked sealed (the fence: from then on the stream's consumer cannot add to it, its write fails the
"not sealed" condition and adds to the minute's late values instead); only then are the sub-totals (the stream
item's among them) read, and their sum is written once (`attribute_not_exists`) as the bucket, in the state item;
the minute's sub-total sketches, read after the same seal, are merged, bounded and written once as its sketch bucket,
and appended to the key's prefix chain, before the sum's bucket (so a minute with a sum bucket has its sketch
bucket and, unless an overlapping run passed it by, its prefix).
When every key of the minute is done, a SUMDONE marker says so. The sub-totals and done markers are read through
the SumStore, which owns their shapes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib import keys, runtime, table
from chalicelib.dynamo import item_key, num, query_items, retry, sort_key_between, sort_key_of
from chalicelib.metrics import window
from chalicelib.metrics.store import (
    BUCKET_COUNT,
    BUCKET_TOTAL,
    CHAINED,
    PREFIX_CHAIN,
    PREFIX_MINUTE,
    PREFIX_MINUTES,
    PREFIX_SKETCH,
    SKETCH_BUCKET,
    SumStore,
)
from chalicelib.metrics.window import LOOKBACK_MINUTES, MinuteParts
from chalicelib.sketch import EMPTY, Sketch


@dataclass(frozen=True)
class Compaction:
    minutes: list[int]  # minutes this run finished (wrote their SUMDONE marker)
    written: int  # bucket items this run wrote
    existing: int  # bucket items another run had already written


def compact(store: SumStore, now_ms: int, lookback: int = LOOKBACK_MINUTES) -> Compaction:
    """Seal every finished minute of the last `lookback` that is not done yet. Idempotent; safe to overlap.

    Each key's minute is sealed, then its bucket is written once (`attribute_not_exists`) with the sum of the
    minute's sub-totals, which no longer change (stream values go to the late values once sealed; direct posts
    committed within SEAL_LAG_MS); the minute's SUMDONE marker goes last, so a run that
    crashes halfway leaves some buckets and no marker, and the next run completes it. Reads per run: one
    Query of done markers, one per dirty partition and one per listed key (over all its pending minutes),
    whatever the lookback.
    """
    span = window.compaction_minutes(now_ms, lookback)
    done = store.done_minutes(span[0], span[-1]) if len(span) else set()
    pending = [m for m in span if m not in done]
    listed = _listed(store, pending)
    by_key = window.pending_by_key(pending, listed)
    # The fence goes up before the sub-totals are read (strongly consistent): a consumer write that added to the stream
    # item came before the seal and is read; one after it fails its condition and goes to the late values.
    runtime.fan_out(lambda pair: store.seal_stream(*pair, now_ms), [(k, m) for k, ms in by_key.items() for m in ms])
    parts = dict(zip(by_key, runtime.fan_out(lambda k: store.sub_totals(k, by_key[k]), by_key), strict=True))
    sketches = dict(zip(by_key, runtime.fan_out(lambda k: store.sub_sketches(k, by_key[k]), by_key), strict=True))
    finished: list[int] = []
    written = existing = 0
    for minute in pending:
        for key in sorted(listed.get(minute, ())):
            bucket = sketches[key].get(minute, EMPTY).bounded()
            _put_sketch_bucket(store, key, minute, bucket)
            chained = _extend_prefix(store, key, minute, bucket)
            if _put_bucket(store, key, minute, parts[key].get(minute, MinuteParts()), chained):
                written += 1
            else:
                existing += 1
        store.client.put_item(
            TableName=store.table,
            Item={
                **item_key(keys.SUM_DONE_PK, keys.sum_minute_sk(minute)),
                "at": num(now_ms),
                table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
            },
        )
        finished.append(minute)
    return Compaction(finished, written, existing)


def _listed(store: SumStore, minutes: Sequence[int]) -> dict[int, set[str]]:
    """The keys listed under each of `minutes` (dirty markers): one Query per partition over their range."""
    if not minutes:
        return {}
    lo, hi = keys.sum_dirty_sk_range(min(minutes), max(minutes))
    wanted = set(minutes)

    def one_partition(partition: int) -> list[tuple[int, str]]:
        items = query_items(
            store.client,
            {
                "TableName": store.table,
                **sort_key_between(keys.sum_dirty_pk(partition), lo, hi),
                "ProjectionExpression": table.SORT_KEY,
                "ConsistentRead": True,
            },
        )
        return [keys.sum_dirty_entry(sort_key_of(item)) for item in items]

    listed: dict[int, set[str]] = {}
    for entries in runtime.fan_out(one_partition, range(keys.SUM_DIRTY_PARTITIONS)):
        for minute, key in entries:
            if minute in wanted:
                listed.setdefault(minute, set()).add(key)
    return listed


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
    try:
        client.update_item(
            TableName=store.table,
            Key=item_key(keys.sum_bucket_pk(key), keys.sum_minute_sk(minute)),
            UpdateExpression="SET #total = :total, #n = :n, #chained = :chained, #exp = :exp",
            ConditionExpression="attribute_not_exists(#total)",
            ExpressionAttributeNames={
                "#total": BUCKET_TOTAL,
                "#n": BUCKET_COUNT,
                "#chained": CHAINED,
                "#exp": table.TTL_ATTRIBUTE,
            },
            ExpressionAttributeValues={
                ":total": num(parts.total),
                ":n": num(parts.count),
                ":chained": num(int(chained)),
                ":exp": num(window.expires_at((minute + 1) * window.MINUTE_MS)),
            },
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True
