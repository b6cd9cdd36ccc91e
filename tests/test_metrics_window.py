"""The pure window arithmetic of last-hour sums, against brute force."""

from __future__ import annotations

import decimal
import itertools
import math
from collections import defaultdict
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.metrics import window as w

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

T0 = 1_700_000_000_000  # an epoch-ms instant (not on a minute boundary: 1_700_000_000_000 % 60_000 == 20_000)


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (2.5, 3),
        (-2.5, -3),
        (0.5, 1),
        (-0.5, -1),
        (1.4999, 1),
        (-1.4999, -1),
        (1.5, 2),
        (0.49999999999999994, 0),  # the largest double below 0.5: floor(x + 0.5) would say 1
        (-0.49999999999999994, 0),
        (2.5000000000000004, 3),
        (4503599627370495.5, 4503599627370496),  # 2**52 - 0.5: x + 0.5 is not exact in floats
        (1e15, 10**15),
        (-1e15, -(10**15)),
        (0.0, 0),
        (-0.0, 0),
        (7, 7),
        (-(10**15), -(10**15)),
    ],
)
def test_round_half_away_from_zero(x: float, expected: int) -> None:
    assert w.round_half_away(x) == expected
    assert type(w.round_half_away(x)) is int


def _covered(p: w.Plan) -> list[tuple[int, int]]:
    """The inclusive ms ranges a plan reads, in order."""
    ranges = [(m * w.MINUTE_MS, (m + 1) * w.MINUTE_MS - 1) for m in p.whole]
    for part in p.partial:
        for s in part.seconds:
            start = part.minute * w.MINUTE_MS + s * w.SECOND_MS
            ranges.append((start, start + w.SECOND_MS - 1))
        ranges.extend(part.raw)
    return sorted(ranges)


@settings(max_examples=400, deadline=None)
@given(now=st.integers(0, 10**13), window_s=st.integers(1, w.MAX_WINDOW_S), extra_ms=st.integers(0, 999))
def test_plan_covers_exactly_the_window(now: int, window_s: int, extra_ms: int) -> None:
    window_ms = window_s * w.SECOND_MS
    p = w.plan(now, window_ms)
    ranges = _covered(p)
    # Contiguous, non-overlapping, exactly [now - window + 1, now].
    assert ranges[0][0] == now - window_ms + 1 and ranges[-1][1] == now
    for (_, hi), (lo, _) in itertools.pairwise(ranges):
        assert lo == hi + 1
    # Bounded work: at most two partial minutes and two raw ranges, each raw range inside one second.
    assert len(p.partial) <= 2 and len(p.raw_ranges) <= 2
    for lo, hi in p.raw_ranges:
        assert lo // w.SECOND_MS == hi // w.SECOND_MS
    assert len(p.whole) <= window_s // 60


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(-200_000, 200_000), st.integers(-1000, 1000)), max_size=60),
    window_ms=st.integers(1, 300).map(lambda s: s * 1000),
)
def test_combine_equals_brute_force(events: list[tuple[int, int]], window_ms: int) -> None:
    now = T0
    timed = [(now + dt, v) for dt, v in events]
    minute_totals: dict[int, int] = defaultdict(int)
    seconds: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for t, v in timed:
        minute_totals[w.minute_of(t)] += v
        seconds[w.minute_of(t)][w.second_of(t)] += v
    p = w.plan(now, window_ms)
    raw = sum(v for t, v in timed for lo, hi in p.raw_ranges if lo <= t <= hi)
    expected = sum(v for t, v in timed if now - window_ms < t <= now)
    assert w.combine(p, minute_totals, seconds, raw) == expected


def test_boundaries_at_millisecond_precision() -> None:
    p = w.plan(T0, 3_600_000)
    ranges = _covered(p)
    assert ranges[0][0] == T0 - 3_600_000 + 1  # an event exactly at now - window is out
    assert ranges[-1][1] == T0  # an event exactly at now is in


def test_minute_helpers() -> None:
    assert w.minute_of(T0) == T0 // 60_000 and w.second_of(T0) == 20
    assert w.minute_of(-1) == -1
    # The minute [m, m+1) may be sealed once now >= its end + lag.
    m = w.minute_of(T0)
    end = (m + 1) * w.MINUTE_MS
    assert w.sealable_through(end + w.SEAL_LAG_MS) == m
    assert w.sealable_through(end + w.SEAL_LAG_MS - 1) == m - 1
    assert w.expires_at(T0) == T0 // 1000 + 48 * 3600  # the hour rollup reads minutes until 25 h after their hour
    span = w.minutes_overlapping(T0, 3_600_000)
    assert len(span) == 61 and span[-1] == m
    assert len(w.minutes_overlapping(m * w.MINUTE_MS - 1, 3_600_000)) == 60


# --- rounding and window arithmetic against exact references, at arbitrary clocks ------------------------


def half_away_reference(x: float) -> int:
    """floor(|x| + 1/2) with the sign of x, in exact rational arithmetic."""
    q = Fraction(x)
    magnitude = math.floor(abs(q) + Fraction(1, 2))
    return magnitude if q >= 0 else -magnitude


# Halves and their float neighbours, where rounding goes wrong if it is done in floats; then any finite float.
def _near_half(n: int, side: int) -> float:
    half = n + 0.5  # exact for |n| < 2**52
    return half if side == 0 else math.nextafter(half, math.copysign(math.inf, side))


near_halves = st.builds(_near_half, st.integers(-(2**52) + 1, 2**52 - 1), st.integers(-1, 1))


@settings(max_examples=500, deadline=None)
@given(st.one_of(near_halves, st.floats(-1e15, 1e15), st.integers(-(10**15), 10**15)))
def test_round_half_away_is_exact_rounding(x: float) -> None:
    # The accepted range: the API rejects |value| > MAX_MAGNITUDE before rounding.
    rounded = w.round_half_away(x)
    assert type(rounded) is int and rounded == half_away_reference(x)
    assert abs(Fraction(x) - rounded) <= Fraction(1, 2)


@pytest.mark.xfail(
    strict=True,
    raises=decimal.InvalidOperation,
    reason="Decimal's default context has 28 digits, so quantize() raises InvalidOperation for |x| >= 10**28 (more than 28 integer digits); "
    "unreachable through the API, which rejects |value| > 1e15 before rounding",
)
def test_round_half_away_beyond_the_decimal_context() -> None:
    x = 1e30
    assert w.round_half_away(x) == half_away_reference(x) == int(x)


# Clocks anywhere in 2001-2286 (epoch ms), often on or next to a second or minute boundary (where off-by-one
# errors show), and windows of any allowed length, often whole minutes.
clocks = st.builds(
    lambda minute, offset: minute * w.MINUTE_MS + offset,
    st.integers(10**12 // w.MINUTE_MS, 10**13 // w.MINUTE_MS),
    st.one_of(st.sampled_from([0, 1, 999, 1_000, 59_000, 59_999]), st.integers(0, w.MINUTE_MS - 1)),
)
windows_s = st.one_of(st.integers(1, 120), st.integers(1, w.MAX_WINDOW_S), st.sampled_from([60, 3_600, w.MAX_WINDOW_S]))


@st.composite
def events_around(draw: st.DrawFn, now: int, window_ms: int) -> list[tuple[int, int]]:
    """Events clustered at the window's two edges (both sides, to the millisecond) and spread across and around it."""
    start = now - window_ms  # excluded; start + 1 is the first included millisecond
    # The edges, and the second and minute boundaries next to them, where the plan switches between sources.
    anchors = [start, now]
    for unit in (w.SECOND_MS, w.MINUTE_MS):
        anchors += [-(-(start + 1) // unit) * unit, now // unit * unit]
    offsets = st.one_of(st.integers(-2, 2), st.integers(-2_500, 2_500))
    near_edge = st.tuples(st.sampled_from(anchors), offsets).map(sum)
    anywhere = st.integers(start - 2 * w.MINUTE_MS, now + 2 * w.MINUTE_MS)
    times = st.one_of(near_edge, anywhere)
    return draw(st.lists(st.tuples(times, st.integers(-(10**15), 10**15)), max_size=40))


@settings(max_examples=400, deadline=None)
@given(st.data(), clocks, windows_s)
def test_sum_from_the_plan_equals_brute_force_at_any_clock(data: st.DataObject, now: int, window_s: int) -> None:
    window_ms = window_s * w.SECOND_MS
    events = data.draw(events_around(now, window_ms))
    # What the store keeps: every event's value in its minute's total and its second's sum; raw events by time.
    minute_totals: dict[int, int] = defaultdict(int)
    second_sums: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for t, v in events:
        minute_totals[w.minute_of(t)] += v
        second_sums[w.minute_of(t)][w.second_of(t)] += v
    p = w.plan(now, window_ms)
    raw = sum(v for t, v in events for lo, hi in p.raw_ranges if lo <= t <= hi)
    assert w.combine(p, minute_totals, second_sums, raw) == sum(v for t, v in events if now - window_ms < t <= now)


@settings(max_examples=300, deadline=None)
@given(clocks, windows_s)
def test_plan_reads_whole_units_only_where_they_fit(now: int, window_s: int) -> None:
    p = w.plan(now, window_s * w.SECOND_MS)
    first, last = now - window_s * w.SECOND_MS + 1, now
    for m in p.whole:
        assert first <= m * w.MINUTE_MS and (m + 1) * w.MINUTE_MS - 1 <= last
    for part in p.partial:
        # A partial minute is not whole, its seconds are whole seconds of it inside the window, its raw
        # ranges are pieces of one second each, and nothing is read twice.
        assert part.minute not in p.whole and len(part.seconds) < w.SECONDS_PER_MINUTE
        assert list(part.seconds) == sorted(set(part.seconds))
        for s in part.seconds:
            start = part.minute * w.MINUTE_MS + s * w.SECOND_MS
            assert first <= start and start + w.SECOND_MS - 1 <= last
        for lo, hi in part.raw:
            assert w.minute_of(lo) == part.minute and lo // w.SECOND_MS == hi // w.SECOND_MS
            assert 0 <= hi - lo < w.SECOND_MS - 1 and first <= lo and hi <= last
    assert len({part.minute for part in p.partial}) == len(p.partial)


@settings(max_examples=300, deadline=None)
@given(clocks, windows_s)
def test_minutes_overlapping_are_exactly_the_minutes_the_window_touches(now: int, window_s: int) -> None:
    first, last = now - window_s * w.SECOND_MS + 1, now

    def touches(m: int) -> bool:
        return m * w.MINUTE_MS <= last and first <= (m + 1) * w.MINUTE_MS - 1

    span = w.minutes_overlapping(now, window_s * w.SECOND_MS)
    assert span.step == 1 and touches(span[0]) and touches(span[-1])
    assert not touches(span[0] - 1) and not touches(span[-1] + 1)
    assert span[-1] == w.minute_of(now)  # the last entry is the minute so far
    # Every minute the plan reads from is one of them.
    p = w.plan(now, window_s * w.SECOND_MS)
    assert set(p.whole) | {part.minute for part in p.partial} <= set(span)


@settings(max_examples=300, deadline=None)
@given(clocks, st.integers(0, 5 * w.MINUTE_MS))
def test_a_minute_is_sealable_exactly_once_it_ended_lag_ago(now: int, lag: int) -> None:
    m = w.sealable_through(now, lag)
    assert (m + 1) * w.MINUTE_MS + lag <= now  # minute m ended at least lag ago
    assert now < (m + 2) * w.MINUTE_MS + lag  # minute m + 1 did not


@given(clocks)
def test_items_outlive_the_largest_window(t: int) -> None:
    # An item about time t is read by windows ending up to MAX_WINDOW_S later; TTL (seconds) must not come sooner.
    assert w.expires_at(t) * w.SECOND_MS > t + w.MAX_WINDOW_S * w.SECOND_MS
