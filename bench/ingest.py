"""Ingest through the events stream against the direct endpoints, on one DynamoDB Local (and one kinesalite).

1. Write cost per event of one hot key (a path, a stream, a metric key, an average window), as DynamoDB Local
   reports it: one direct write, and the consumer applying batches of 10, 100 and 1,000 events (one event per
   record, the least packing a producer can do) through its real entry point.
2. Throughput and equal results: the same mixed events (hot and cold keys of all four types) applied direct
   (one request per event through Chalice's local gateway, WORKERS threads, each key's events in order on one
   thread) into one table, and through the stream (POST /events of 500 through the gateway onto kinesalite,
   then the dev server's poller invoking the consumer until the stream is drained) into another, in one run.
   Then every count, sum, statistic and window of the two tables is compared.

    python -m bench ingest
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import AwsWriteMeter, Meter, fresh_table, local_gateway, set_env, table_md, use_endpoint
from chalicelib import clock, keys, runtime, settings
from chalicelib.averages.store import AverageStore
from chalicelib.hits.store import HitStore
from chalicelib.ingest import consumer, records
from chalicelib.metrics import compaction
from chalicelib.metrics.store import SumStore
from chalicelib.observability import SERVICE
from chalicelib.streams.store import StreamStore
from devtools.kinesis_local import Kinesalite, ensure_stream, kinesis_client
from devtools.kinesis_poller import Checkpoints, KinesisPoller, registrations

BATCHES = (10, 100, 1000)
WINDOW_SIZE = 100
EVENTS = 4000
WORKERS = 8
REQUEST_EVENTS = 500
SHARD = "shardId-000000000000"


def _sequence(n: int) -> str:
    """A Kinesis-like sequence number (56 digits), increasing with n."""
    return f"49{n:054d}"


def _hot_events(kind: str, n: int, now_ms: int) -> list[records.Event]:
    if kind == "hit":
        return [records.HitEvent("/api/hot/", now_ms) for _ in range(n)]
    if kind == "value":
        return [records.ValueEvent("hot", float(i % 97), now_ms, "bench") for i in range(n)]
    if kind == "metric":
        return [records.MetricEvent("hot", i % 97, now_ms - i) for i in range(n)]
    return [records.AverageEvent("hot", float(i % 97)) for i in range(n)]


_DIRECT: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "hit": ("GET", "/api/hot", None),
    "value": ("POST", "/streams/hot/values", {"value": 1.5, "user": "bench"}),
    "metric": ("POST", "/metric/hot", {"value": 3}),
    "average": ("POST", "/averages/hot", {"value": 1.5}),
}


def _request(gateway: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
    data = b"" if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"content-type": "application/json"}
    response: dict[str, Any] = gateway.handle_request(method, path, headers, data)
    assert response["statusCode"] < 300, (path, response)
    return response


def _write_costs(gateway: Any, client: Any) -> str:
    rows = []
    for kind in ("hit", "value", "metric", "average"):
        table = fresh_table(client, "ingest-cost")
        set_env("TABLE_NAME", table)
        _request(gateway, "PUT", "/averages/hot", {"size": WINDOW_SIZE})
        method, path, body = _DIRECT[kind]
        _request(gateway, method, path, body)  # the first write creates items; measure a repeated one
        with Meter(client) as meter:
            for _ in range(10):
                _request(gateway, method, path, body)
            direct = meter.write_units / 10
        row: list[Any] = [kind, f"{direct:.2f}"]
        sequence = 0
        for size in BATCHES:
            events = _hot_events(kind, size, clock.now_ms())
            received = []
            for event in events:
                sequence += 1
                data = base64.b64encode(records.encode([event])).decode()
                received.append(consumer.Received(SHARD, _sequence(sequence), data))
            with Meter(client) as meter:
                failed = consumer.apply_records(received, consumer.appliers())
            assert not failed, failed
            row.append(f"{meter.write_units / size:.4f} ({meter.write_units / size / direct:.3f}x)")
        rows.append(row)
    return table_md(["hot key", "direct, per event"] + [f"stream, batch {n}" for n in BATCHES], rows)


# --- metric events: write units per key per batch --------------------------------------------------------------

# (case, keys, events per key, their spread in ms): one event per record, keys interleaved.
METRIC_CASES = (
    ("cold: 1 event per key", 100, 1, 0),
    ("warm: 25 events per key over 1 s", 40, 25, 1000),
    ("hot: 1,000 events of one key over 1 s", 1, 1000, 1000),
)
MINUTE_MS = 60_000
# A live key's batches in a minute (batching window 1 s, half a second off the seconds): the 1st, 2nd and last are
# measured (the first pays the minute's dirty marker; the minute's items grow until the last).
MINUTE_BATCHES = 59
MEASURED = (0, 1, MINUTE_BATCHES - 1)


def _metric_batch(keys: int, per_key: int, spread_ms: int, at_ms: int, first: int) -> list[consumer.Received]:
    """One record per event, keys interleaved, the events spread over (at_ms - spread_ms, at_ms]; sequence numbers
    from `first`."""
    received: list[consumer.Received] = []
    for i in range(per_key):
        for k in range(keys):
            event = records.MetricEvent(f"m{k}", (i * 37 + k) % 997 - 400, at_ms - i * spread_ms // per_key)
            data = base64.b64encode(records.encode([event])).decode()
            received.append(consumer.Received(SHARD, _sequence(first + len(received)), data))
    return received


@contextlib.contextmanager
def _applied_at(ms: int) -> Iterator[None]:
    """The consumer's clock reads `ms` (it decides whether compaction may already have listed a minute)."""
    clock.set_source(lambda: ms / 1000)
    try:
        yield
    finally:
        clock.set_source(None)


def _metric_units(client: Any, received: list[consumer.Received], keys: int, at_ms: int) -> list[float]:
    """[units by AWS's rules, DynamoDB Local's write units, its read units] per key of applying one batch at `at_ms`."""
    with _applied_at(at_ms), Meter(client) as local, AwsWriteMeter(client) as aws:
        failed = consumer.apply_records(received, consumer.appliers())
    assert not failed, failed
    assert aws.index_entries == 0, aws.index_entries  # metric items carry no index keys
    return [aws.units / keys, local.write_units / keys, local.read_units / keys]


def _metric_minute(
    client: Any, keys: int, per_key: int, spread: int, minute_ms: int
) -> tuple[list[list[float]], list[consumer.Received]]:
    """A minute of live batches, each applied as its second ends: the units of the MEASURED ones, and the last."""
    measured = []
    for i in range(MINUTE_BATCHES):
        at_ms = minute_ms + i * 1000 + 1500
        received = _metric_batch(keys, per_key, spread, at_ms, 1 + i * keys * per_key)
        if i in MEASURED:
            measured.append(_metric_units(client, received, keys, at_ms + 1))
        else:
            with _applied_at(at_ms + 1):
                assert not consumer.apply_records(received, consumer.appliers())
    return measured, received


def _metric_row(label: str, measured: Sequence[list[float] | None]) -> list[str]:
    """A row: AWS's units of each measured batch, then DynamoDB Local's, then the last one's read units."""
    cells = [[f"{m[unit]:.2f}" if m else "" for m in measured] for unit in range(2)]
    last = [m for m in measured if m][-1]
    return [label, *cells[0], *cells[1], f"{last[2]:.2f}"]


def _metric_costs(client: Any) -> str:
    """Write units per key per batch of metric events, by AWS's rules and as DynamoDB Local reports them, for a
    minute of live batches; a redelivered batch; batches after the minute was sealed."""
    rows = []
    now_ms = clock.now_ms()
    minute_ms = now_ms - now_ms % MINUTE_MS - 5 * MINUTE_MS
    for label, keys_n, per_key, spread in METRIC_CASES:
        set_env("TABLE_NAME", fresh_table(client, "metric-cost"))
        measured, last = _metric_minute(client, keys_n, per_key, spread, minute_ms)
        rows.append(_metric_row(label, measured))
    rows.append(
        _metric_row("redelivered: the last hot batch again", [None, None, _metric_units(client, last, 1, now_ms)])
    )
    set_env("TABLE_NAME", fresh_table(client, "metric-cost"))
    _metric_units(client, _metric_batch(100, 1, 0, minute_ms + 500, 1), 100, minute_ms + 501)  # live, then sealed
    compaction.compact(SumStore(client, settings.get().table_name), minute_ms + 2 * MINUTE_MS)
    late = [
        _metric_units(client, _metric_batch(100, 1, 0, minute_ms + 1000 * i, 10**6 * i), 100, now_ms) for i in (1, 2)
    ]
    rows.append(_metric_row("late: 1 event per key, minute sealed", [*late, None]))
    headers = ["per key per batch", "AWS's rules: 1st", "2nd", f"{MINUTE_BATCHES}th", "DynamoDB Local: 1st", "2nd"]
    return table_md([*headers, f"{MINUTE_BATCHES}th", "read units (Local), last"], rows)


# --- throughput and equal results ----------------------------------------------------------------------------


def _mixed_events(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Events as POST /events takes them: a few hot keys of each type and a long tail of cold ones."""

    def key(prefix: str) -> str:
        return f"{prefix}{0 if rng.random() < 0.5 else rng.randrange(1, 40)}"

    events: list[dict[str, Any]] = []
    for _ in range(n):
        kind = rng.choice(("hit", "value", "metric", "average"))
        if kind == "hit":
            events.append({"type": "hit", "path": f"/api/{key('p')}"})
        elif kind == "value":
            events.append({"type": "value", "stream": key("s"), "value": rng.uniform(-1e3, 1e3), "user": "bench"})
        elif kind == "metric":
            events.append({"type": "metric", "key": key("m"), "value": rng.randrange(-1000, 1000)})
        else:
            events.append({"type": "average", "key": f"a{rng.randrange(4)}", "value": rng.uniform(0, 100)})
    return events


def _direct_call(event: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    if event["type"] == "hit":
        return "GET", event["path"], None
    if event["type"] == "value":
        return "POST", f"/streams/{event['stream']}/values", {"value": event["value"], "user": event["user"]}
    if event["type"] == "metric":
        return "POST", f"/metric/{event['key']}", {"value": event["value"]}
    return "POST", f"/averages/{event['key']}", {"value": event["value"]}


def _key_of(event: dict[str, Any]) -> str:
    return str(event.get("path") or event.get("stream") or event.get("key"))


def _apply_direct(gateway: Any, events: Sequence[dict[str, Any]]) -> float:
    """Seconds to apply every event through its direct endpoint; one key's events stay in order on one thread."""
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(WORKERS)]
    for event in events:
        lanes[hash(_key_of(event)) % WORKERS].append(event)

    def run(lane: list[dict[str, Any]]) -> None:
        for event in lane:
            _request(gateway, *_direct_call(event))

    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(run, lanes))
    return time.perf_counter() - started


def _apply_streamed(gateway: Any, events: Sequence[dict[str, Any]], kinesis: Any, state: Path) -> tuple[float, float]:
    """Seconds to put every event (POST /events of 500), and until the consumer has applied them all."""
    started = time.perf_counter()
    for start in range(0, len(events), REQUEST_EVENTS):
        answer = json.loads(
            _request(gateway, "POST", "/events", {"events": events[start : start + REQUEST_EVENTS]})["body"]
        )
        assert answer["accepted"] == len(events[start : start + REQUEST_EVENTS]), answer
    put = time.perf_counter() - started
    registration = registrations(gateway._app_object)[0]  # the app the gateway serves
    poller = KinesisPoller(registration, kinesis, Checkpoints(state / "checkpoints.json"), state / "dead.jsonl")
    idle = 0
    while idle < 3:  # drained: three polls in a row read nothing and left nothing pending
        read = poller.poll_once()
        pending = any(reader.pending for reader in poller.shards.values())
        idle = idle + 1 if not read and not pending else 0
    assert not (state / "dead.jsonl").exists(), "records were dead-lettered"
    return put, time.perf_counter() - started


def _figures(client: Any, table: str, events: Sequence[dict[str, Any]], now_ms: int) -> dict[str, Any]:
    """Every aggregate the events touched, as the stores read them."""
    hits, streams = HitStore(client, table), StreamStore(client, table)
    sums, averages = SumStore(client, table), AverageStore(client, table)
    figures: dict[str, Any] = {"totals": hits.totals(keys.HIT_ALL)}
    for event in events:
        name = _key_of(event)
        kind = event["type"]
        if kind == "hit":
            figures[f"hit {name}"] = hits.count(keys.HIT_ALL, name.rstrip("/") + "/")
        elif kind == "value":
            moments = streams.snapshot(name).moments
            # Merged in another order, float sums differ in the last bits: compare to 9 significant digits.
            figures[f"value {name}"] = (moments.count, f"{moments.mean:.9g}", f"{moments.m2:.9g}")
        elif kind == "metric":
            figures[f"metric {name}"] = sums.sum(name, now_ms, 3_600_000)
        else:
            window = averages.get(name)
            figures[f"average {name}"] = None if window is None else window.get_elements()
    return figures


def _compare(client: Any, gateway: Any, direct_table: str, stream_table: str, events: Sequence[dict[str, Any]]) -> str:
    now_ms = clock.now_ms()
    direct = _figures(client, direct_table, events, now_ms)
    streamed = _figures(client, stream_table, events, now_ms)
    differing = sorted(k for k in direct if direct[k] != streamed[k])
    if differing:
        return f"**differ** ({len(differing)} of {len(direct)}): " + ", ".join(
            f"{k}: {direct[k]} vs {streamed[k]}" for k in differing[:5]
        )
    return f"identical ({len(direct)} aggregates: hit counts and totals, statistics, sums, windows)"


def _throughput(gateway: Any, client: Any) -> str:
    events = _mixed_events(random.Random(7), EVENTS)
    tables = {}
    for way in ("direct", "stream"):
        tables[way] = fresh_table(client, f"ingest-{way}")
        set_env("TABLE_NAME", tables[way])
        for n in range(4):
            _request(gateway, "PUT", f"/averages/a{n}", {"size": WINDOW_SIZE})
    with tempfile.TemporaryDirectory() as state, Kinesalite() as kinesalite:
        kinesis = kinesis_client(kinesalite.endpoint_url)
        ensure_stream(kinesis, settings.get().events_stream_name)
        set_env("KINESIS_ENDPOINT_URL", kinesalite.endpoint_url)
        runtime.reset()
        set_env("TABLE_NAME", tables["direct"])
        with Meter(runtime.dynamodb()) as meter:
            direct_s = _apply_direct(gateway, events)
            direct_units = meter.write_units / EVENTS
        set_env("TABLE_NAME", tables["stream"])
        with Meter(runtime.dynamodb()) as meter:
            put_s, applied_s = _apply_streamed(gateway, events, kinesis, Path(state))
            stream_units = meter.write_units / EVENTS
        set_env("KINESIS_ENDPOINT_URL", None)
    rows = [
        ["direct endpoints", f"{EVENTS / direct_s:,.0f}", "1.00x", f"{direct_units:.2f}"],
        ["POST /events, put on the stream", f"{EVENTS / put_s:,.0f}", f"{direct_s / put_s:.2f}x", ""],
        [
            "through the stream, applied",
            f"{EVENTS / applied_s:,.0f}",
            f"{direct_s / applied_s:.2f}x",
            f"{stream_units:.3f} ({stream_units / direct_units:.3f}x)",
        ],
    ]
    return (
        table_md(["path", "events/s", "vs direct", "write units per event"], rows)
        + "\n\nEqual results: "
        + _compare(client, gateway, tables["direct"], tables["stream"], events)
    )


def run(endpoint_url: str) -> str:
    logging.getLogger(SERVICE).setLevel(logging.WARNING)  # thousands of requests: no access lines
    set_env("POWERTOOLS_METRICS_DISABLED", "true")
    client = use_endpoint(endpoint_url)
    gateway = local_gateway()
    costs = _write_costs(gateway, client)
    metric_costs = _metric_costs(client)
    throughput = _throughput(gateway, client)
    return (
        "### Ingest: the events stream against the direct endpoints\n\n"
        "Write units per event for one hot key (DynamoDB Local's figures; a stream batch of n events is n records "
        "of one event):\n\n"
        f"{costs}\n\n"
        f"Metric events through the consumer, write units per key per batch (one event per record; {MINUTE_BATCHES} batches "
        "a second apart into one minute, the consumer's clock at each batch's end), priced by AWS's rules from the item "
        "images around each write, and as DynamoDB Local reports them (with its read units):\n\n"
        f"{metric_costs}\n\n"
        f"{EVENTS:,} mixed events (four types, half on one hot key each, the rest over 39 cold keys), applied "
        f"direct with {WORKERS} threads and through kinesalite (POST /events of {REQUEST_EVENTS}, then the dev "
        "server's poller and the consumer, one shard at a time), into two tables:\n\n"
        f"{throughput}"
    )


if __name__ == "__main__":
    import sys

    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        if sys.argv[1:] == ["metric-costs"]:  # only the metric consumer's cost section
            logging.getLogger(SERVICE).setLevel(logging.WARNING)
            print(_metric_costs(use_endpoint(database.endpoint_url)))
        else:
            print(run(database.endpoint_url))
