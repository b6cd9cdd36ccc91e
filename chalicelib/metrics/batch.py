"""How a batch of metric events from the stream is written: grouped per key, minute and stream shard, each group's
values added in one conditional write and its raw values packed per second. Pure: no AWS.

One group is one key-minute's events from one stream shard, in stream order: a run. Its packed items (its values
in time order, a few seconds each) are written first, each naming the run (run_id); the run's one conditional write then adds its sums and sketch, marks its last
record applied and records the run's id among the minute's committed runs. A packed item counts only if its run is
committed there (raw_sum), so packed items left by a write that never happened (a crash, a refused condition)
count nothing, and the next attempt writes its own.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from chalicelib.ingest.records import Delivered, MetricEvent
from chalicelib.metrics import window
from chalicelib.pure import varint
from chalicelib.pure.sketch import Sketch

# Values per packed item: at most ~10 KB (about 3 KB typically), far below DynamoDB's 400 KB per item.
PACK_MAX = 1_000
# How far a packed item's values reach from the start of its first second: a read of one second finds every item
# holding its values among those starting at most PACK_SPAN_MS - 1 s before it.
PACK_SPAN_MS = 2_000

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


def run_id(shard_id: str, run: Sequence[Delivered]) -> bytes:
    """What names a run: its shard, first and last record, in 4 bytes (a minute's item holds one per batch). A stale
    packed item is taken for a committed run only if their ids collide: about 1 in 70 million for a minute of 60."""
    identity = f"{shard_id}\0{run[0].marker}\0{run[-1].marker}".encode()
    return hashlib.sha256(identity).digest()[:4]


@dataclass(frozen=True)
class Pack:
    """One packed item: values of at most PACK_SPAN_MS from the start of its first second, at their offsets (ms)."""

    second_ms: int
    sequence_number: str  # of its first event: with the shard and chunk, the item's key
    chunk: int  # its place among the run's packed items
    entries: tuple[tuple[int, int], ...]


def packs(events: Sequence[Delivered]) -> list[Pack]:
    """The packed items of one run: its values in time order, cut into items of at most PACK_MAX values within
    PACK_SPAN_MS of the item's first second (a live batch's values of a key, about a second of them, make one)."""
    chunks: list[list[Delivered]] = []
    for d in sorted(events, key=lambda d: metric(d).time_ms):
        t = metric(d).time_ms
        if not chunks or len(chunks[-1]) == PACK_MAX or t >= _second(metric(chunks[-1][0]).time_ms) + PACK_SPAN_MS:
            chunks.append([])
        chunks[-1].append(d)
    return [
        Pack(
            _second(metric(chunk[0]).time_ms),
            chunk[0].sequence_number,
            c,
            tuple((metric(d).time_ms - _second(metric(chunk[0]).time_ms), metric(d).value) for d in chunk),
        )
        for c, chunk in enumerate(chunks)
    ]


def _second(t: int) -> int:
    return t - t % window.SECOND_MS


def encode_pack(entries: Iterable[tuple[int, int]]) -> bytes:
    """Entries (offset ms, value) in offset order, each as varints of the gap from the previous offset and of the
    zigzagged value: about 3 bytes a value (10 at most), where text took about 8."""
    out = bytearray()
    previous = 0
    for offset, value in sorted(entries):
        varint.put(out, offset - previous)
        varint.put(out, varint.zigzag(value))
        previous = offset
    return bytes(out)


def decode_pack(data: bytes) -> list[tuple[int, int]]:
    entries = []
    pos = offset = 0
    while pos < len(data):
        gap, pos = varint.get(data, pos)
        value, pos = varint.get(data, pos)
        offset += gap
        entries.append((offset, varint.unzigzag(value)))
    return entries


def decode_text_pack(text: str) -> list[tuple[int, int]]:
    """Entries of a packed item written as text (offset:value,...), before packed items were binary."""
    pairs = (entry.split(":") for entry in text.split(",") if entry)
    return [(int(offset), int(value)) for offset, value in pairs]


@dataclass(frozen=True)
class RawItem:
    """An item of raw values as read: a posted value (no run), or a packed item and the run that wrote it."""

    run: bytes | None
    values: Sequence[tuple[int, int]]  # (time ms, value)


def raw_sum(items: Iterable[RawItem], committed: Collection[bytes], lo: int, hi: int) -> int:
    """The sum of the raw values with lo <= t <= hi, of posted values and of packed items whose run is committed."""
    return sum(
        value
        for item in items
        if item.run is None or item.run in committed
        for t, value in item.values
        if lo <= t <= hi
    )


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


def sketch(events: Iterable[Delivered]) -> Sketch:
    """The sketch of a run's values."""
    return Sketch.of(metric(d).value for d in events)
