"""Nothing lost, nothing counted twice, when the database stalls under concurrent writers.

DynamoDB Local (its own, on a free port) is paused with SIGSTOP while threads keep writing through the app: hits of
paths of their own, stream values, metric values, moving-average values and survey saves, each with a value no other
request sends, so what landed can be told apart. After SIGCONT, every write answered 2xx is stored exactly once,
every write answered 503 at most once, and nothing else is stored; the hit totals of both scopes equal the sum of
the path counts. Then each write answered 503 is retried with its Idempotency-Key and is stored exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.hits import days
from chalicelib.process import runtime
from chalicelib.pure import clock
from tests.conftest import TABLE, Api, Environment, ok

pytestmark = pytest.mark.real_dynamodb

WRITERS = 5  # threads per kind of write
STALL_S = 3.0
ADMIN_TOKEN = "faults-admin-token-0123456789abcdef"


@dataclass
class Outcomes:
    """Each write's unique value, by what its request was answered."""

    answered: dict[str, list[tuple[Any, dict[str, str]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, status: int, value: Any, key: dict[str, str]) -> None:
        bucket = "ok" if 200 <= status < 300 else "unavailable" if status == 503 else f"other {status}"
        with self.lock:
            self.answered.setdefault(f"{kind} {bucket}", []).append((value, key))

    def values(self, kind: str, bucket: str) -> list[Any]:
        return [value for value, _ in self.answered.get(f"{kind} {bucket}", [])]


Write = Callable[[Api, int, dict[str, str]], tuple[Any, int]]


def hit(api: Api, n: int, key: dict[str, str]) -> tuple[Any, int]:
    path = f"/api/fault/{n}/"
    return path, api.get(path).status_code


def stream_value(api: Api, n: int, key: dict[str, str]) -> tuple[Any, int]:
    return float(n), api.post("/streams/fault/values", {"value": n}, headers=key).status_code


def metric_value(api: Api, n: int, key: dict[str, str]) -> tuple[Any, int]:
    return n, api.post("/metric/fault", {"value": n}, headers=key).status_code


def average_value(api: Api, n: int, key: dict[str, str]) -> tuple[Any, int]:
    return float(n), api.post("/averages/fault", {"value": n}, headers=key).status_code


WRITES: dict[str, Write] = {
    "hit": hit,
    "stream": stream_value,
    "metric": metric_value,
    "average": average_value,
}


def stored(api: Api, client: Any) -> dict[str, list[Any]]:
    """Every value each kind of write left, as many times as it is stored."""
    audit = ok(api.get("/streams/fault/values?limit=100"))
    values: list[Any] = [v["value"] for v in audit["values"]]
    while audit["cursor"]:
        audit = ok(api.get(f"/streams/fault/values?limit=100&cursor={audit['cursor']}"))
        values += [v["value"] for v in audit["values"]]
    items = [i for page in client.get_paginator("scan").paginate(TableName=TABLE) for i in page["Items"]]
    metric = [int(i["v"]["N"]) for i in items if i["pk"]["S"].startswith("SUMEV#fault#")]
    counters = {i["path"]["S"]: int(i["n"]["N"]) for i in items if i["pk"]["S"].startswith("HIT#/api/fault/")}
    hits = [path for path, n in counters.items() for _ in range(n)]
    return {
        "hit": hits,
        "stream": values,
        "metric": metric,
        "average": [float(x) for x in ok(api.get("/averages/fault"))["elements"]],
    }


def run_writers(api: Api, outcomes: Outcomes, stop: threading.Event, start: int) -> list[threading.Thread]:
    def writer(kind: str, base: int) -> None:
        n = base
        while not stop.is_set():
            key = {"Idempotency-Key": f"fault-{kind}-{n}"} if kind != "hit" else {}
            value, status = WRITES[kind](api, n, key)
            outcomes.add(kind, status, value, key)
            n += 1

    threads = [
        threading.Thread(target=writer, args=(kind, start + 100_000 * i + 1_000_000 * k), daemon=True)
        for k, kind in enumerate(WRITES)
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    return threads


def test_a_stalled_database_under_concurrent_writers_loses_nothing_and_counts_nothing_twice(
    api: Api, env: Environment
) -> None:
    from chalicelib.storage.table import ensure_table
    from devtools.ddblocal import DynamoDBLocal, dynamodb_client

    with DynamoDBLocal() as database:
        client = dynamodb_client(database.endpoint_url)
        ensure_table(client, TABLE)
        env.set("DDB_ENDPOINT_URL", database.endpoint_url)
        env.set("ADMIN_TOKEN", ADMIN_TOKEN)
        runtime.reset()
        ok(api.put("/averages/fault", {"size": 10_000}))
        # Short limits, so a stalled write answers 503 within the test's stall.
        env.set("REQUEST_BUDGET_S", "1")
        env.set("DB_CONNECT_TIMEOUT_S", "0.5")
        env.set("DB_READ_TIMEOUT_S", "0.5")
        env.set("DB_MAX_ATTEMPTS", "2")
        runtime.reset()

        outcomes = Outcomes()
        stop = threading.Event()
        threads = run_writers(api, outcomes, stop, 0)
        time.sleep(1.0)
        os.killpg(database._proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            time.sleep(STALL_S)
        finally:
            os.killpg(database._proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(30)

        for name in ("REQUEST_BUDGET_S", "DB_CONNECT_TIMEOUT_S", "DB_READ_TIMEOUT_S", "DB_MAX_ATTEMPTS"):
            env.unset(name)  # the settings' own limits again
        runtime.reset()
        time.sleep(1.0)  # what the woken database had received has landed
        after = stored(api, client)
        unavailable = {kind: len(outcomes.values(kind, "unavailable")) for kind in WRITES}
        assert all(n > 0 for n in unavailable.values()), f"the stall answered no 503 for some kind: {unavailable}"
        assert not [k for k in outcomes.answered if " other " in k], {k: len(v) for k, v in outcomes.answered.items()}
        for kind in WRITES:
            acknowledged, unknown = outcomes.values(kind, "ok"), outcomes.values(kind, "unavailable")
            found = after[kind]
            assert len(found) == len(set(found)), f"{kind}: a value stored twice"
            assert set(acknowledged) <= set(found), f"{kind}: an acknowledged write is missing"
            assert set(found) <= set(acknowledged) | set(unknown), f"{kind}: a value nobody sent"

        # The hit totals are the sum of the path counts, in both scopes.
        for query in ("", f"&day={days.counting_day(clock.now())[0]}"):
            stats = ok(api.get(f"/stats/?limit=1{query}"))
            assert (stats["total_hits"], stats["distinct_paths"]) == (len(after["hit"]), len(set(after["hit"])))

        # Every write answered 503, retried with its key, is stored exactly once.
        for kind in ("stream", "metric", "average"):
            for value, key in outcomes.answered.get(f"{kind} unavailable", []):
                response = WRITES[kind](api, int(value), key)
                assert 200 <= response[1] < 300, (kind, value, response)
        retried = stored(api, client)
        for kind in ("stream", "metric", "average"):
            found = retried[kind]
            assert len(found) == len(set(found)), f"{kind}: a retried value stored twice"
            expected = set(outcomes.values(kind, "ok")) | set(outcomes.values(kind, "unavailable"))
            assert set(found) == expected, f"{kind}: after the retries, not every value once"
