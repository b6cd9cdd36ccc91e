"""The ranking's lag arithmetic (chalicelib/hits/slots.py): a pass never ranks a slot before its lists and counts have
landed, and the first pass that ranks it comes within the stated bound."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.hits import slots

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

DAY = 86_400.0
starts = st.floats(0, 400 * DAY, allow_nan=False)
waits = st.floats(0.5, 27.0)
intervals = st.sampled_from([10.0, 12.0, 15.0, 20.0, 30.0, 60.0])
skews = st.floats(-slots.LAG_S / 2, slots.LAG_S / 2)


def first_pass(listed_slot: int, phase: float, interval: float, skew: float) -> float:
    """The true time of the first pass (every `interval` from `phase`, its clock `skew` off) that ranks the slot."""
    k = max(0, math.floor((slots.slot_end(listed_slot) - phase) / interval) - 1)
    while slots.newest_rankable(phase + k * interval + skew) < listed_slot:
        k += 1
    return phase + k * interval


@given(starts, waits, intervals, st.floats(0, 60.0), skews, skews)
def test_a_pass_ranks_a_slot_only_after_everything_listed_in_it_has_landed(
    start: float, wait: float, interval: float, phase: float, writer_skew: float, sweep_skew: float
) -> None:
    # The writer's clock says start + writer_skew; its count and its list land by start + wait (its budget).
    listed = slots.listing_slot(start + writer_skew, wait)
    ranked_at = first_pass(listed, phase, interval, sweep_skew)
    assert ranked_at >= start + wait or ranked_at < start  # never between: a pass before the event can't see it
    later = first_pass(listed, max(phase, start), interval, sweep_skew)
    assert later >= start + wait


@given(starts, waits, intervals, st.floats(0, 60.0))
def test_the_first_pass_after_a_change_ranks_it_within_the_bound(
    start: float, wait: float, interval: float, phase: float
) -> None:
    listed = slots.listing_slot(start, wait)
    # Passes run every `interval` (at `phase` modulo it), forever; from the first at or after the change was listed.
    phase %= interval
    phase += math.ceil((start - phase) / interval) * interval
    assert first_pass(listed, phase, interval, 0.0) - start <= slots.lag_bound_s(wait, interval) + 1e-6


def test_the_default_bound_is_under_a_minute() -> None:
    # The settings' worst wait (15 s budget + 2 s connect + 5 s read) and three passes a minute.
    assert slots.lag_bound_s(22.0, 20.0) == 57.0
