"""The pure rollup model of metric history (chalicelib/metrics/rollup.py), against brute force."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.metrics import rollup as r
from chalicelib.metrics import window
from chalicelib.pure.ranges import RangeRefused
from chalicelib.pure.sketch import Sketch

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

DAY0 = 20_000  # a day number (2024-10-04): times below are ms after its start
T0 = DAY0 * r.DAY_MS
TIERS = r.Retention(48 * r.HOUR_MS, 90 * r.DAY_MS, 1_826 * r.DAY_MS)


@settings(max_examples=300, deadline=None)
@given(
    from_ms=st.integers(T0, T0 + 10 * r.DAY_MS),
    length=st.integers(1, 3 * r.DAY_MS),
    step=st.sampled_from(sorted(r.STEPS)),
)
def test_points_are_the_step_aligned_buckets_overlapping_the_range(from_ms: int, length: int, step: int) -> None:
    to_ms = from_ms + length
    step_ms = step * 1000
    brute = [a for a in range(T0 - step_ms, to_ms, step_ms) if a + step_ms > from_ms and a % step_ms == 0]
    now = to_ms
    try:
        span = r.series_range(from_ms, to_ms, step, now, TIERS)
    except RangeRefused as refused:
        too_many = len(brute) > r.MAX_POINTS
        too_old = brute[0] < now - TIERS.of(r.STEPS[step])
        assert too_many or too_old
        assert refused.field == ("to" if too_many else "from")
        return
    assert list(span.starts) == brute
    assert span.tier == r.STEPS[step]


@pytest.mark.parametrize(
    ("from_ms", "to_ms", "step", "field"),
    [
        (T0 + 1000, T0 + 1000, 60, "from"),  # from not before to
        (T0 + 2000, T0 + 1000, 60, "from"),
        (T0, T0 + r.HOUR_MS, 61, "step"),
        (T0, T0 + 1_501 * 60_000, 60, "to"),  # 1,501 points
        (T0 - 3 * r.DAY_MS, T0 - 3 * r.DAY_MS + r.HOUR_MS, 60, "from"),  # past the minutes' 48 h
        (T0 - 91 * r.DAY_MS, T0 - 89 * r.DAY_MS, 3_600, "from"),  # past the hours' 90 days
        (T0 - 91 * r.DAY_MS, T0 - 60 * r.DAY_MS, 86_400, "from"),  # days are fine here, hours are not:
    ],
)
def test_refused_ranges_name_the_field(from_ms: int, to_ms: int, step: int, field: str) -> None:
    if step == 86_400:
        r.series_range(from_ms, to_ms, step, T0, TIERS)  # days keep 5 years
        with pytest.raises(RangeRefused) as refused:
            r.series_range(from_ms, to_ms, step, T0, r.Retention(TIERS.minutes_ms, TIERS.hours_ms, 30 * r.DAY_MS))
    else:
        with pytest.raises(RangeRefused) as refused:
            r.series_range(from_ms, to_ms, step, T0, TIERS)
    assert refused.value.field == field


def test_times_are_read_with_their_zone() -> None:
    assert r.parse_time("2026-11-24T10:00:00Z", "from") == 1795514400000
    assert r.parse_time("2026-11-24T11:00:00.123+01:00", "from") == 1795514400123
    for text in ("2026-13-01T00:00:00Z", "2026-11-24T10:00:00", "yesterday"):
        with pytest.raises(RangeRefused) as refused:
            r.parse_time(text, "to")
        assert refused.value.field == "to"


values_lists = st.lists(st.integers(-(10**15), 10**15), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(values_lists, max_size=6))
def test_merged_buckets_are_the_bucket_of_all_their_values(groups: list[list[int]]) -> None:
    merged = r.merge_all(r.Bucket.of(g) for g in groups)
    every = [v for g in groups for v in g]
    assert merged == r.Bucket.of(every)
    assert merged.sketch == Sketch.of(every)
    assert merged.mean == (sum(every) / len(every) if every else None)


@settings(max_examples=300, deadline=None)
@given(
    start_hour=st.integers(0, 24 * 3),
    step=st.sampled_from(sorted(r.STEPS)),
    done_hours=st.sets(st.integers(0, 24 * 5)),
    done_days=st.sets(st.integers(0, 5)),
)
def test_a_point_reads_each_of_its_minutes_exactly_once(
    start_hour: int, step: int, done_hours: set[int], done_days: set[int]
) -> None:
    step_ms = step * 1000
    start = T0 + start_hour * r.HOUR_MS
    start -= start % step_ms
    hours = {DAY0 * 24 + h for h in done_hours}
    days = {DAY0 + d for d in done_days}
    covered: list[int] = []
    for tier, period in r.point_sources(start, step_ms, r.STEPS[step], hours, days):
        per = r.TIER_MS[tier] // r.MINUTE_MS
        covered.extend(range(period * per, (period + 1) * per))
        assert tier == r.MINUTE or (period in (hours if tier == r.HOUR else days))
    assert covered == list(range(start // r.MINUTE_MS, (start + step_ms) // r.MINUTE_MS))


# --- exactness whatever the rollup's state -----------------------------------------------------------------


class Model:
    """The store as rollups see it: each minute holds exactly the values posted in it (the minute reads are exact in
    every compaction state: tests/test_metrics_window.py), rollup buckets are written once, done markers last."""

    def __init__(self) -> None:
        self.minutes: dict[int, list[int]] = defaultdict(list)
        self.buckets: dict[tuple[str, int], r.Bucket] = {}
        self.done: set[tuple[str, int]] = set()

    def post(self, time_ms: int, value: int, now_ms: int) -> bool:
        if window.too_old(time_ms, now_ms):  # refused, never stored
            return False
        self.minutes[time_ms // r.MINUTE_MS].append(value)
        return True

    def minute_bucket(self, minute: int) -> r.Bucket:
        return r.Bucket.of(self.minutes.get(minute, []))

    def roll_up(self, now_ms: int, crash_after: int | None) -> None:
        """rollup_run.roll_up's order, with a crash after `crash_after` writes (None: none)."""
        writes = 0
        hours = r.hours_to_roll(now_ms)
        for tier, periods in ((r.HOUR, hours), (r.DAY, r.days_to_roll(hours))):
            for period in periods:
                if (tier, period) in self.done:
                    continue
                if tier == r.DAY and any((r.HOUR, h) not in self.done for h in range(period * 24, period * 24 + 24)):
                    continue
                if tier == r.HOUR:
                    found = r.merge_all(self.minute_bucket(m) for m in range(period * 60, period * 60 + 60))
                else:
                    found = r.merge_all(
                        self.buckets.get((r.HOUR, h), r.NOTHING) for h in range(period * 24, period * 24 + 24)
                    )
                if found.count:
                    self.buckets.setdefault((tier, period), found)  # attribute_not_exists
                    writes += 1
                if crash_after is not None and writes > crash_after:
                    return
                self.done.add((tier, period))

    def point(self, start_ms: int, step_ms: int, tier: str) -> r.Bucket:
        done_hours = {p for t, p in self.done if t == r.HOUR}
        done_days = {p for t, p in self.done if t == r.DAY}
        sources = r.point_sources(start_ms, step_ms, tier, done_hours, done_days)
        return r.merge_all(
            self.minute_bucket(p) if t == r.MINUTE else self.buckets.get((t, p), r.NOTHING) for t, p in sources
        )


step_kinds = st.sampled_from([(3_600, r.HOUR), (86_400, r.DAY)])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            # a value at some time before now (late ones included: up to past retention, which is refused)
            st.tuples(
                st.just("post"),
                st.one_of(st.integers(0, 26 * r.HOUR_MS), st.integers(23 * r.HOUR_MS, 25 * r.HOUR_MS)),
                st.integers(-1000, 1000),
            ),
            # a run that crashes after a few bucket writes (None: it completes)
            st.tuples(st.just("roll"), st.one_of(st.none(), st.integers(0, 3)), st.just(0)),
            # time passes, with a complete run at its end (the schedule)
            st.tuples(st.just("wait"), st.integers(1, 8 * r.HOUR_MS), st.just(0)),
        ),
        max_size=40,
    ),
    step_kinds,
)
def test_every_point_is_the_values_posted_in_it_whatever_the_rollup_did(
    ops: list[tuple[str, int | None, int]], step: tuple[int, str]
) -> None:
    model = Model()
    posted: list[tuple[int, int]] = []
    now = T0 + 2 * r.DAY_MS
    step_ms = step[0] * 1000
    for op, a, b in ops:
        if op == "post":
            assert a is not None
            if model.post(now - a, b, now):
                posted.append((now - a, b))
        elif op == "roll":
            model.roll_up(now, a)
        else:
            assert a is not None
            now += a
            model.roll_up(now, None)
        first = (T0 + r.DAY_MS) // step_ms * step_ms
        for start in range(first, now, step_ms):
            expected = r.Bucket.of([v for t, v in posted if start <= t < start + step_ms])
            assert model.point(start, step_ms, step[1]) == expected


def test_the_model_rolls_up_hours_and_days() -> None:
    """The exactness test above is not vacuous: its runs do take points from hour and day buckets."""
    model = Model()
    now = T0 + r.DAY_MS
    assert model.post(now - r.HOUR_MS, 5, now)
    for _ in range(4 * 24):
        now += r.HOUR_MS
        model.roll_up(now, None)
    hour = (T0 + r.DAY_MS - r.HOUR_MS) // r.HOUR_MS
    assert model.buckets[(r.HOUR, hour)] == r.Bucket.of([5])
    assert (r.DAY, hour // 24) in model.done and model.buckets[(r.DAY, hour // 24)] == r.Bucket.of([5])
