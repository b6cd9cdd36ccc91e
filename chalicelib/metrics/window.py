"""Window arithmetic for last-hour sums: rounding, minute/second bucketing, and read plans.

Pure: no AWS, no Chalice. Times are epoch milliseconds (ints). A window of W ms
ending at `now` holds the events with now - W < t <= now, i.e. the inclusive
millisecond range [now - W + 1, now]. `plan` splits that range into
  * whole minutes (read from minute totals: a compacted bucket or the write-time sub-totals),
  * whole seconds of the (at most two) partial minutes at its ends (per-second sub-totals),
  * at most two partial seconds, read as raw events at millisecond precision.
So the number of raw events a sum reads is bounded by the events of two seconds,
whatever the number of events in the window.

`minute_reads` decides which items the store reads for those minutes (buckets, done markers, runs of sub-totals),
and `minute_totals` puts what it read together; the store only runs the reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from chalicelib.pure.sketch import EMPTY, Sketch

SECOND_MS = 1_000
MINUTE_MS = 60_000
SECONDS_PER_MINUTE = 60
MAX_WINDOW_S = 86_400
DEFAULT_WINDOW_S = 3_600
# |value| <= 1e15 keeps every value an exact float/int and every sum an exact
# DynamoDB number (38 significant digits) for far more posts than a key can receive.
MAX_MAGNITUDE = 10**15
# Items live this long past their time: the hour rollup reads an hour's minutes once it is final (rollup.FINAL_AFTER_MS,
# 25 h after it ends), and has the rest (22 h) to catch up if it falls behind.
RETENTION_S = 48 * 3_600
# How old an event (by its own time) may be and still be stored: an older one is in no window. Below RETENTION_S, so
# the items of an accepted event outlive every window that holds it.
RETENTION_MS = MAX_WINDOW_S * SECOND_MS
# A minute is sealed (compacted, immutable) only this long after it ends, so that
# a post whose timestamp falls in it has finished writing (API Gateway gives up at 29 s).
SEAL_LAG_MS = 30_000
# How far apart the clocks of the stream's consumer and of compaction may be (both Lambda's, NTP-synchronised).
CLOCK_SKEW_MS = 2_000
# Lookback of the compactor: minutes older than this that were never compacted
# (the schedule was off) stay readable from their sub-totals, only slower.
LOOKBACK_MINUTES = 15
# Sub-totals are read one Query per run of wanted minutes; runs this close are read as one (a few extra items
# beat a round trip), and at most MAX_RUNS Queries are made (closest runs merged first).
RUN_GAP = 4
MAX_RUNS = 4


def round_half_away(x: int | float) -> int:
    """The nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3).

    Decimal(float) is the float's exact binary value, so 0.49999999999999994 -> 0
    and 2.5000000000000004 -> 3, with no double rounding.
    """
    if isinstance(x, int):
        return x
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def minute_of(ms: int) -> int:
    return ms // MINUTE_MS


def second_of(ms: int) -> int:
    """The second within its minute, 0..59."""
    return (ms % MINUTE_MS) // SECOND_MS


def expires_at(ms: int) -> int:
    """TTL (epoch seconds) for an item about time `ms`: past the retention of the largest window."""
    return ms // SECOND_MS + RETENTION_S


def too_old(time_ms: int, now_ms: int) -> bool:
    """An event at `time_ms` is older than retention at `now_ms`: it is refused, never stored."""
    return now_ms - time_ms > RETENTION_MS


def sealable_through(now_ms: int, lag_ms: int = SEAL_LAG_MS) -> int:
    """The last minute that may be compacted at `now_ms`: it ended at least `lag_ms` ago."""
    return (now_ms - lag_ms) // MINUTE_MS - 1


def listed_in_time(minute: int, committed_ms: int) -> bool:
    """Whether a key listed under `minute` by `committed_ms` (its dirty marker written) is in every compaction's list
    of the minute: compaction lists a minute only once it is sealable by its own clock."""
    return committed_ms < (minute + 1) * MINUTE_MS + SEAL_LAG_MS - CLOCK_SKEW_MS


def _split(lo: int, hi: int, unit: int) -> tuple[range, list[tuple[int, int]]]:
    """Whole units inside [lo, hi] (inclusive), and the leftover pieces, each inside one unit."""
    if lo > hi:
        return range(0), []
    first = -(-lo // unit)  # first unit starting at or after lo
    last = (hi + 1) // unit - 1  # last unit ending at or before hi
    if first > last:
        boundary = (lo // unit + 1) * unit
        pieces = [(lo, min(hi, boundary - 1))]
        if boundary <= hi:
            pieces.append((boundary, hi))
        return range(0), pieces
    pieces = []
    if lo < first * unit:
        pieces.append((lo, first * unit - 1))
    if hi >= (last + 1) * unit:
        pieces.append(((last + 1) * unit, hi))
    return range(first, last + 1), pieces


@dataclass(frozen=True)
class PartialMinute:
    minute: int
    seconds: tuple[int, ...]  # whole seconds (0..59) of this minute inside the window
    raw: tuple[tuple[int, int], ...]  # inclusive ms ranges (each inside one second) read as raw events


@dataclass(frozen=True)
class Plan:
    whole: range  # minutes entirely inside the window
    partial: tuple[PartialMinute, ...]  # at most two

    @property
    def raw_ranges(self) -> list[tuple[int, int]]:
        return [r for p in self.partial for r in p.raw]


def plan(now_ms: int, window_ms: int) -> Plan:
    """How to read the window (now - window, now]."""
    whole, pieces = _split(now_ms - window_ms + 1, now_ms, MINUTE_MS)
    partial = []
    for lo, hi in pieces:
        seconds, raw = _split(lo, hi, SECOND_MS)
        partial.append(PartialMinute(minute_of(lo), tuple(s % SECONDS_PER_MINUTE for s in seconds), tuple(raw)))
    return Plan(whole, tuple(partial))


def combine(
    p: Plan,
    minute_totals: Mapping[int, int],
    second_sums: Mapping[int, Mapping[int, int]],
    raw_total: int,
) -> int:
    """The window's sum from the parts `p` names: whole-minute totals, per-second sums, raw events."""
    total = sum(minute_totals.get(m, 0) for m in p.whole)
    for part in p.partial:
        seconds = second_sums.get(part.minute, {})
        total += sum(seconds.get(s, 0) for s in part.seconds)
    return total + raw_total


def minutes_overlapping(now_ms: int, window_ms: int) -> range:
    """Every minute that overlaps (now - window, now], oldest first (the per-minute series)."""
    return range(minute_of(now_ms - window_ms + 1), minute_of(now_ms) + 1)


# --- which items to read ---------------------------------------------------------


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


@dataclass(frozen=True)
class Extremes:
    """The least and greatest of some values, which keep quantiles inside them (Sketch.quantile_within). `known`
    is False when some of the values were stored without their extremes (before items kept them): no bound then.
    low and high are None when there are no values."""

    low: int | None = None
    high: int | None = None
    known: bool = True

    def merge(self, other: Extremes) -> Extremes:
        if not (self.known and other.known):
            return UNKNOWN
        if self.low is None or self.high is None:
            return other
        if other.low is None or other.high is None:
            return self
        return Extremes(min(self.low, other.low), max(self.high, other.high))

    def bounds(self) -> tuple[int | None, int | None]:
        """(low, high) to clamp quantiles to; (None, None) when not known."""
        return (self.low, self.high) if self.known else (None, None)


NO_VALUES = Extremes()
UNKNOWN = Extremes(known=False)


def extremes_kept(count: int, low: int | None, high: int | None) -> Extremes:
    """The extremes of an item's `count` values as it keeps them (low, high None: it did not keep them)."""
    if count == 0:
        return NO_VALUES
    if low is None or high is None:
        return UNKNOWN
    return Extremes(low, high)


def extremes_of(values: Iterable[int]) -> Extremes:
    ordered = sorted(values)
    return Extremes(ordered[0], ordered[-1]) if ordered else NO_VALUES


@dataclass(frozen=True)
class SubTotal:
    """One shard's sub-total item of a minute: total, count, the per-second sums that were read, and the extremes."""

    minute: int
    total: int
    count: int
    seconds: Mapping[int, int]
    extremes: Extremes = NO_VALUES


@dataclass
class MinuteParts:
    """A key's sub-totals of one minute, merged over its shards."""

    total: int = 0
    count: int = 0
    seconds: dict[int, int] = field(default_factory=dict)
    extremes: Extremes = NO_VALUES

    def add(self, sub: SubTotal | MinuteParts) -> None:
        self.total += sub.total
        self.count += sub.count
        for s, v in sub.seconds.items():
            self.seconds[s] = self.seconds.get(s, 0) + v
        self.extremes = self.extremes.merge(sub.extremes)


def merge_sub_totals(subs: Iterable[SubTotal], wanted: set[int]) -> dict[int, MinuteParts]:
    """The shards' sub-totals merged per minute; minutes read but not wanted are dropped."""
    results: dict[int, MinuteParts] = {}
    for sub in subs:
        if sub.minute in wanted:
            results.setdefault(sub.minute, MinuteParts()).add(sub)
    return results


@dataclass(frozen=True)
class MinuteState:
    """A key's minute as its state item says: the bucket compaction wrote (None: not compacted) and the stream's values
    that came after the minute was sealed (added to whatever the minute's base is)."""

    total: int | None = None
    count: int = 0
    late: MinuteParts = field(default_factory=MinuteParts)
    chained: bool = False  # the minute's sketch bucket is in the key's prefix chain
    late_sketch: Sketch = EMPTY  # the late values' sketch (bins written by older versions live in their own items)
    runs: frozenset[bytes] = frozenset()  # the stream runs that added late values (their packed values count)
    extremes: Extremes = NO_VALUES  # the bucket's (the late values' are in `late`)


class Totals(dict[int, MinuteParts]):
    """Minute -> parts, plus the raw edge-second sum."""

    def __init__(self, raw: int = 0) -> None:
        super().__init__()
        self.raw = raw


@dataclass(frozen=True)
class MinuteReads:
    """The first round of reads for the minutes of `whole` and the edge minutes of `also`, all in parallel."""

    whole: range  # done markers over whole[0]..whole[-1] (none if empty)
    state_span: tuple[int, int] | None  # the minutes whose state items (buckets, late values) are read: all of them
    sub_total_runs: tuple[tuple[tuple[int, int], frozenset[int]], ...]  # (first, last) minutes, seconds wanted
    fresh: frozenset[int]  # the minutes whose sub-totals the runs are for
    sealed_through: int  # minutes up to this one may have a bucket

    def missing(self, states: Mapping[int, MinuteState], done: Iterable[int]) -> list[int]:
        """Second round, only if a minute is not compacted: whole minutes that may have been compacted but have no
        bucket, and either a state item (the key has values there: compaction is behind, crashed, or had finished
        the minute before they came) or no done marker (their sub-totals are read)."""
        finished = set(done)
        return [
            m
            for m in self.whole
            if m <= self.sealed_through and (states[m].total is None if m in states else m not in finished)
        ]


def minute_reads(whole: range, now_ms: int, also: Mapping[int, Sequence[int]]) -> MinuteReads:
    """What to read for totals of the minutes in `whole` (bucket, or sub-totals while a minute cannot be
    compacted yet) and sub-totals of the minutes `also` maps to the seconds wanted of them."""
    sealed_through = sealable_through(now_ms)
    fresh = sorted({*(m for m in whole if m > sealed_through), *also})
    every = [*whole, *also]
    return MinuteReads(
        whole=whole,
        state_span=(min(every), max(every)) if every else None,
        sub_total_runs=tuple(
            (run, frozenset(s for m, ss in also.items() if run[0] <= m <= run[1] for s in ss)) for run in runs(fresh)
        ),
        fresh=frozenset(fresh),
        sealed_through=sealed_through,
    )


def minute_totals(
    whole: range,
    also: Iterable[int],
    states: Mapping[int, MinuteState],
    parts: Mapping[int, MinuteParts],
    raw: int,
) -> Totals:
    """Totals of the whole minutes (a bucket wins over sub-totals) and the parts of the `also` minutes, each plus
    the values that came after its minute was sealed."""
    totals = Totals(raw=raw)
    for m in whole:
        state = states.get(m)
        if state is not None and state.total is not None:
            base: MinuteParts | None = MinuteParts(total=state.total, count=state.count)
        else:
            base = parts.get(m)
        merged = _with_late(base, state)
        if merged is not None:
            totals[m] = merged
    for m in also:
        merged = _with_late(parts.get(m), states.get(m))
        if merged is not None:
            totals[m] = merged
    return totals


def _with_late(base: MinuteParts | None, state: MinuteState | None) -> MinuteParts | None:
    if state is None or state.late.count == 0:
        return base
    merged = MinuteParts()
    for piece in (base, state.late):
        if piece is not None:
            merged.add(piece)
    return merged


def compaction_minutes(now_ms: int, lookback: int = LOOKBACK_MINUTES) -> range:
    """The minutes a compaction at `now_ms` seals: the last `lookback` that ended SEAL_LAG_MS ago."""
    last = sealable_through(now_ms)
    return range(last - lookback + 1, last + 1)


def compaction_plan(
    pending: Sequence[int], listed: Mapping[int, set[str]], progress: Mapping[int, str], size: int
) -> list[tuple[int, list[list[str]]]]:
    """A compaction run's work in the order it does it: each pending minute, oldest first (a key's minutes join its
    prefix chain in order), with its listed keys in sort order after `progress` (the minute's last key a run
    finished: every key before it is done too), in chunks of at most `size`."""
    plan = []
    for minute in sorted(pending):
        done_through = progress.get(minute)
        todo = sorted(k for k in listed.get(minute, ()) if done_through is None or k > done_through)
        plan.append((minute, [todo[i : i + size] for i in range(0, len(todo), size)]))
    return plan


def window_sketch(
    span: range, buckets: Mapping[int, Sketch], subs: Mapping[int, Sketch], late: Mapping[int, Sketch]
) -> Sketch:
    """The sketch of the minutes in `span`: each minute's bucket (where compaction wrote it; it equals the sub-total
    sketches it was made from) or else its sub-total sketches, plus the bins of values that came after sealing (in
    neither)."""
    parts = [buckets.get(m, subs.get(m)) for m in span] + [late[m] for m in span if m in late]
    return EMPTY.merge(*(p for p in parts if p is not None))


def window_extremes(span: range, states: Mapping[int, MinuteState], subs: Mapping[int, Extremes]) -> Extremes:
    """The extremes of the values of the minutes in `span`, from the same items as their sketch: a compacted
    minute's bucket (in its state item, read anyway), another's sub-totals, plus every minute's late values. Per
    minute, so no prefix is needed: the state items of the window are read whatever the window holds."""
    merged = NO_VALUES
    for m in span:
        state = states.get(m)
        if state is not None and state.total is not None:
            merged = merged.merge(state.extremes)
        elif m in subs:
            merged = merged.merge(subs[m])
        if state is not None:
            merged = merged.merge(state.late.extremes)
    return merged


@dataclass(frozen=True)
class Prefix:
    """A prefix of a key's chain: the merged sketch buckets of the chain's minutes up to `minute` (compaction appends
    each minute it compacts to the chain, in order; see compaction.py)."""

    minute: int
    chain: int  # the chain's first minute: a chain restarts only once its head expired (a day without values)
    k: int  # how many minutes of the chain it holds
    sketch: Sketch


def prefix_sketch(
    span: range,
    states: Mapping[int, MinuteState],
    end: Prefix | None,
    start: Prefix | None,
    subs: Mapping[int, Sketch],
    late: Mapping[int, Sketch],
) -> Sketch | None:
    """The sketch of the minutes in `span`, reading two prefixes instead of a bucket per minute: the compacted
    minutes (a sum bucket in their state) are `end` - `start` (the latest prefixes at or before the span's last
    minute, and before its first), the others their sub-total sketches, plus every minute's late bins.

    None when the prefixes cannot be shown to hold exactly the compacted minutes of the span: the caller then merges
    the minutes' buckets. Shown means: every compacted minute says it is in the chain (not one the chain passed by,
    nor compacted before prefixes existed), `end` is the last one's prefix, and the chain holds as many minutes
    between `start` and `end` as there are (none more: a crash between a prefix and its sum bucket) and as many
    values as their buckets. The chain only grows at its head, so those are exactly the compacted minutes."""
    compacted = [m for m in span if (s := states.get(m)) is not None and s.total is not None]
    if any(not states[m].chained for m in compacted):
        return None
    if compacted:
        between = _between(span[0], end, start, compacted)
        if between is None or between.count != sum(states[m].count for m in compacted):
            return None
    else:
        between = EMPTY
    done = set(compacted)
    parts = [subs[m] for m in span if m in subs and m not in done] + [late[m] for m in span if m in late]
    return between.merge(*parts)


def _between(first: int, end: Prefix | None, start: Prefix | None, compacted: Sequence[int]) -> Sketch | None:
    """end - start, if `end` is the prefix of the last compacted minute, `start` precedes `first` in the same
    chain, and the chain holds as many minutes between them as are compacted."""
    if end is None or end.minute != compacted[-1]:
        return None
    if start is not None and start.chain == end.chain and start.minute < first:
        base_k, base = start.k, start.sketch
    elif end.chain >= first:  # the chain began inside the span: nothing of it comes before
        base_k, base = 0, EMPTY
    else:
        return None
    if end.k - base_k != len(compacted):
        return None
    return difference(end.sketch, base)


def difference(a: Sketch, b: Sketch) -> Sketch | None:
    """a - b, bin by bin (exact counts); None if b holds a bin count that a does not."""
    positive, negative = _minus(a.positive, b.positive), _minus(a.negative, b.negative)
    if positive is None or negative is None or a.zeros < b.zeros:
        return None
    return Sketch(positive, negative, a.zeros - b.zeros)


def _minus(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int] | None:
    out = dict(a)
    for i, count in b.items():
        left = out.get(i, 0) - count
        if left < 0:
            return None
        if left:
            out[i] = left
        else:
            out.pop(i, None)
    return out
