"""A path's counts in one counter item plus its day history (chalicelib/hits/counts.py), against a brute-force
model: whatever order the days' hits come in (late ones, rollovers), every day's count and the all-time count are
the hits posted."""

from __future__ import annotations

from collections import Counter as Tally

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.hits import counts
from chalicelib.hits.counts import Change, Counter

pytestmark = pytest.mark.pure

DAYS = [f"2026-12-{d:02d}" for d in range(1, 8)]
hits = st.lists(st.tuples(st.sampled_from(DAYS), st.integers(min_value=1, max_value=50)), max_size=40)


def replay(sequence: list[tuple[str, int]]) -> tuple[Counter | None, dict[str, int]]:
    counter: Counter | None = None
    history: dict[str, int] = {}
    for day, k in sequence:
        filed = counts.history_added(counter, day, k)
        if filed is not None:
            history[filed[0]] = history.get(filed[0], 0) + filed[1]
        counter = counts.after(counter, day, k)
    return counter, history


@given(hits)
def test_every_days_count_and_the_all_time_count_are_the_hits_posted(sequence: list[tuple[str, int]]) -> None:
    counter, history = replay(sequence)
    posted: Tally[str] = Tally()
    for day, k in sequence:
        posted[day] += k
    for day in DAYS:
        assert counts.count_of_day(counter, history, day) == posted[day]
    assert (counter.n if counter else 0) == sum(posted.values())
    if counter is not None:  # the counter sits on the latest day seen, and holds its count
        assert counter.day == max(day for day, _ in sequence)
        assert counter.day not in history


@given(hits)
def test_a_counter_only_moves_forward_and_the_history_only_holds_past_days(sequence: list[tuple[str, int]]) -> None:
    counter: Counter | None = None
    for day, k in sequence:
        change = counts.change_of(counter, day)
        before = counter
        counter = counts.after(counter, day, k)
        assert counter.n == (before.n if before else 0) + k
        assert counter.day_count >= 1
        if change is Change.LATE:
            assert before is not None and day < before.day and counter.day_count == before.day_count
        if change is Change.ROLLOVER:
            assert before is not None and counter.day_count == k


def test_the_four_changes() -> None:
    assert counts.change_of(None, "2026-12-02") is Change.NEW
    on_2nd = Counter(10, "2026-12-02", 7)
    assert on_2nd.day_count == 3
    assert counts.change_of(on_2nd, "2026-12-02") is Change.SAME_DAY
    assert counts.change_of(on_2nd, "2026-12-03") is Change.ROLLOVER
    assert counts.change_of(on_2nd, "2026-12-01") is Change.LATE
    assert counts.after(on_2nd, "2026-12-03", 2) == Counter(12, "2026-12-03", 10)
    assert counts.history_added(on_2nd, "2026-12-03", 2) == ("2026-12-02", 3)
    assert counts.after(on_2nd, "2026-12-01", 2) == Counter(12, "2026-12-02", 9)
    assert counts.history_added(on_2nd, "2026-12-01", 2) == ("2026-12-01", 2)
