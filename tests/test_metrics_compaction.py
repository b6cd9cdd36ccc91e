"""Compaction makes progress under any number of keys: each run does bounded work (chunks of keys, oldest minute
first, each written before the next), stops when its time budget is nearly spent, and the next run goes on from the
minute's progress. Injected clock (the now_ms parameters) and an injected budget counted in database calls."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.ingest.records import Delivered, MetricEvent
from chalicelib.metrics import compaction
from chalicelib.metrics import window as w
from chalicelib.metrics.store import SumStore
from chalicelib.process import request_context
from chalicelib.pure.sketch import Sketch
from chalicelib.storage import keys
from tests.conftest import TABLE, partition_items

MINUTE = 28_333_333
T0 = MINUTE * w.MINUTE_MS
HOUR_MS = 3_600_000
SEALING = T0 + w.MINUTE_MS + w.SEAL_LAG_MS  # the first instant MINUTE may be compacted
KEYS = 40
CHUNK = 5
BUDGET_CALLS = 100  # a run's budget, in database calls: a chunk of CHUNK keys takes about 40


class CallBudget:
    """A time budget counted in database calls instead of seconds (deterministic on a shared machine): each call
    spends a millisecond. Stands in for request_context.remaining, which the database hook and compaction ask."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.left: int | None = None
        client.meta.events.register("before-call.dynamodb", self._spend)
        monkeypatch.setattr(request_context, "remaining", self.remaining)

    def _spend(self, **_: Any) -> None:
        if self.left is not None:
            self.left -= 1

    def remaining(self) -> float | None:
        return None if self.left is None else self.left / 1000

    @contextmanager
    def run(self, calls: int) -> Iterator[None]:
        self.left = calls
        try:
            yield
        finally:
            self.left = None


@pytest.fixture
def store(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> SumStore:
    monkeypatch.setattr(compaction, "CHUNK_KEYS", CHUNK)
    return SumStore(dynamodb, TABLE, random.Random(3))


def load(store: SumStore) -> dict[str, list[int]]:
    """KEYS keys with values in MINUTE: half posted, half from the stream (one record per value)."""
    rng = random.Random(8)
    values = {f"key{k:03d}": [rng.randint(-500, 500) for _ in range(1 + k % 3)] for k in range(KEYS)}
    streamed: list[Delivered] = []
    for k, (key, vs) in enumerate(sorted(values.items())):
        for i, v in enumerate(vs):
            at_ms = T0 + 1_000 * (k % 60) + i
            if k % 2:
                store.post(key, v, at_ms, event_id=f"{key}-{i}")
            else:
                streamed.append(Delivered("shardId-0", str(len(streamed) + 1), MetricEvent(key, v, at_ms)))
    store.apply_delivered(streamed, T0 + w.MINUTE_MS)
    return values


def test_every_run_writes_buckets_and_the_minute_completes_in_bounded_runs(
    store: SumStore, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = load(store)
    budget = CallBudget(dynamodb, monkeypatch)
    # Sealing and reading every key before writing any (3 reads and a seal a key) would spend the budget first.
    assert KEYS * 4 > BUDGET_CALLS
    sample = sorted(values)[:: KEYS // 4]
    runs: list[compaction.Compaction] = []
    while not runs or runs[-1].stopped:
        with budget.run(BUDGET_CALLS):
            runs.append(compaction.compact(store, SEALING))
        assert runs[-1].written > 0  # every run writes buckets
        for key in sample:  # right throughout: compacted or not yet
            assert store.sum(key, SEALING, HOUR_MS) == sum(values[key])
            assert store.quantile_sketch(key, SEALING, HOUR_MS) == Sketch.of(values[key])
    assert len(runs) <= math.ceil(KEYS / CHUNK)
    assert [MINUTE] == [m for r in runs for m in r.minutes if m == MINUTE] == runs[-1].minutes[-1:]
    assert sum(r.written for r in runs) == KEYS and sum(r.existing for r in runs) == 0  # nothing done twice
    buckets = [i for k in values for i in partition_items(dynamodb, keys.sum_bucket_pk(k)) if "total" in i]
    assert {i["pk"]["S"]: int(i["total"]["N"]) for i in buckets} == {
        keys.sum_bucket_pk(k): sum(vs) for k, vs in values.items()
    }
    assert compaction.compact(store, SEALING) == compaction.Compaction()  # done: nothing left


def test_a_run_stopped_by_its_budget_halfway_through_a_chunk_is_completed_by_the_next(
    store: SumStore, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget ends inside a chunk (no call starts after it): the run fails there, its chunk half written; the
    next run redoes that chunk (its buckets are written once) and goes on."""
    values = load(store)
    budget = CallBudget(dynamodb, monkeypatch)
    monkeypatch.setattr(compaction, "CHUNK_MARGIN", 0.0)  # so the run starts a chunk it cannot finish
    with budget.run(BUDGET_CALLS), pytest.raises(request_context.BudgetSpent):
        compaction.compact(store, SEALING)
    [progress] = partition_items(dynamodb, keys.SUM_PROGRESS_PK)
    done = [k for k in values if k <= progress[compaction.PROGRESS]["S"]]
    assert done and len(done) % CHUNK == 0  # whole chunks, recorded
    resumed = compaction.compact(store, SEALING)
    assert resumed.minutes[-1:] == [MINUTE] and resumed.written + resumed.existing == KEYS - len(done)
    assert resumed.existing < CHUNK  # only the interrupted chunk's buckets can be there already
    for key in sorted(values)[:: KEYS // 4]:
        assert store.sum(key, SEALING, HOUR_MS) == sum(values[key])


def test_minutes_are_compacted_oldest_first_and_a_later_one_waits_for_the_earlier(
    store: SumStore, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pending minutes: the older is finished before any key of the newer is touched, so each key's minutes join
    its prefix chain in order."""
    values = load(store)
    store.post("key000", 7, T0 + w.MINUTE_MS + 5, event_id="next")
    budget = CallBudget(dynamodb, monkeypatch)
    now = SEALING + w.MINUTE_MS
    reports: list[compaction.Compaction] = []
    while not reports or reports[-1].stopped:
        with budget.run(BUDGET_CALLS):
            reports.append(compaction.compact(store, now))
    finished = [m for r in reports for m in r.minutes if m >= MINUTE]
    assert finished == [MINUTE, MINUTE + 1]
    head = store.prefix_head("key000")
    assert head is not None and (head.minute, head.k) == (MINUTE + 1, 2)
    assert head.sketch == Sketch.of([*values["key000"], 7])
