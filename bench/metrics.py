"""Last-hour sums benchmark: flat read cost, and writes that do not serialize.

1. GET /metric/{key}/sum (through the app's HTTP stack) for a key with 100 events in the
   last hour and one with 100,000, measured side by side (interleaved rounds, medians): latency, and read units
   by AWS's rules from the items read (bench/pricing.py) and as DynamoDB Local reports them.
   Events are spread uniformly over the hour (including the current minute up to now) and
   loaded fast with BatchWriteItem, using the store's own item builders; then the real
   compaction runs as the schedule would leave it at that instant.
2. 16 threads posting through the store's real write path to one key vs to 16 keys.
3. Quantiles: GET /metric/{key}/quantiles?q=0.99 (one hour: two prefixes of the key's chain, not a bucket per minute)
   at 100 vs 100,000 events, the same way; write units per posted value with and without the sketch's ADD; the size
   of the largest sketch items.

    python -m bench metrics          (or: python -m bench.metrics, which starts DynamoDB Local itself)
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
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
from bench.pricing import PricingMeter, item_size
from chalicelib.metrics import compaction, window
from chalicelib.metrics.store import SumStore
from chalicelib.pure import clock, sketch
from chalicelib.storage import keys
from chalicelib.storage.dynamo import query_items

SIZES = {"small": 100, "large": 100_000}
ROUNDS = 7
GETS_PER_ROUND = 5
WRITERS = 16
POSTS_PER_WRITER = 40
WRITE_ROUNDS = 3


def _load(store: SumStore, key: str, count: int, now_ms: int, rng: random.Random) -> None:
    """`count` events uniformly over (now - 1 h, now], as BatchWriteItem of the store's own item shapes."""
    items = []
    parts: dict[tuple[int, int], list[Any]] = defaultdict(lambda: [0, 0, defaultdict(int), defaultdict(int)])
    for i in range(count):
        at_ms = now_ms - int(i * window.MINUTE_MS * 60 / count)
        value = rng.randint(-1000, 1000)
        shard = rng.randrange(keys.SUM_WRITE_SHARDS)
        items.append(store.event_item(key, value, at_ms, f"b{i:015d}", rng.randrange(keys.SUM_EVENT_SHARDS)))
        part = parts[(window.minute_of(at_ms), shard)]
        part[0] += value
        part[1] += 1
        part[2][window.second_of(at_ms)] += value
        part[3][sketch.bin_key(value)] += 1
    items += [store.sub_total_item(key, m, k, t, n, dict(s)) for (m, k), (t, n, s, _) in parts.items()]
    items += [i for (m, k), (*_, bins) in parts.items() for i in store.sketch_sub_items(key, m, k, bins)]
    items += [store.dirty_item(key, m) for m in {m for m, _ in parts}]

    load_items(store.client, store.table, items)


def _read_case(
    gateway: Any, meter: Meter, pricing: PricingMeter, key: str, what: str = "sum"
) -> tuple[float, float, float, Any]:
    """One GET: (latency ms, read units as DynamoDB Local reports them, read units by AWS's rules, answer)."""
    meter.reset()
    started = time.perf_counter()
    with pricing.charging() as bill:
        response = gateway.handle_request("GET", f"/metric/{key}/{what}", {}, b"")
    elapsed = (time.perf_counter() - started) * 1000
    assert response["statusCode"] == 200, response
    answer = json.loads(response["body"])
    return elapsed, meter.read_units, bill.read_units, answer["value"] if what == "sum" else answer


def _largest(store: SumStore, key: str, prefix: str) -> int:
    request: dict[str, Any] = {
        "TableName": store.table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {":pk": {"S": keys.sum_sketch_pk(key)}, ":p": {"S": prefix}},
    }
    return max((item_size(i) for i in query_items(store.client, request)), default=0)


def _write_units(store: SumStore, meter: Meter, with_sketch: bool, posts: int = 200) -> float:
    """Write units per posted value (lognormal latencies), through the post's own transaction, with or without the
    sketch item's ADD."""
    rng = random.Random(3)
    meter.reset()
    for i in range(posts):
        value = round(rng.lognormvariate(5, 1.5))
        request = store.post_transaction(
            f"wcu-{with_sketch}", value, clock.now_ms(), f"w{i}", i % keys.SUM_WRITE_SHARDS
        )
        if not with_sketch:
            request["TransactItems"] = request["TransactItems"][:2]
        store.client.transact_write_items(**request)
    return meter.write_units / posts


Samples = dict[str, dict[str, list[float]]]  # per key: latency ms, read units by AWS's rules and DynamoDB Local's


def _read_samples() -> Samples:
    return {name: {"ms": [], "aws": [], "local": []} for name in SIZES}


def _add_sample(samples: Samples, name: str, ms: float, local: float, aws: float) -> None:
    samples[name]["ms"].append(ms)
    samples[name]["aws"].append(aws)
    samples[name]["local"].append(local)


def _read_rows(samples: Samples) -> list[list[str]]:
    """Medians per key and their ratio: latency, read units by AWS's rules, read units as DynamoDB Local says."""
    med = {name: {k: median(v) for k, v in columns.items()} for name, columns in samples.items()}
    rows = [[f"{SIZES[n]:,}", *(f"{med[n][k]:.1f}" for k in ("ms", "aws", "local"))] for n in SIZES]
    small, large = (med[n] for n in SIZES)
    rows.append(["ratio 100,000 / 100", *(f"{large[k] / small[k]:.2f}x" for k in ("ms", "aws", "local"))])
    return rows


READ_HEADERS = ["events in the last hour", "latency ms", "read units (AWS)", "read units (Local)"]


def _quantile_rows(gateway: Any, meter: Meter, pricing: PricingMeter, truth: dict[str, list[int]]) -> list[list[str]]:
    samples = _read_samples()
    for r in range(ROUNDS):
        for name in SIZES if r % 2 == 0 else reversed(list(SIZES)):
            for _ in range(GETS_PER_ROUND):
                ms, local, aws, answer = _read_case(gateway, meter, pricing, name, "quantiles?q=0.99")
                expected = sorted(truth[name])[int(0.99 * (len(truth[name]) - 1))]
                assert answer["count"] == len(truth[name]), (name, answer)
                assert abs(answer["quantiles"]["0.99"] - expected) <= 0.01 * abs(expected), (answer, expected)
                _add_sample(samples, name, ms, local, aws)
    return _read_rows(samples)


def _write_case(store: SumStore, targets: list[str]) -> float:
    """Posts per second of WRITERS threads, each posting to targets[i % len(targets)]."""

    def writer(index: int) -> None:
        for _ in range(POSTS_PER_WRITER):
            store.post(targets[index % len(targets)], 1, clock.now_ms())

    started = time.perf_counter()
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))
    return WRITERS * POSTS_PER_WRITER / (time.perf_counter() - started)


def run(endpoint_url: str) -> str:
    client = use_endpoint(endpoint_url)
    table = fresh_table(client, "sums")
    set_env("TABLE_NAME", table)
    meter = Meter(client)
    store = SumStore(client, table, random.Random(1))
    rng = random.Random(2)
    # A fixed instant 20 s into a minute: the current minute holds 20 s of events, and the previous
    # minute is still inside the seal lag (not compacted) - the most raw-ish state the schedule leaves.
    real = int(time.time() * 1000)
    now_ms = real - real % window.MINUTE_MS + 20_000
    started = time.perf_counter()
    for name, count in SIZES.items():
        _load(store, name, count, now_ms, rng)
    load_s = time.perf_counter() - started
    report = compaction.compact(store, now_ms, lookback=70)
    truth = {name: _expected(store, name, now_ms) for name in SIZES}
    covered = {name: _covered(store, name, now_ms) for name in SIZES}
    clock.set_source(lambda: now_ms / 1000)
    gateway = local_gateway()
    samples = _read_samples()
    try:
        with PricingMeter(client, unmetered_client(endpoint_url)) as pricing:
            for r in range(ROUNDS):
                for name in SIZES if r % 2 == 0 else reversed(list(SIZES)):
                    for _ in range(GETS_PER_ROUND):
                        ms, local, aws, value = _read_case(gateway, meter, pricing, name)
                        assert value == truth[name], (name, value, truth[name])
                        _add_sample(samples, name, ms, local, aws)
            quantile_rows = _quantile_rows(gateway, meter, pricing, covered)
    finally:
        clock.set_source(None)
    sizes = [
        ["largest sub-total sketch item (100,000 events)", f"{_largest(store, 'large', 'S'):,}"],
        ["largest sketch bucket item (100,000 events)", f"{_largest(store, 'large', 'B'):,}"],
        ["largest prefix item (100,000 events)", f"{_largest(store, 'large', 'P'):,}"],
    ]
    units = [["without the sketch", f"{_write_units(store, meter, False):.2f}"]]
    units.append(["with the sketch", f"{_write_units(store, meter, True):.2f}"])
    rows = _read_rows(samples)

    writes: dict[str, list[float]] = {"one key": [], "16 keys": []}
    meter.reset()
    for r in range(WRITE_ROUNDS):
        cases = [("one key", [f"hot{r}"]), ("16 keys", [f"k{r}-{i}" for i in range(WRITERS)])]
        for label, targets in cases if r % 2 == 0 else cases[::-1]:
            writes[label].append(_write_case(store, targets))
    one, many = median(writes["one key"]), median(writes["16 keys"])
    posts = WRITE_ROUNDS * 2 * WRITERS * POSTS_PER_WRITER
    retried = meter.calls["TransactWriteItems"] - posts  # every post is one transaction unless it was retried
    write_rows = [["one key", f"{one:.0f}"], ["16 keys", f"{many:.0f}"], ["ratio one / 16", f"{one / many:.2f}x"]]
    return "\n\n".join(
        [
            "### Last-hour sums",
            f"Events spread uniformly over the last hour (up to now), loaded in {load_s:.0f} s; compaction as the "
            f"schedule leaves it 20 s into a minute ({len(report.minutes)} minutes sealed, {report.written} buckets; "
            "the current and previous minute are read from sub-totals). "
            f"`GET /metric/{{key}}/sum` through the app's HTTP stack, {ROUNDS} interleaved rounds of "
            f"{GETS_PER_ROUND}, medians; read units by AWS's rules (each Query page by the size of the items it "
            "read, each BatchGetItem key by its item, at least one unit each; bench/pricing.py) and as DynamoDB "
            "Local reports them:",
            table_md(READ_HEADERS, rows),
            f"{WRITERS} threads posting {POSTS_PER_WRITER} values each through the store's write path, "
            f"{WRITE_ROUNDS} interleaved rounds, median posts/s:",
            table_md(["target", "posts/s"], write_rows),
            f"Each post is one TransactWriteItems (event Put + sub-total ADD on one of {keys.SUM_WRITE_SHARDS} "
            f"shards); {retried} transactions (for {posts} posts) were cancelled by a TransactionConflict and retried.",
            "`GET /metric/{key}/quantiles?q=0.99` (one hour, whole minutes), the same keys, rounds and medians:",
            table_md(READ_HEADERS, quantile_rows),
            "Write capacity units per posted value (200 lognormal values through the post's transaction):",
            table_md(["post", "write units per value"], units),
            table_md(["item", "bytes"], sizes),
        ]
    )


def _posted(store: SumStore, key: str, now_ms: int) -> list[tuple[int, int]]:
    """(time ms, value) of every value posted in the minutes overlapping the last hour, from a full Query of the
    events (what the design avoids at read time)."""
    posted: list[tuple[int, int]] = []
    for minute in window.minutes_overlapping(now_ms, 3_600_000):
        for shard in range(keys.SUM_EVENT_SHARDS):
            request: dict[str, Any] = {
                "TableName": store.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": keys.sum_event_pk(key, minute, shard)}},
            }
            posted += [(int(i["at"]["N"]), int(i["v"]["N"])) for i in query_items(store.client, request)]
    return posted


def _expected(store: SumStore, key: str, now_ms: int) -> int:
    """The true sum of the last hour."""
    return sum(v for at, v in _posted(store, key, now_ms) if now_ms - 3_600_000 < at <= now_ms)


def _covered(store: SumStore, key: str, now_ms: int) -> list[int]:
    """The values a one-hour quantile covers (every minute overlapping the window)."""
    return [v for _, v in _posted(store, key, now_ms)]


if __name__ == "__main__":
    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        print(run(database.endpoint_url))
