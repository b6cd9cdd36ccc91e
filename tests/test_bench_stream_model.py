"""bench/stream_model.py: shards by MD5 range, batches cut as Lambda cuts them, and a key sample that stands for
the whole."""

from __future__ import annotations

import hashlib
import random
import statistics
from array import array
from collections import Counter

import pytest

from bench.stream_model import (
    LAMBDA_PAYLOAD_BYTES,
    REQUEST_EVENTS,
    ZIPF_1K,
    Batch,
    Batching,
    Distribution,
    KeyFigures,
    Keyspace,
    Record,
    ShardRecords,
    cut,
    draw_keys,
    draw_requests,
    key_figures,
    on_demand_shards,
    run_length,
    shard_of,
    stream_rate,
)

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

SMALL = Keyspace(["k0", "k1", "k2"], [50, 50, 50])


def test_shards_own_equal_ranges_of_the_md5() -> None:
    for key in ("hit:/a/", "metric:x", "value:s"):
        digest = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
        assert shard_of(key, 4) == digest // 2**126
        assert shard_of(key, 1) == 0
    spread = Counter(shard_of(f"hit:/p/{n}/", 8) for n in range(8_000))
    assert set(spread) == set(range(8)) and min(spread.values()) > 850


def test_requests_pack_one_record_per_key() -> None:
    requests = draw_requests(Distribution("two", 2), 2, random.Random(1))
    assert requests.count == 46  # 2 s at 23.1 requests/s
    for r in range(requests.count):
        keys = requests.keys[requests.starts[r] : requests.starts[r + 1]]
        events = requests.events[requests.starts[r] : requests.starts[r + 1]]
        assert len(set(keys)) == len(keys) and sum(events) == REQUEST_EVENTS


def test_shards_leave_room_for_twice_the_rate_and_at_least_four() -> None:
    hot = draw_requests(Distribution("hot", 1), 10, random.Random(1))
    assert on_demand_shards(stream_rate(hot, Keyspace(["h"], [60]))) == 4
    uniform = draw_requests(Distribution("u", 100_000), 10, random.Random(1))
    rate = stream_rate(uniform, Keyspace([f"hit:/p/{k}/" for k in range(100_000)], [60] * 100_000))
    assert 11_000 < rate.records_per_s < 11_600  # nearly every event its own record
    assert on_demand_shards(rate) == 24


def columns(records: list[Record], keyspace: Keyspace = SMALL) -> ShardRecords:
    i = "i"
    table = ShardRecords(array(i), array(i), array(i), array(i), array("d"), array(i), array(i), array(i))
    for r in records:
        table.shard.append(r.shard)
        table.sequence.append(r.sequence)
        table.key.append(r.key)
        table.events.append(r.events)
        table.arrival_ms.append(r.arrival_ms)
        table.payload_bytes.append(keyspace.payload_bytes(r.key, r.events))
        table.request.append(r.request)
        table.record.append(r.record)
    return table


def batches(batching: Batching, records: list[Record], until_ms: float = 1e9) -> list[Batch]:
    return cut(columns(records), batching, until_ms).batches


def test_a_batch_closes_at_its_window_after_its_first_record() -> None:
    records = [Record(0, n, n % 3, 1, t) for n, t in enumerate([0, 400, 999, 1000, 1500, 2600])]
    cuts = batches(Batching(1, 1_000), records)
    assert [(b.first_sequence, b.records, b.opened_ms, b.closed_ms) for b in cuts] == [
        (0, 3, 0, 1000),
        (3, 2, 1000, 2000),
        (5, 1, 2600, 3600),
    ]


def test_a_batch_closes_at_its_size_and_at_the_payload_limit() -> None:
    records = [Record(0, n, 0, 1, float(n)) for n in range(10)]
    assert [b.records for b in batches(Batching(60, 4), records)] == [4, 4, 2]
    big = [Record(0, n, 0, 20_000, float(n)) for n in range(10)]  # ~1.4 MB of base64 each
    per_batch = LAMBDA_PAYLOAD_BYTES // SMALL.payload_bytes(0, 20_000)
    assert [b.records for b in batches(Batching(60, 10_000), big)] == [per_batch] * (10 // per_batch) + [10 % per_batch]


def test_shards_are_cut_separately_and_unfinished_batches_left_out() -> None:
    records = [Record(n % 2, n // 2, n % 3, 2, n * 100.0) for n in range(12)]
    done = cut(columns(records), Batching(1, 1_000), until_ms=1_150)
    # Shard 0's batch (0-1,000 ms) is done by the end of the slice; shard 1's (100-1,100 ms) too; their next ones
    # (from 1,000 and 1,100 ms) are still gathering, left out.
    assert [(b.shard, b.records, b.events, b.closed_ms) for b in done.batches] == [(0, 5, 10, 1000), (1, 5, 10, 1100)]
    assert done.batches[0].keys == {0: 4, 2: 4, 1: 2}  # records 0, 2, 4, 6, 8: keys 0, 2, 1, 0, 2
    assert list(done.batch_of) == [0, 1] * 5 + [-1, -1]
    assert batches(Batching(60, 1_000), records, until_ms=1_150) == []


def test_the_sample_meets_its_budget_and_its_weighted_mean_is_the_whole_one() -> None:
    rng = random.Random(3)
    figures = {key: KeyFigures(t, t * 3) for key in range(20_000) if (t := min(60, int(rng.paretovariate(1.2)))) > 0}
    # A cost per (key, batch) that differs by key: the drawn keys' weighted mean estimates the mean over every
    # group, without bias (over many draws) and within a few percent (each draw).
    cost = {key: 4 + key % 7 for key in figures}
    true_mean = sum(f.touches * cost[k] for k, f in figures.items()) / sum(f.touches for f in figures.values())
    estimates = []
    for seed in range(20):
        sample = draw_keys(figures, budget=400, run=6, run_events=1_000, seed=str(seed))
        assert 250 < sum(sample.metered.values()) < 550  # 400 expected
        weights = {k: sample.weight(k) * sample.metered[k] for k in sample.drawn()}
        estimates.append(sum(w * cost[k] for k, w in weights.items()) / sum(weights.values()))
    assert statistics.mean(estimates) == pytest.approx(true_mean, rel=0.02)
    assert max(abs(e / true_mean - 1) for e in estimates) < 0.12


def test_a_small_slice_is_drawn_whole() -> None:
    figures = {1: KeyFigures(3, 10), 2: KeyFigures(1, 1)}
    sample = draw_keys(figures, budget=100, run=6, run_events=1_000, seed="s")
    assert sample.drawn() == [1, 2] and sample.weight(1) == sample.weight(2) == 1.0


def test_a_run_is_shorter_where_batches_are_large() -> None:
    assert run_length(KeyFigures(touches=50, events=100), run=6, run_events=20_000) == 6
    assert run_length(KeyFigures(touches=50, events=50 * 12_000), run=6, run_events=20_000) == 1
    assert run_length(KeyFigures(touches=2, events=2), run=6, run_events=20_000) == 2


def test_key_figures_count_batches_and_events() -> None:
    batches = [Batch(0, 0, 0.0, keys={1: 5, 2: 1}), Batch(0, 6, 1.0, keys={1: 2})]
    assert key_figures(batches) == {1: KeyFigures(2, 7), 2: KeyFigures(1, 1)}


def test_each_record_knows_its_events_positions_in_its_request() -> None:
    requests = draw_requests(ZIPF_1K, 1, random.Random(3))
    for request in range(requests.count):
        records = range(requests.starts[request], requests.starts[request + 1])
        where = [
            list(requests.positions[requests.position_starts[j] : requests.position_starts[j + 1]]) for j in records
        ]
        assert [len(w) for w in where] == [requests.events[j] for j in records]
        assert sorted(p for w in where for p in w) == list(range(REQUEST_EVENTS))
