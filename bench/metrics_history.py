"""Metric history benchmark: a 90-day series at a 1-hour step costs the same at 100 values an hour as at 100,000.

Two keys, one with 100 values an hour and one with 100,000 (lognormal latencies), each with 90 days of hour buckets
as the rollup writes them (RollupStore.put_bucket: figures and sketch items; the hours' done markers). The sketches
of the 100,000-value hours are 24 distinct sketches of 100,000 sampled values, reused hour after hour (building
216 million values would only slow the load). The series ends 26 h before the clock, where every hour is rolled up:
the last day's hours, read from minutes, are measured by the last-hour benchmark (`bench/metrics.py`). 90 days are
2,160 points, over the 1,500 a request may ask for, so each read is two requests of 45 days, through the app's HTTP
stack; read units by AWS's rules (bench/pricing.py) and as DynamoDB Local reports them, medians of interleaved rounds.

    python -m bench metrics_history
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import Meter, fresh_table, local_gateway, median, set_env, table_md, unmetered_client, use_endpoint
from bench.metrics import _read_case
from bench.pricing import PricingMeter
from chalicelib.metrics import rollup
from chalicelib.metrics.rollup import HOUR, HOUR_MS, Bucket
from chalicelib.metrics.rollup_store import RollupStore
from chalicelib.metrics.store import SumStore
from chalicelib.pure import clock
from chalicelib.pure.sketch import Sketch

SIZES = {"history-100": 100, "history-100000": 100_000}
DAYS = 90
ROUNDS = 5
DISTINCT_LARGE = 24


def _bucket(values: list[int]) -> Bucket:
    return Bucket(len(values), sum(values), min(values), max(values), Sketch.of(values))


def _load(rollups: RollupStore, first_hour: int, rng: random.Random) -> None:
    large = [_bucket([round(rng.lognormvariate(5, 1.5)) for _ in range(100_000)]) for _ in range(DISTINCT_LARGE)]
    hours = range(first_hour, first_hour + DAYS * 24)

    def one_hour(hour: int) -> None:
        small = _bucket([round(random.Random(hour).lognormvariate(5, 1.5)) for _ in range(100)])
        rollups.put_bucket("history-100", HOUR, hour, small)
        rollups.put_bucket("history-100000", HOUR, hour, large[hour % DISTINCT_LARGE])
        rollups.mark_done(HOUR, hour, hour * HOUR_MS)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one_hour, hours))


def run(endpoint_url: str) -> str:
    client = use_endpoint(endpoint_url)
    table = fresh_table(client, "history")
    set_env("TABLE_NAME", table)
    meter = Meter(client)
    real = int(time.time() * 1000)
    now_ms = real - real % HOUR_MS
    end_hour = (now_ms - 26 * HOUR_MS) // HOUR_MS
    first_hour = end_hour - DAYS * 24
    rollups = RollupStore(
        SumStore(client, table), rollup.Retention(48 * HOUR_MS, 91 * 24 * HOUR_MS, 1_826 * 24 * HOUR_MS)
    )
    started = time.perf_counter()
    _load(rollups, first_hour, random.Random(4))
    load_s = time.perf_counter() - started
    clock.set_source(lambda: now_ms / 1000)
    set_env("METRIC_HOURS_RETENTION_D", "92")  # 90 days ending 26 h ago start 91 days back
    gateway = local_gateway()
    halves = [(first_hour, first_hour + DAYS * 12), (first_hour + DAYS * 12, end_hour)]
    samples: dict[tuple[str, str], dict[str, list[float]]] = {}
    try:
        with PricingMeter(client, unmetered_client(endpoint_url)) as pricing:
            for r in range(ROUNDS):
                for name in SIZES if r % 2 == 0 else reversed(list(SIZES)):
                    for q in ("", "&q=0.5,0.99"):
                        ms = aws = local = 0.0
                        points = 0
                        for a, b in halves:
                            span = f"from={clock.iso(a * HOUR_MS)}&to={clock.iso(b * HOUR_MS)}&step=3600{q}"
                            took, got_local, got_aws, answer = _read_case(
                                gateway, meter, pricing, name, f"series?{span}"
                            )
                            assert all(p["count"] == SIZES[name] for p in answer["points"]), name
                            points += len(answer["points"])
                            ms, aws, local = ms + took, aws + got_aws, local + got_local
                        assert points == DAYS * 24
                        row = samples.setdefault((name, q), {"ms": [], "aws": [], "local": []})
                        row["ms"].append(ms)
                        row["aws"].append(aws)
                        row["local"].append(local)
    finally:
        clock.set_source(None)
        set_env("METRIC_HOURS_RETENTION_D", None)
    rows = []
    for q in ("", "&q=0.5,0.99"):
        med = {name: {k: median(v) for k, v in samples[(name, q)].items()} for name in SIZES}
        for name in SIZES:
            rows.append(
                [f"{SIZES[name]:,}", "yes" if q else "no", *(f"{med[name][k]:.1f}" for k in ("ms", "aws", "local"))]
            )
        small, large = (med[n] for n in SIZES)
        rows.append(["ratio", "", *(f"{large[k] / small[k]:.2f}x" for k in ("ms", "aws", "local"))])
    headers = ["values an hour", "quantiles", "latency ms (2 requests)", "read units (AWS)", "read units (Local)"]
    return "\n\n".join(
        [
            "### Metric history",
            f"90 days of hour buckets at a 1-hour step (2,160 points, two requests of 1,080), loaded in {load_s:.0f} s: "
            "figures alone read about 60 bytes a point; quantiles add the hour's sketch, whose size follows the bins "
            "its values use (not their number). The last day, read from minutes, is not in this range.",
            table_md(headers, rows),
        ]
    )


if __name__ == "__main__":
    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        print(run(database.endpoint_url))
