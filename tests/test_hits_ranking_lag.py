"""The ranking's stated lag (chalicelib/hits/slots.py): a change whose entries did not move at once is ranked by the
first sweep pass from `worst_case_s + SLOT_S + LAG_S` after it was listed, and not before its slot is over; passes
come 60 s / hit_rank_passes apart, so the bound is that plus one interval (47 s by default)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.hits import slots, sweep
from chalicelib.hits.store import HitStore
from chalicelib.process import runtime, settings
from chalicelib.pure import clock
from chalicelib.storage import keys
from tests.conftest import TABLE
from tests.test_ingest_consumer import DAY, consume, hits

PATH = "/api/lag/"


@pytest.fixture
def frozen(dynamodb: Any) -> Iterator[float]:
    """The clock stopped 5 s into a minute (so a test's batches share their minute)."""
    start = (int(clock.now()) // 60) * 60 + 5.0
    clock.set_source(lambda: start)
    yield start
    clock.set_source(None)


def ranked(store: HitStore, scope: str) -> dict[str, int]:
    return {r.path: r.count for r in store.ranking(scope, 100, None).paths}


def sweep_at(store: HitStore, t: float) -> sweep.Swept:
    clock.set_source(lambda: t)
    return sweep.sweep(store, t)


def rankable_from(listed_at: float) -> float:
    """When the slot a change listed at `listed_at` goes under is over by LAG_S."""
    return slots.slot_end(slots.listing_slot(listed_at, settings.get().worst_case_s)) + slots.LAG_S


def test_the_bound_follows_the_settings() -> None:
    interval = 60 / settings.get().hit_rank_passes
    assert slots.lag_bound_s(settings.get().worst_case_s, interval) <= 60


def test_a_streamed_change_after_the_first_of_its_minute_is_ranked_within_the_bound(client: Any, frozen: float) -> None:
    store = HitStore(runtime.dynamodb(), TABLE)
    assert consume(client, [(1, hits(PATH, 2))]) == []  # the path's first change this minute: moved at once
    assert consume(client, [(2, hits(PATH, 3))]) == []  # a later one: listed for the sweep
    assert ranked(store, keys.HIT_ALL)[PATH] == ranked(store, DAY)[PATH] == 2

    ready = rankable_from(frozen)
    assert ready - frozen <= slots.lag_bound_s(settings.get().worst_case_s, 0)
    sweep_at(store, ready - 0.01)  # its slot not yet over by LAG_S: left for a later pass
    assert ranked(store, keys.HIT_ALL)[PATH] == 2
    assert sweep_at(store, ready).ranked == 2
    assert ranked(store, keys.HIT_ALL)[PATH] == ranked(store, DAY)[PATH] == 5
    assert sweep_at(store, ready + 60).ranked == 0  # its slot is done


def test_a_direct_hit_whose_move_failed_is_ranked_within_the_bound(
    dynamodb: Any, frozen: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HitStore(runtime.dynamodb(), TABLE)
    store.record(PATH, DAY, 0)
    monkeypatch.setattr(HitStore, "rank_path", lambda *_: (_ for _ in ()).throw(TimeoutError("lost")))
    with pytest.raises(TimeoutError):
        store.record(PATH, DAY, 0)  # counted, but its entries did not move
    monkeypatch.undo()
    assert ranked(store, keys.HIT_ALL)[PATH] == 1

    ready = rankable_from(frozen)
    sweep_at(store, ready - 0.01)
    assert ranked(store, keys.HIT_ALL)[PATH] == 1
    sweep_at(store, ready)
    assert ranked(store, keys.HIT_ALL)[PATH] == ranked(store, DAY)[PATH] == 2


def test_a_run_makes_its_passes_evenly_spaced_while_time_is_left() -> None:
    now = [0.0]
    at: list[float] = []

    def monotonic() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def one_pass() -> sweep.Swept:
        at.append(now[0])
        now[0] += 0.5  # the pass's own work
        return sweep.Swept(ranked=1)

    total = sweep.passes(one_pass, 6, lambda: 120 - now[0], monotonic, sleep)
    assert (at, total) == ([0, 10, 20, 30, 40, 50], sweep.Swept(ranked=6))
    at.clear()
    now[0] = 0.0
    # A Lambda context with 3 s left (chalice's test client) makes one pass.
    assert sweep.passes(one_pass, 6, lambda: 3.0 - now[0], monotonic, sleep) == sweep.Swept(ranked=1)
