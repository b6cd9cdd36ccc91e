"""Ranking at scale: GET /stats/?limit=20 with 100,000 distinct paths vs 100 paths.

Two tables on one DynamoDB Local: one with 100 paths, one with 100,000 (long-tailed counts,
so most paths tie at small counts). Both are loaded with BatchWriteItem of the items the
store itself builds (HitStore.counter_item / rank_item / totals_item), then the real handler answers
GET /stats/?limit=20 through Chalice's local gateway, alternating between the tables for
several rounds; medians of latency, read units (by AWS's rules from the items read, bench/pricing.py, and as
DynamoDB Local reports them) and round trips are compared.
A second figure: the write cost of one hit (first and repeated), as DynamoDB Local reports it.

    python -m bench.hits
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

from bench.common import (
    Meter,
    fresh_table,
    load_items,
    local_gateway,
    median,
    set_env,
    table_md,
    unmetered_client,
    use_endpoint,
)
from bench.pricing import PricingMeter
from chalicelib.hits.counts import Counter
from chalicelib.hits.store import HitStore
from chalicelib.storage import keys

SMALL, LARGE = 100, 100_000
ROUNDS = 21
WARMUP = 3
LIMIT = 20
DAY = "2026-11-23"


def _paths(n: int, rng: random.Random) -> dict[str, int]:
    """n distinct paths with Zipf-like counts (most of the tail ties at 1..3)."""
    words = ["product", "user", "order", "cart", "search", "item", "blog", "api-v2"]
    counts: dict[str, int] = {}
    while len(counts) < n:
        i = len(counts)
        path = f"/api/{rng.choice(words)}/{i}/" if i % 3 else f"/api/{rng.choice(words)}/{rng.choice(words)}/{i}/"
        counts[path] = max(1, int(50_000 / (i + 1) ** 1.1))
    return counts


def _load(client: Any, store: HitStore, counts: dict[str, int]) -> None:
    items = [store.counter_item(path, Counter(n, DAY, 0)) for path, n in counts.items()]
    items += [store.rank_item(keys.HIT_ALL, path, n) for path, n in counts.items()]
    items += [
        store.totals_item(
            keys.HIT_ALL,
            keys.hit_direct_writer(k),
            sum(counts.values()) if k == 0 else 0,
            len(counts) if k == 0 else 0,
        )
        for k in range(keys.HIT_TOTAL_SHARDS)
    ]

    load_items(client, store.table, items)


def _stats(
    gateway: Any, meter: Meter, pricing: PricingMeter, table_name: str
) -> tuple[float, float, int, float, list[dict[str, Any]]]:
    set_env("TABLE_NAME", table_name)
    meter.reset()
    started = time.perf_counter()
    with pricing.charging() as bill:
        response = gateway.handle_request("GET", f"/stats/?limit={LIMIT}", {}, b"")
    elapsed = time.perf_counter() - started
    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    return elapsed * 1000, meter.read_units, meter.round_trips, bill.read_units, body["paths"]


def run(endpoint_url: str) -> str:
    client = use_endpoint(endpoint_url)
    meter = Meter(client)
    rng = random.Random(42)
    tables: dict[int, str] = {}
    expected: dict[int, list[dict[str, Any]]] = {}
    load_seconds: dict[int, float] = {}
    for n in (SMALL, LARGE):
        tables[n] = fresh_table(client, f"hits-{n}")
        counts = _paths(n, rng)
        started = time.perf_counter()
        _load(client, HitStore(client, tables[n]), counts)
        load_seconds[n] = time.perf_counter() - started
        top = sorted(counts.items(), key=lambda pc: (-pc[1], pc[0]))[:LIMIT]
        expected[n] = [{"path": p, "count": c} for p, c in top]

    gateway = local_gateway()
    previous_table = os.environ.get("TABLE_NAME")
    samples: dict[int, list[tuple[float, float, int, float]]] = {SMALL: [], LARGE: []}
    try:
        with PricingMeter(client, unmetered_client(endpoint_url)) as pricing:
            for round_ in range(WARMUP + ROUNDS):
                order = (SMALL, LARGE) if round_ % 2 else (LARGE, SMALL)
                for n in order:
                    ms, rcu, trips, aws_rcu, page = _stats(gateway, meter, pricing, tables[n])
                    assert page == expected[n], f"wrong ranking at {n} paths"
                    if round_ >= WARMUP:
                        samples[n].append((ms, rcu, trips, aws_rcu))

        # Write cost of one hit, through the store's real write path.
        set_env("TABLE_NAME", tables[SMALL])
        hit_store = HitStore(client, tables[SMALL])
        write_cost = []
        for path in ("/api/bench-new-path/", "/api/bench-new-path/"):
            meter.reset()
            hit_store.record(path, DAY, 0)
            write_cost.append((meter.write_units, meter.round_trips))
    finally:
        set_env("TABLE_NAME", previous_table)
        for name in tables.values():
            client.delete_table(TableName=name)

    med = {n: [median([s[i] for s in samples[n]]) for i in range(4)] for n in samples}
    rows = [
        [
            f"{n:,} paths",
            f"{med[n][0]:.1f}",
            f"{med[n][3]:.1f}",
            f"{med[n][1]:.1f}",
            f"{med[n][2]:.0f}",
            f"{load_seconds[n]:.1f}",
        ]
        for n in (SMALL, LARGE)
    ]
    rows.append(
        [
            "**ratio 100k / 100**",
            f"**{med[LARGE][0] / med[SMALL][0]:.2f}x**",
            f"**{med[LARGE][3] / med[SMALL][3]:.2f}x**",
            f"{med[LARGE][1] / med[SMALL][1]:.2f}x",
            f"{med[LARGE][2] / med[SMALL][2]:.2f}x",
            "",
        ]
    )
    section = [
        "### Hit counters: ranking at scale",
        "",
        f"`GET /stats/?limit={LIMIT}` through the real handler (Chalice local gateway), {ROUNDS} interleaved rounds "
        f"after {WARMUP} warm-up rounds, medians. Read units by AWS's rules (each Query page by the size of the index "
        "entries it read, each BatchGetItem key by its item, at least one unit each, halved for eventually "
        "consistent reads; bench/pricing.py), and as DynamoDB Local reports them with the round trips "
        f"({keys.HIT_RANK_SHARDS} ranking partitions queried in parallel + one Query of the scope's totals items, "
        "one per writer). Every answer was checked against "
        f"the expected top {LIMIT}.",
        "",
        table_md(
            ["table", "latency ms", "read units (AWS)", "read units (Local)", "round trips", "load s (BatchWriteItem)"],
            rows,
        ),
        "",
        f"One hit costs {write_cost[0][0]:.0f} write units in {write_cost[0][1]} round trips for a new path and "
        f"{write_cost[1][0]:.0f} write units for a repeat (the counter items are in the ranking index: a changed "
        "score is a delete and an insert there).",
    ]
    return "\n".join(section)


if __name__ == "__main__":
    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        print(run(database.endpoint_url))
