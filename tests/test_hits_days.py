"""The day arithmetic of hit counters: which UTC day a hit counts towards and how long its counters live."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.hits import days
from chalicelib.pure.ranges import RangeRefused
from chalicelib.storage import keys

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

YEAR_2100 = 4_102_444_800


# Times to the microsecond: datetime rounds a float to the nearest microsecond, so 0.4 us before midnight counts
# towards the next day (immaterial, and not what this checks).
times = st.one_of(st.integers(0, YEAR_2100), st.integers(0, YEAR_2100 * 10**6).map(lambda us: us / 10**6))


@given(times)
def test_a_hit_counts_towards_the_utc_day_it_falls_in(now: float) -> None:
    day, expires_at = days.counting_day(now)
    day_start = int(now // days.DAY_SECONDS) * days.DAY_SECONDS  # POSIX time: every UTC day is 86,400 s
    assert datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() == day_start
    assert expires_at == day_start + days.DAY_SECONDS + days.DAY_RETENTION_SECONDS


def test_day_boundaries() -> None:
    midnight = int(datetime(2024, 2, 29, tzinfo=UTC).timestamp())
    assert days.counting_day(midnight - 0.001)[0] == "2024-02-28"
    assert days.counting_day(midnight) == ("2024-02-29", midnight + 86_400 + 400 * 86_400)
    assert days.counting_day(midnight + 86_399.999)[0] == "2024-02-29"


def test_a_read_names_one_days_ranking_or_all_times() -> None:
    assert days.scope(None) == keys.HIT_ALL
    assert days.scope("2024-02-29") == "2024-02-29"


@given(times)
def test_the_oldest_kept_day_is_the_first_whose_counters_have_not_expired(now: float) -> None:
    oldest = days.oldest_kept_day(now)
    assert days.counting_day(days.day_start(oldest))[1] > now  # its counters still live
    day_before = days.day_start(oldest) - days.DAY_SECONDS
    assert days.counting_day(day_before)[1] <= now or day_before < 0  # the day before's have expired


@given(st.integers(0, YEAR_2100 // days.DAY_SECONDS), st.integers(-3, 800))
def test_days_from_lists_every_day_once_in_order(first_day: int, span: int) -> None:
    first = days.counting_day(first_day * days.DAY_SECONDS)[0]
    last = days.counting_day((first_day + span) * days.DAY_SECONDS)[0]
    listed = days.days_from(first, last)
    assert len(listed) == max(0, span + 1)
    assert listed == sorted(set(listed)) and (not listed or (listed[0], listed[-1]) == (first, last))


def test_a_series_is_refused_out_of_order_past_retention_or_too_long() -> None:
    now = 1_795_000_000.0  # 2026-11-18
    oldest = days.oldest_kept_day(now)
    assert days.series_days("2026-11-17", "2026-11-18", now, 401) == ["2026-11-17", "2026-11-18"]
    for first, last, field in [
        ("2026-11-18", "2026-11-17", "from"),
        (days.counting_day(days.day_start(oldest) - days.DAY_SECONDS)[0], "2026-11-18", "from"),
        (oldest, days.counting_day(days.day_start(oldest) + 401 * days.DAY_SECONDS)[0], "to"),
    ]:
        with pytest.raises(RangeRefused) as refused:
            days.series_days(first, last, now, 401)
        assert refused.value.field == field
    assert (
        len(days.series_days(oldest, days.counting_day(days.day_start(oldest) + 400 * days.DAY_SECONDS)[0], now, 401))
        == 401
    )
