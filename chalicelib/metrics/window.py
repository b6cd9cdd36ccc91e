"""Window arithmetic for last-hour sums: rounding, minute/second bucketing, and read plans.

Pure: no AWS, no Chalice. Times are epoch milliseconds (ints). A window of W ms
ending at `now` holds the events with now - W < t <= now, i.e. the inclusive
millisecond range [now - W + 1, now]. `plan` splits that range into
  * whole minutes (read from minute totals: a compacted bucket or the write-time sub-totals),
  * whole seconds of the (at most two) partial minutes at its ends (per-second sub-totals),
  * at most two partial seconds, read as raw events at millisecond precision.
So the number of raw events a sum reads is bounded by the events of two seconds,
whatever the number of events in the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

SECOND_MS = 1_000
MINUTE_MS = 60_000
SECONDS_PER_MINUTE = 60
MAX_WINDOW_S = 86_400
DEFAULT_WINDOW_S = 3_600
# |value| <= 1e15 keeps every value an exact float/int and every sum an exact
# DynamoDB number (38 significant digits) for far more posts than a key can receive.
MAX_MAGNITUDE = 10**15
# Items live this long past their time: the largest window plus an hour of slack.
RETENTION_S = MAX_WINDOW_S + 3_600
# A minute is sealed (compacted, immutable) only this long after it ends, so that
# a post whose timestamp falls in it has finished writing (API Gateway gives up at 29 s).
SEAL_LAG_MS = 30_000


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


def sealable_through(now_ms: int, lag_ms: int = SEAL_LAG_MS) -> int:
    """The last minute that may be compacted at `now_ms`: it ended at least `lag_ms` ago."""
    return (now_ms - lag_ms) // MINUTE_MS - 1


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
