"""What the sums' items hold: their attribute names, their shapes as written (the benchmark loads data with
these, so shapes cannot drift), and how each is read back. The items and their life are described in
chalicelib/metrics/store.py."""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from typing import Any

from chalicelib.metrics import batch, window
from chalicelib.metrics.window import MinuteParts, MinuteState, SubTotal
from chalicelib.pure import sketch
from chalicelib.pure.sketch import Sketch
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import item_key, num, read_int, sort_key_of

# Attributes of a minute's stream item (SUMSUB# {minute}#ST) besides its sums: compaction's fence, the sketch of the
# values, the committed runs (batch.run_id) and a version that every write of the stream's values moves on.
SEALED = "sealed"
STREAM_SKETCH = "sketch"
RUNS = "runs"
VERSION = "v"
# Attributes of a key's minute state item (SUMB#): the bucket, the stream's values that came after sealing (and its
# RUNS, VERSION and markers, as on a stream item).
BUCKET_TOTAL = "total"
BUCKET_COUNT = "n"
# 1 when the minute's sketch bucket is in the key's prefix chain (see compaction._extend_prefix), else 0.
CHAINED = "q"
LATE_TOTAL = "lt"
LATE_COUNT = "ln"
LATE_SKETCH = "lsketch"
# The least and greatest value: of a sub-total item (posts) or stream item, of a bucket (in the state item), and of
# the late values (also in the state item). Quantiles are kept inside them (Sketch.quantile_within).
LOW = "mn"
HIGH = "mx"
LATE_LOW = "lmn"
LATE_HIGH = "lmx"
# The attribute of a minute's sketch bucket item (SUMQ# B{minute}) holding the encoded, bounded bucket.
SKETCH_BUCKET = "sketch"
# Attributes of a prefix item (SUMQ# P{minute}) and of the chain's head (SUMQ# H), which also names its minute.
PREFIX_SKETCH = "cum"
PREFIX_CHAIN = "chain"
PREFIX_MINUTES = "k"
PREFIX_MINUTE = "minute"
_NOT_BINS = frozenset({table.PARTITION_KEY, table.SORT_KEY, table.TTL_ATTRIBUTE, SKETCH_BUCKET})


def late_second_attr(second: int) -> str:
    return f"l{second:02d}"


def consumer_event_shard(shard_id: str) -> int:
    return zlib.crc32(shard_id.encode()) % keys.SUM_EVENT_SHARDS


def second_attr(second: int) -> str:
    return f"s{second:02d}"


def sub_total_of(item: dict[str, Any]) -> SubTotal:
    """A sub-total item as read (the per-second sums it was read with)."""
    seconds = {}
    for s in range(window.SECONDS_PER_MINUTE):
        attr = item.get(second_attr(s))
        if attr is not None:
            seconds[s] = read_int(attr)
    count = read_int(item.get("n"))
    return SubTotal(
        keys.sum_sub_minute(sort_key_of(item)),
        read_int(item.get("total")),
        count,
        seconds,
        extremes_in(item, count, LOW, HIGH),
    )


def extremes_in(item: Mapping[str, Any], count: int, low: str, high: str) -> window.Extremes:
    """The extremes an item keeps of its `count` values in attributes `low` and `high`."""
    found = [read_int(item[a]) if a in item else None for a in (low, high)]
    return window.extremes_kept(count, found[0], found[1])


def minute_state_of(item: dict[str, Any]) -> MinuteState:
    """A key's minute state item as read: the bucket if compaction wrote it, and the late values."""
    seconds = {}
    for s in range(window.SECONDS_PER_MINUTE):
        attr = item.get(late_second_attr(s))
        if attr is not None:
            seconds[s] = read_int(attr)
    late_count = read_int(item.get(LATE_COUNT))
    late_extremes = extremes_in(item, late_count, LATE_LOW, LATE_HIGH)
    late = MinuteParts(read_int(item.get(LATE_TOTAL)), late_count, seconds, late_extremes)
    late_sketch = sketch_of(item, LATE_SKETCH)
    if BUCKET_TOTAL not in item:
        return MinuteState(late=late, late_sketch=late_sketch, runs=runs_of(item))
    chained = read_int(item.get(CHAINED)) == 1
    count = read_int(item.get(BUCKET_COUNT))
    return MinuteState(
        read_int(item[BUCKET_TOTAL]),
        count,
        late,
        chained,
        late_sketch,
        runs_of(item),
        extremes_in(item, count, LOW, HIGH),
    )


def sketch_of(item: Mapping[str, Any] | None, attr: str) -> Sketch:
    """An encoded sketch attribute of an item (empty if the item or the attribute is missing)."""
    found = (item or {}).get(attr)
    return sketch.EMPTY if found is None else Sketch.decode(found["B"])


def runs_of(item: Mapping[str, Any] | None) -> frozenset[bytes]:
    """The stream runs an item says are committed (batch.run_id)."""
    found = (item or {}).get(RUNS)
    return frozenset() if found is None else frozenset(found["BS"])


def bins_of(item: Mapping[str, Any]) -> dict[str, int]:
    """The bin counts of a sketch item (its other attributes are its key and TTL)."""
    return {name: read_int(value) for name, value in item.items() if name not in _NOT_BINS}


def prefix_of(item: Mapping[str, Any], minute: int) -> window.Prefix:
    """A prefix item (or the chain's head) as read."""
    return window.Prefix(
        minute, read_int(item[PREFIX_CHAIN]), read_int(item[PREFIX_MINUTES]), Sketch.decode(item[PREFIX_SKETCH]["B"])
    )


# Attributes of a packed item: its values (batch.encode_pack), and the run that wrote it (batch.run_id), whose values
# count once the run is committed. TEXT_PACKED: the values of a packed item written (in one transaction with its sums)
# before packed items were binary.
PACKED = "eb"
RUN = "run"
TEXT_PACKED = "ev"


def raw_item(item: dict[str, Any]) -> batch.RawItem:
    """An event item's raw values: one for a posted value, every value of a packed item (with the run that wrote it;
    none on the text items of older versions, written in one transaction with their sums)."""
    at = read_int(item["at"])
    if PACKED in item:
        values = [(at + offset, value) for offset, value in batch.decode_pack(item[PACKED]["B"])]
        return batch.RawItem(item[RUN]["B"], values)
    if TEXT_PACKED in item:
        return batch.RawItem(None, [(at + o, v) for o, v in batch.decode_text_pack(item[TEXT_PACKED]["S"])])
    return batch.RawItem(None, [(at, read_int(item["v"]))])


class SumItems:
    """The table and client a sums store works on, and its items' shapes."""

    def __init__(self, client: Any, table: str, rng: random.Random | None = None) -> None:
        self.client = client
        self.table = table
        self.rng = rng or random.Random()

    def event_item(self, key: str, value: int, at_ms: int, event_id: str, shard: int) -> dict[str, Any]:
        return {
            **item_key(keys.sum_event_pk(key, window.minute_of(at_ms), shard), keys.sum_event_sk(at_ms, event_id)),
            "v": num(value),
            "at": num(at_ms),
            table.TTL_ATTRIBUTE: num(window.expires_at(at_ms)),
        }

    def sub_total_item(
        self,
        key: str,
        minute: int,
        shard: int,
        total: int,
        count: int,
        seconds: dict[int, int],
        extremes: window.Extremes = window.NO_VALUES,
    ) -> dict[str, Any]:
        """The sub-total item as the posts' `ADD`s leave it (tests check that the two agree)."""
        item: dict[str, Any] = {
            **item_key(keys.sum_sub_pk(key), keys.sum_sub_sk(minute, shard)),
            "total": num(total),
            "n": num(count),
            table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
        }
        if extremes.low is not None and extremes.high is not None:
            item.update({LOW: num(extremes.low), HIGH: num(extremes.high)})
        item.update({second_attr(s): num(v) for s, v in seconds.items()})
        return item

    def sketch_sub_items(self, key: str, minute: int, shard: int, bins: Mapping[str, int]) -> list[dict[str, Any]]:
        """The sub-total's sketch items as the posts' `ADD`s leave them, one per group of bins."""
        parts: dict[int, dict[str, Any]] = {}
        for name, count in bins.items():
            part = keys.sum_sketch_part(name)
            item = parts.setdefault(
                part,
                {
                    **item_key(keys.sum_sketch_pk(key), keys.sum_sketch_sub_sk(minute, shard, part)),
                    table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
                },
            )
            item[name] = num(count)
        return list(parts.values())

    def dirty_item(self, key: str, minute: int) -> dict[str, Any]:
        return {
            **item_key(keys.sum_dirty_pk(keys.sum_dirty_partition(key)), keys.sum_dirty_sk(minute, key)),
            table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
        }

    def packed_item(self, key: str, minute: int, shard_id: str, pack: batch.Pack, run_id: bytes) -> dict[str, Any]:
        return {
            **item_key(
                keys.sum_event_pk(key, minute, consumer_event_shard(shard_id)),
                keys.sum_packed_sk(pack.second_ms, shard_id, pack.sequence_number, pack.chunk),
            ),
            "at": num(pack.second_ms),
            PACKED: {"B": batch.encode_pack(pack.entries)},
            RUN: {"B": run_id},
            table.TTL_ATTRIBUTE: num(window.expires_at(pack.second_ms)),
        }
