"""Concurrent writers on one stream lose nothing (DynamoDB Local: real conditional writes)."""

from __future__ import annotations

import json
import math
import random
import statistics
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import Api

WRITERS = 16
VALUES_EACH = 50


@pytest.mark.real_dynamodb
def test_sixteen_writers_on_one_stream_lose_nothing(api: Api) -> None:
    rng = random.Random(7)
    batches = [[rng.uniform(-1000, 1000) + 1e6 for _ in range(VALUES_EACH)] for _ in range(WRITERS)]

    def post_all(values: list[float]) -> list[int]:
        return [api.post("/streams/hot/values", {"value": x, "user": f"w{len(values)}"}).status_code for x in values]

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = [s for result in pool.map(post_all, batches) for s in result]
    assert statuses == [200] * WRITERS * VALUES_EACH
    everything = [x for batch in batches for x in batch]
    snap = json.loads(api.get("/streams/hot").body)
    assert snap["count"] == WRITERS * VALUES_EACH
    assert math.isclose(snap["mean"], statistics.fmean(everything), rel_tol=1e-9)
    assert math.isclose(snap["variance"], statistics.pvariance(everything), rel_tol=1e-9)
    assert math.isclose(snap["sample_variance"], statistics.variance(everything), rel_tol=1e-9)
    assert (snap["min"], snap["max"]) == (min(everything), max(everything))
    # Every value has exactly one audit entry.
    audited = []
    cursor = None
    while True:
        page = json.loads(api.get("/streams/hot/values?limit=100" + (f"&cursor={cursor}" if cursor else "")).body)
        audited += [entry["value"] for entry in page["values"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert sorted(audited) == sorted(everything)


@pytest.mark.real_dynamodb
def test_reset_racing_writers_keeps_every_value_in_exactly_one_session(api: Api) -> None:
    def post_some(worker: int) -> None:
        for i in range(30):
            assert api.post("/streams/race/values", {"value": worker * 100 + i}).status_code == 200

    def reset_some() -> int:
        closed = 0
        for _ in range(5):
            response = api.post("/streams/race/reset")
            assert response.status_code in (200, 409), response.body
            closed += response.status_code == 200
        return closed

    with ThreadPoolExecutor(9) as pool:
        writers = [pool.submit(post_some, w) for w in range(8)]
        resets = pool.submit(reset_some)
        for future in writers:
            future.result()
        resets.result()
    sessions = json.loads(api.get("/streams/race/sessions?limit=100").body)["sessions"]
    active = json.loads(api.get("/streams/race").body)
    assert sum(s["count"] for s in sessions) + active["count"] == 8 * 30
