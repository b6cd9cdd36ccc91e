"""The pure window arithmetic of last-hour sums, against brute force."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.sums import window as w

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
    assert w.expires_at(T0) == T0 // 1000 + w.MAX_WINDOW_S + 3600
    span = w.minutes_overlapping(T0, 3_600_000)
    assert len(span) == 61 and span[-1] == m
    assert len(w.minutes_overlapping(m * w.MINUTE_MS - 1, 3_600_000)) == 60
