"""Hot stream benchmark: 16 writers on one stream vs 16 writers on 16 streams.

Runs the store's real write path (read shards, Welford update, conditional
transaction with the audit entry) against DynamoDB Local. A third case turns
sharding off (one state item per stream) to show what the shards buy.

    python -m bench streams
"""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.common import Meter, fresh_table, median, table_md, use_endpoint
from chalicelib.edge.errors import Busy
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.streams.store import StreamStore

WRITERS = 16
VALUES_PER_WRITER = 25
ROUNDS = 3


def _case(store: StreamStore, meter: Meter, streams: list[str]) -> dict[str, float]:
    """Every writer posts VALUES_PER_WRITER single values to its stream; returns per-value figures."""
    meter.reset()

    def writer(index: int) -> int:
        """Posts VALUES_PER_WRITER values; returns how many the store gave up on (503 Busy)."""
        stream = streams[index % len(streams)]
        rng = random.Random(index)
        gave_up = 0
        for _ in range(VALUES_PER_WRITER):
            now = clock.now_ms()
            try:
                store.add_values(stream, [rng.uniform(0, 100)], "bench", uuid.uuid4().hex[:16], now, clock.iso(now))
            except Busy:
                gave_up += 1
        return gave_up

    started = time.perf_counter()
    with ThreadPoolExecutor(WRITERS) as pool:
        gave_up = sum(pool.map(writer, range(WRITERS)))
    elapsed = time.perf_counter() - started
    stored = WRITERS * VALUES_PER_WRITER - gave_up
    calls = meter.round_trips
    counted = sum(store.snapshot(stream).moments.count for stream in set(streams))
    assert counted == stored, f"lost an update: {counted} != {stored}"
    return {
        "throughput": stored / elapsed,
        "round_trips": calls / stored,
        "conflicts": (meter.calls["TransactWriteItems"] - stored) / stored,
        "gave_up": gave_up / (WRITERS * VALUES_PER_WRITER),
        "wcu": meter.write_units / stored,
        "rcu": meter.read_units / stored,
    }


def run(endpoint_url: str) -> str:
    client = use_endpoint(endpoint_url)
    table = fresh_table(client, "streams")
    meter = Meter(client)
    cases = {
        f"1 stream, {keys.SHARDS} shards": (keys.SHARDS, 1),
        f"{WRITERS} streams, {keys.SHARDS} shards": (keys.SHARDS, WRITERS),
        "1 stream, 1 shard (unsharded)": (1, 1),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, (shards, stream_count) in cases.items():  # interleaved: each round runs every case
            store = StreamStore(client, table, shards=shards)
            streams = [f"s-{uuid.uuid4().hex[:8]}" for _ in range(stream_count)]
            results[name].append(_case(store, meter, streams))
    summary = {name: {k: median([r[k] for r in runs]) for k in runs[0]} for name, runs in results.items()}
    one, many, unsharded = (summary[name] for name in cases)
    rows = [
        [
            name,
            f"{s['throughput']:.0f}",
            f"{s['throughput'] / many['throughput']:.2f}",
            f"{s['round_trips']:.2f}",
            f"{s['conflicts']:.2f}",
            f"{s['gave_up']:.1%}",
            f"{s['wcu']:.1f}",
            f"{s['rcu']:.1f}",
        ]
        for name, s in summary.items()
    ]
    return "\n".join(
        [
            f"### Running statistics: {WRITERS} concurrent writers (`bench/streams.py`)",
            "",
            table_md(
                [
                    "case",
                    "values/s",
                    f"vs {WRITERS} streams",
                    "round trips/value",
                    "retries/value",
                    "gave up (503)",
                    "WCU/value",
                    "RCU/value",
                ],
                rows,
            ),
            "",
            f"One hot stream keeps {one['throughput'] / many['throughput']:.2f}x the throughput of {WRITERS} "
            f"separate streams; without shards it keeps {unsharded['throughput'] / many['throughput']:.2f}x. "
            f"Medians of {ROUNDS} interleaved rounds of {WRITERS * VALUES_PER_WRITER} single-value writes.",
        ]
    )


if __name__ == "__main__":
    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        print(run(database.endpoint_url))
