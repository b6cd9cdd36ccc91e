"""Stream quantiles end to end: snapshots and GET /streams/{stream}/quantiles within 1% of the exact quantiles of
everything sent, through concurrent writers, shards, resets and the events stream (both backends)."""

from __future__ import annotations

import json
import math
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.process import runtime
from chalicelib.pure import clock
from chalicelib.pure.sketch import GAMMA, MAX_BINS, RELATIVE_ACCURACY, Sketch
from chalicelib.storage import keys
from chalicelib.streams.store import StreamStore
from tests.conftest import BAD_QUANTILE_LEVELS, TABLE, Api
from tests.test_ingest_consumer import consume, values

WRITERS = 8
POSTS_EACH = 8
SNAPSHOT_QS = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
ANY_QS = "0,0.001,0.25,0.5,0.75,0.999,1"


def exact(xs: list[float], q: float) -> float:
    """The lower q-quantile: rank floor(q * (n - 1)) of the sorted values."""
    ordered = sorted(xs)
    return ordered[math.floor(q * (len(ordered) - 1))]


def assert_within(answer: float | None, true: float, what: object) -> None:
    assert answer is not None, what
    assert abs(answer - true) <= RELATIVE_ACCURACY * (1 + 1e-9) * abs(true), (what, answer, true)


def assert_snapshot_quantiles(body: dict[str, Any], xs: list[float]) -> None:
    assert body["count"] == len(xs)
    for name, q in SNAPSHOT_QS.items():
        assert_within(body["quantiles"][name], exact(xs, q), name)


def mixed_batch(rng: random.Random, n: int) -> list[float]:
    """Signed lognormal values, zeros, duplicates and the magnitude bounds."""
    pool = [0.0, 0.0, 2.5, 2.5, 1e-50, -1e-50, 1e50, -1e50]
    return [
        rng.choice(pool) if rng.random() < 0.2 else rng.choice((-1, 1)) * rng.lognormvariate(3, 2) for _ in range(n)
    ]


def store() -> StreamStore:
    return StreamStore(runtime.dynamodb(), TABLE)


def test_an_empty_stream_has_null_quantiles(api: Api) -> None:
    assert json.loads(api.get("/streams/none").body)["quantiles"] is None
    response = api.get("/streams/none/quantiles?q=0.5,0.99")
    assert response.status_code == 200
    assert json.loads(response.body) == {
        "quantiles": {"0.5": None, "0.99": None},
        "relative_accuracy": RELATIVE_ACCURACY,
        "count": 0,
    }


def test_eight_concurrent_writers_get_quantiles_within_one_percent_of_everything_sent(api: Api) -> None:
    rng = random.Random(12)
    batches = [[mixed_batch(rng, 25) for _ in range(POSTS_EACH)] for _ in range(WRITERS)]

    def post_all(posts: list[list[float]]) -> list[int]:
        return [api.post("/streams/tail/values", {"values": xs}).status_code for xs in posts]

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = [s for result in pool.map(post_all, batches) for s in result]
    assert statuses == [200] * WRITERS * POSTS_EACH
    everything = [x for posts in batches for xs in posts for x in xs]
    assert_snapshot_quantiles(json.loads(api.get("/streams/tail").body), everything)
    answer = json.loads(api.get(f"/streams/tail/quantiles?q={ANY_QS}").body)
    assert answer["count"] == len(everything) and answer["relative_accuracy"] == RELATIVE_ACCURACY
    assert list(answer["quantiles"]) == ANY_QS.split(",")
    for text, estimate in answer["quantiles"].items():
        assert_within(estimate, exact(everything, float(text)), text)
    # More than one shard took values, and each shard's sketch counts exactly its own values.
    shards = store().read_shards("tail")
    assert sum(1 for s in shards if s.moments.count) > 1
    assert all(s.sketch.count == s.moments.count for s in shards)


def test_the_answer_to_a_write_carries_the_quantiles(api: Api) -> None:
    body = json.loads(api.post("/streams/w/values", {"values": [1, 2, 3, 4, 100]}).body)
    assert_snapshot_quantiles(body, [1, 2, 3, 4, 100])
    assert body["quantiles"]["p50"] != body["quantiles"]["p99"]


def test_quantiles_answer_inside_the_values_posted_and_the_edges_exactly(api: Api) -> None:
    api.post("/streams/inside/values", {"values": [*range(1, 31), *range(1, 31)]})
    body = json.loads(api.get("/streams/inside").body)
    assert body["quantiles"]["p99"] == 30  # a bin's representative, unclamped, is 30.27
    assert all(1 <= v <= 30 for v in body["quantiles"].values())
    api.post("/streams/edges/values", {"values": [1, 2, 4]})
    answer = json.loads(api.get("/streams/edges/quantiles?q=0,0.5,1").body)["quantiles"]
    assert answer["0"] == 1 and answer["1"] == 4  # unclamped, q=0 is 0.99
    assert answer["0.5"] == pytest.approx(2, rel=RELATIVE_ACCURACY)


def test_a_reset_closes_the_sketch_with_its_session_and_the_next_session_starts_a_new_one(api: Api) -> None:
    first = [float(x) for x in range(1, 201)]
    second = [-5.0, 0.0, 0.0, 7.0]
    assert api.post("/streams/r/values", {"values": first[:100]}).status_code == 200
    assert api.post("/streams/r/values", {"values": first[100:]}).status_code == 200
    closed = json.loads(api.post("/streams/r/reset").body)
    assert_snapshot_quantiles(closed, first)
    assert json.loads(api.get("/streams/r").body)["quantiles"] is None
    assert api.post("/streams/r/values", {"values": second}).status_code == 200
    assert_snapshot_quantiles(json.loads(api.get("/streams/r").body), second)
    answer = json.loads(api.get("/streams/r/quantiles?q=0,0.5,1").body)
    assert answer["quantiles"] == {"0": pytest.approx(-5.0, rel=0.01), "0.5": 0.0, "1": pytest.approx(7.0, rel=0.01)}
    assert answer["count"] == 4
    listed = json.loads(api.get("/streams/r/sessions").body)["sessions"]
    assert [s["session"] for s in listed] == [1]
    assert_snapshot_quantiles(listed[0], first)


@pytest.mark.parametrize("query", [f"q={q}" for q in BAD_QUANTILE_LEVELS] + [""])
def test_a_bad_q_is_a_400_naming_q_and_changes_nothing(api: Api, query: str) -> None:
    assert api.post("/streams/bad/values", {"values": [1.0, 2.0]}).status_code == 200
    before = json.loads(api.get("/streams/bad").body)
    response = api.get(f"/streams/bad/quantiles?{query}")
    assert response.status_code == 400, response.body
    error = json.loads(response.body)["error"]
    assert (error["code"], error["field"]) == ("invalid_input", "q")
    assert json.loads(api.get("/streams/bad").body) == before


def test_twenty_levels_and_the_edges_are_accepted(api: Api) -> None:
    assert api.post("/streams/edge/values", {"values": [3.0, 1.0, 2.0]}).status_code == 200
    levels = ["0", "1", ".5", "1.0", "0.25"] + [f"0.{i:02d}" for i in range(15)]
    answer = json.loads(api.get("/streams/edge/quantiles?q=" + ",".join(levels)).body)
    assert list(answer["quantiles"]) == list(dict.fromkeys(levels))
    assert answer["quantiles"]["0"] == pytest.approx(1.0, rel=0.01)
    assert answer["quantiles"]["1"] == answer["quantiles"]["1.0"] == pytest.approx(3.0, rel=0.01)


def test_a_shard_stores_a_bounded_sketch_in_the_same_item(dynamodb: Any) -> None:
    s = StreamStore(runtime.dynamodb(), TABLE, shards=1)
    spread = [
        GAMMA ** (i - 0.5) for i in range(-7000, 7000)
    ]  # 14,000 bins (beyond what the API accepts): more than MAX_BINS
    for n in range(0, len(spread), 1000):
        s.add_values("wide", spread[n : n + 1000], None, f"r{n}", clock.now_ms(), clock.iso(clock.now_ms()))
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": keys.stream_shard_pk("wide", 0)}, "sk": {"S": "STATE"}})
    stored = Sketch.decode(bytes(item["Item"]["sketch"]["B"]))
    assert stored.count == len(spread) and len(stored.positive) == MAX_BINS
    assert len(item["Item"]["sketch"]["B"]) <= 2 * MAX_BINS + 16
    figures = s.snapshot("wide")
    for q in (0.2, 0.5, 0.9, 0.99, 1.0):  # the kept bins: the top MAX_BINS of 14,000
        assert_within(figures.sketch.quantile(q), exact(spread, q), q)


def test_a_session_begun_before_sketches_has_null_quantiles_rather_than_wrong_ones(api: Api, dynamodb: Any) -> None:
    assert api.post("/streams/old/values", {"values": [1.0, 2.0, 3.0]}).status_code == 200
    for shard in range(keys.SHARDS):
        key = {"pk": {"S": keys.stream_shard_pk("old", shard)}, "sk": {"S": "STATE"}}
        if "Item" in dynamodb.get_item(TableName=TABLE, Key=key):
            dynamodb.update_item(TableName=TABLE, Key=key, UpdateExpression="REMOVE sketch")
    assert api.post("/streams/old/values", {"value": 4.0}).status_code == 200
    body = json.loads(api.get("/streams/old").body)
    assert body["count"] == 4 and body["quantiles"] is None
    assert json.loads(api.get("/streams/old/quantiles?q=0.5").body)["quantiles"] == {"0.5": None}


# --- the events stream -----------------------------------------------------------------------------------------


def test_values_from_the_events_stream_update_the_sketch_exactly_once(client: Any, dynamodb: Any) -> None:
    rng = random.Random(5)
    xs = mixed_batch(rng, 300)
    batch = [(n, values("ev", xs[n * 50 : n * 50 + 50])) for n in range(6)]
    assert consume(client, batch) == []
    assert consume(client, batch) == []  # redelivered
    assert consume(client, batch[2:]) == []  # a retry from its middle
    assert consume(client, batch[:3], shard="shardId-000000000000") == []  # bisected
    direct = [1.5, -2.5, 0.0]
    now = clock.now_ms()
    store().add_values("ev", direct, "ana", "direct-1", now, clock.iso(now))
    figures = store().snapshot("ev")
    everything = xs + direct
    assert figures.moments.count == figures.sketch.count == len(everything)
    for q in (0.0, 0.01, 0.5, 0.9, 0.99, 1.0):
        assert_within(figures.sketch.quantile(q), exact(everything, q), q)
    assert (figures.moments.min, figures.moments.max) == (min(everything), max(everything))


def test_events_after_a_reset_count_in_the_new_sketch_only(client: Any, dynamodb: Any) -> None:
    assert consume(client, [(0, values("evr", [10.0, 20.0, 30.0]))]) == []
    closed = store().reset("evr", "admin", clock.now_ms())
    assert closed.sketch.count == 3
    assert consume(client, [(0, values("evr", [10.0, 20.0, 30.0])), (1, values("evr", [-1.0]))]) == []
    figures = store().snapshot("evr")
    assert figures.sketch.count == figures.moments.count == 1
    assert_within(figures.sketch.quantile(0.5), -1.0, "new session")


def test_the_histogram_is_the_sessions_sketch_bins_inside_its_values(api: Api) -> None:
    assert json.loads(api.get("/streams/hist/histogram").body) == {
        "bins": [],
        "relative_accuracy": RELATIVE_ACCURACY,
        "count": 0,
    }
    xs = [-3.0, 0.0, 0.0, 1.0, 2.0, 4.0, 4.0, 100.0]
    api.post("/streams/hist/values", {"values": xs})
    body = json.loads(api.get("/streams/hist/histogram").body)
    bins = body["bins"]
    assert body["count"] == len(xs) == sum(b["count"] for b in bins)
    assert [b["count"] for b in bins] == [1, 2, 1, 1, 2, 1]  # -3, the zeros, 1, 2, the fours, 100
    assert bins[0]["low"] == -3 and bins[-1]["high"] == 100  # narrowed to the session's min and max
    for x in xs:
        assert any(b["low"] <= x <= b["high"] for b in bins), x
    assert [b["low"] for b in bins] == sorted(b["low"] for b in bins)
