"""When the sweep ranks a change it was told about (pure: no AWS).

A change whose ranking entries did not move at once is listed for the sweep under a slot of SLOT_S seconds. The
writer lists it under the slot holding `now + worst_wait_s`, where `now` is no later than the start of the event
that counts it: no database call of that event starts after its budget, so the count and the list have landed by
then, which is no later than the slot's end. A sweep pass ranks the slots that ended at least LAG_S ago (hosts'
clocks differ by far less), so every list it reads is complete and every count it reads has landed. Passes come
`pass_interval_s` apart, which bounds the lag from a change's count to its entries (`lag_bound_s`).
"""

from __future__ import annotations

SLOT_S = 10
LAG_S = 5.0


def slot_of(t: float) -> int:
    return int(t // SLOT_S)


def listing_slot(now_s: float, worst_wait_s: float) -> int:
    """The slot to list a change under, for a count that lands within `worst_wait_s` of `now_s`."""
    return slot_of(now_s + worst_wait_s)


def newest_rankable(now_s: float) -> int:
    """The newest slot a pass at `now_s` ranks: it ended at least LAG_S ago."""
    return slot_of(now_s - LAG_S) - 1


def slot_end(slot: int) -> float:
    return (slot + 1) * SLOT_S


def lag_bound_s(worst_wait_s: float, pass_interval_s: float) -> float:
    """The longest a listed change waits for the pass that ranks it, from when it was listed (its count lands no
    earlier), not counting the pass's own work."""
    return worst_wait_s + SLOT_S + LAG_S + pass_interval_s
