"""History of metric values: the rollup tiers (minutes, hours, days), series ranges and merged buckets.

Pure: no AWS. Times are epoch milliseconds. A series asks for one point per step-aligned bucket in [from, to); the
step names the tier it is read from (60 and 300 s: minutes; 3,600: hours; 86,400: days).

Exactness: an hour is rolled up only once it is *final*: every value it can ever hold is stored. An event older than
window.RETENTION_MS is refused (by its own time, on the consumer's clock), and a consumer invocation that accepted one
writes within its Lambda timeout (15 minutes at most), so an hour is final FINAL_AFTER_MS after it ends. Its bucket
is then written once from its minutes (buckets, sub-totals and late values, read exactly as the last-hour reads do),
and the hour's done marker goes last; a day is rolled up from its 24 hour buckets once every one of them is done.
A read takes a period from its tier's bucket only when the period's done marker exists, and otherwise from the tier
below (hours from minutes, days from hours or minutes): so a crash half-way (some buckets, no marker), a second run
(write-once buckets of the same final figures) or late values (only ever added to periods not final yet, which are
read from minutes, late values included) never change an answer. `point_sources` says which items a point reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.metrics import window
from chalicelib.pure.ranges import RangeRefused
from chalicelib.pure.sketch import EMPTY, Sketch

MINUTE_MS = window.MINUTE_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
MINUTE, HOUR, DAY = "minute", "hour", "day"
TIER_MS = {MINUTE: MINUTE_MS, HOUR: HOUR_MS, DAY: DAY_MS}
# step (seconds) -> the tier it is read from
STEPS: Mapping[int, str] = {60: MINUTE, 300: MINUTE, 3_600: HOUR, 86_400: DAY}
MAX_POINTS = 1_500
# Longer than any consumer invocation (Lambda's limit is 15 minutes): a value accepted just inside retention is
# written by then.
FINALITY_MARGIN_MS = HOUR_MS
FINAL_AFTER_MS = window.RETENTION_MS + FINALITY_MARGIN_MS
# A rollup run looks back over the hours whose minutes still exist (window.RETENTION_S), less an hour of margin.
MINUTE_ITEMS_MS = window.RETENTION_S * window.SECOND_MS
# Days whose hours a rollup run checks for a day to roll up (hour buckets live far longer).
DAY_LOOKBACK = 3


@dataclass(frozen=True)
class Retention:
    """How far back each tier answers (ms). Minutes are bounded by their items' life; hours and days are written
    with a TTL of their retention plus a day, so an item inside a readable range has never expired."""

    minutes_ms: int
    hours_ms: int
    days_ms: int

    def of(self, tier: str) -> int:
        return {MINUTE: self.minutes_ms, HOUR: self.hours_ms, DAY: self.days_ms}[tier]


def parse_time(text: str, field: str) -> int:
    """An ISO 8601 time with a zone as epoch ms (truncated to the ms)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RangeRefused(field, "is not a time that can be read, e.g. 2026-11-24T10:00:00Z") from None
    if moment.tzinfo is None:
        raise RangeRefused(field, "must name its zone (Z or an offset)")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SeriesRange:
    """A checked series: the point starts `first`, `first + step`, ... up to before `to_ms`."""

    step_ms: int
    tier: str
    first: int  # the first point's start (ms): `from` aligned down to the step
    points: int

    @property
    def starts(self) -> range:
        return range(self.first, self.first + self.points * self.step_ms, self.step_ms)


def series_range(
    from_ms: int, to_ms: int, step_s: int, now_ms: int, retention: Retention, max_points: int = MAX_POINTS
) -> SeriesRange:
    """The points of [from, to) at `step_s`, or RangeRefused naming the field: an unknown step, `from` not before
    `to`, more than `max_points` points, or `from` older than the retention of the step's tier."""
    if step_s not in STEPS:
        raise RangeRefused("step", f"must be one of {', '.join(str(s) for s in STEPS)}")
    if from_ms >= to_ms:
        raise RangeRefused("from", "must be before to")
    step_ms = step_s * window.SECOND_MS
    first = from_ms - from_ms % step_ms
    points = -(-(to_ms - first) // step_ms)
    if points > max_points:
        raise RangeRefused("to", f"the range holds {points} points at this step, more than {max_points}")
    tier = STEPS[step_s]
    if first < now_ms - retention.of(tier):
        kept = retention.of(tier)
        said = f"{kept // DAY_MS} days" if kept >= 2 * DAY_MS else f"{kept // HOUR_MS} h"
        raise RangeRefused("from", f"reaches past the {tier} tier's retention ({said})")
    return SeriesRange(step_ms, tier, first, points)


# --- buckets ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """The values of a period: how many, their sum, least and greatest (None when empty), and their sketch."""

    count: int = 0
    total: int = 0
    low: int | None = None
    high: int | None = None
    sketch: Sketch = EMPTY

    @classmethod
    def of(cls, values: Sequence[int]) -> Bucket:
        if not values:
            return NOTHING
        return cls(len(values), sum(values), min(values), max(values), Sketch.of(values))

    def merge(self, *others: Bucket) -> Bucket:
        merged = self
        for other in others:
            if other.count == 0:
                continue
            if merged.count == 0:
                merged = other
                continue
            merged = Bucket(
                merged.count + other.count,
                merged.total + other.total,
                _pick(min, merged.low, other.low),
                _pick(max, merged.high, other.high),
                merged.sketch.merge(other.sketch),
            )
        return merged

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


NOTHING = Bucket()


def _pick(choose: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    # None: some values were stored without their extremes (before items kept them); the merge keeps none either.
    return None if a is None or b is None else choose(a, b)


def merge_all(buckets: Iterable[Bucket]) -> Bucket:
    return NOTHING.merge(*buckets)


# --- which items a point reads -----------------------------------------------------------------------------


def periods(tier: str, start_ms: int, end_ms: int) -> range:
    """The periods (numbers: ms // the tier's span) of `tier` covering [start, end); both aligned to it."""
    span = TIER_MS[tier]
    return range(start_ms // span, end_ms // span)


def point_sources(
    start_ms: int, step_ms: int, tier: str, done_hours: set[int], done_days: set[int]
) -> list[tuple[str, int]]:
    """The (tier, period) items one point [start, start + step) reads, whole: a day's bucket if the day is done, else
    its hours'; an hour's bucket if the hour is done, else its minutes. Minute steps read minutes only."""
    end_ms = start_ms + step_ms
    if tier == MINUTE:
        return [(MINUTE, m) for m in periods(MINUTE, start_ms, end_ms)]
    sources: list[tuple[str, int]] = []
    if tier == DAY:
        for day in periods(DAY, start_ms, end_ms):
            if day in done_days:
                sources.append((DAY, day))
            else:
                sources.extend(_hour_sources(periods(HOUR, day * DAY_MS, (day + 1) * DAY_MS), done_hours))
        return sources
    return _hour_sources(periods(HOUR, start_ms, end_ms), done_hours)


def _hour_sources(hours: range, done_hours: set[int]) -> list[tuple[str, int]]:
    sources: list[tuple[str, int]] = []
    for hour in hours:
        if hour in done_hours:
            sources.append((HOUR, hour))
        else:
            sources.extend((MINUTE, m) for m in range(hour * 60, (hour + 1) * 60))
    return sources


def final(period_end_ms: int, now_ms: int) -> bool:
    """No value of a period ending at `period_end_ms` can be stored any more at `now_ms`."""
    return period_end_ms + FINAL_AFTER_MS <= now_ms


def hours_to_roll(now_ms: int) -> range:
    """The hours a rollup at `now_ms` may roll up: final, and whose minutes have not started to expire (an hour of
    margin). Oldest first."""
    last = (now_ms - FINAL_AFTER_MS) // HOUR_MS - 1
    first = -(-(now_ms - MINUTE_ITEMS_MS + HOUR_MS) // HOUR_MS)
    return range(first, last + 1)


def days_to_roll(hours: range, lookback_days: int = DAY_LOOKBACK) -> range:
    """The days a rollup rolls up from hour buckets: every hour of them at or before the last of `hours`, back
    `lookback_days` (a day is rolled up once its 24 hours are done)."""
    if not len(hours):
        return range(0)
    last = (hours[-1] + 1) // 24 - 1
    return range(last - lookback_days + 1, last + 1)
