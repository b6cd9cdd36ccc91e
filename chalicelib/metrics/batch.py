"""How a batch of metric events from the stream is written: grouped per key, minute and stream shard, split into
transactions at record boundaries, each second's values packed into a few items. Pure: no AWS.

One group is one key-minute's events from one stream shard, in stream order. Each transaction of a group adds its
values to one sub-total item (or, once the minute is sealed, to the minute's late values) and marks the last record
it applied, so a transaction is one unit of exactly-once: every record of it or none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chalicelib import keys, sketch
from chalicelib.ingest import applied
from chalicelib.ingest.records import Delivered, MetricEvent
from chalicelib.metrics import window

# Values per packed item: at most ~22 KB of text (offset:value pairs), far below DynamoDB's 400 KB per item.
PACK_MAX = 1_000
# Sketch items one run may add to (one per group of bins, keys.sum_sketch_part): every bin of |v| <= MAX_MAGNITUDE.
SKETCH_PARTS = keys.sum_sketch_part(sketch.bin_key(-window.MAX_MAGNITUDE)) + 1
# TransactWriteItems takes 100 items: the minute's state and sub-total updates, the sketch items, the packed items.
PACKED_PER_TRANSACTION = 100 - 2 - SKETCH_PARTS

GroupKey = tuple[str, int, str]  # metric key, minute, stream shard id


def metric(d: Delivered) -> MetricEvent:
    event = d.event
    if not isinstance(event, MetricEvent):
        raise TypeError(f"not a metric event: {event!r}")
    return event


def group(delivered: Iterable[Delivered]) -> dict[GroupKey, list[Delivered]]:
    """The events per key, minute (of their own time) and stream shard, each in stream order."""
    groups: dict[GroupKey, list[Delivered]] = defaultdict(list)
    for d in delivered:
        event = metric(d)
        groups[(event.key, window.minute_of(event.time_ms), d.shard_id)].append(d)
    return dict(groups)


@dataclass(frozen=True)
class Pack:
    """One packed item: values of one second, at their offsets (ms) inside it."""

    second_ms: int
    sequence_number: str  # of the chunk's first event: with the shard and chunk, the item's key
    chunk: int
    entries: tuple[tuple[int, int], ...]


def packs(events: Sequence[Delivered]) -> list[Pack]:
    """The packed items of one group's events: per second, chunks of at most PACK_MAX values."""
    by_second: dict[int, list[Delivered]] = defaultdict(list)
    for d in events:
        t = metric(d).time_ms
        by_second[t - t % window.SECOND_MS].append(d)
    result = []
    for second_ms, chunked in sorted(by_second.items()):
        for c in range(0, len(chunked), PACK_MAX):
            chunk = chunked[c : c + PACK_MAX]
            entries = tuple((metric(d).time_ms - second_ms, metric(d).value) for d in chunk)
            result.append(Pack(second_ms, chunk[0].sequence_number, c // PACK_MAX, entries))
    return result


def encode_pack(entries: Iterable[tuple[int, int]]) -> str:
    return ",".join(f"{offset}:{value}" for offset, value in entries)


def decode_pack(text: str) -> list[tuple[int, int]]:
    pairs = (entry.split(":") for entry in text.split(",") if entry)
    return [(int(offset), int(value)) for offset, value in pairs]


def transactions(events: Sequence[Delivered]) -> list[list[Delivered]]:
    """One group's events split at record boundaries into runs whose packed items fit one transaction."""
    runs: list[list[Delivered]] = []
    per_second: dict[int, int] = defaultdict(int)  # values of the last run per second

    def items(counts: dict[int, int]) -> int:
        return sum(-(-n // PACK_MAX) for n in counts.values())

    for record in applied.by_record(events):
        added: dict[int, int] = defaultdict(int, per_second)
        for d in record:
            added[metric(d).time_ms // window.SECOND_MS] += 1
        if runs and items(added) <= PACKED_PER_TRANSACTION:
            runs[-1].extend(record)
            per_second = added
        else:
            runs.append(list(record))
            per_second = defaultdict(int)
            for d in record:
                per_second[metric(d).time_ms // window.SECOND_MS] += 1
    return runs


@dataclass(frozen=True)
class Sums:
    """What a run adds: total, count and per-second sums (second of the minute -> sum)."""

    total: int
    count: int
    seconds: dict[int, int]


def sums(events: Iterable[Delivered]) -> Sums:
    seconds: dict[int, int] = defaultdict(int)
    total = count = 0
    for d in events:
        event = metric(d)
        total += event.value
        count += 1
        seconds[window.second_of(event.time_ms)] += event.value
    return Sums(total, count, dict(seconds))


def bins(events: Iterable[Delivered]) -> dict[int, dict[str, int]]:
    """What a run adds to the minute's sketch: per group of bins (keys.sum_sketch_part), bin key -> count."""
    parts: dict[int, dict[str, int]] = defaultdict(dict)
    for d in events:
        name = sketch.bin_key(metric(d).value)
        part = parts[keys.sum_sketch_part(name)]
        part[name] = part.get(name, 0) + 1
    return dict(parts)
