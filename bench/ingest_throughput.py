"""Ingest through the events stream against the direct endpoints: throughput and equal results, on one DynamoDB
Local and one kinesalite (part of `python -m bench ingest`).

The same mixed events (hot and cold keys of all four types) applied direct (one request per event through Chalice's
local gateway, WORKERS threads, each key's events in order on one thread) into one table, and through the stream
(POST /events of 500 through the gateway onto kinesalite, then the dev server's poller invoking the consumer until
the stream is drained) into another, in one run. Then every count, sum, statistic and window of the two tables is
compared. Write units here are DynamoDB Local's (bench/ingest.py prices ingest by AWS's rules).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import Meter, fresh_table, set_env, table_md
from chalicelib.averages.store import AverageStore
from chalicelib.hits.store import HitStore
from chalicelib.metrics.store import SumStore
from chalicelib.process import runtime, settings
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.streams.store import StreamStore
from devtools.kinesis_local import Kinesalite, ensure_stream, kinesis_client
from devtools.kinesis_poller import Checkpoints, KinesisPoller, registrations

WINDOW_SIZE = 100
EVENTS = 2000  # a few minutes on a loaded 2-core machine, with the cost cases before it
WORKERS = 8
REQUEST_EVENTS = 500


def gateway_request(gateway: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """One request through Chalice's local gateway; it must succeed."""
    data = b"" if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"content-type": "application/json"}
    response: dict[str, Any] = gateway.handle_request(method, path, headers, data)
    assert response["statusCode"] < 300, (path, response)
    return response


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
            gateway_request(gateway, *_direct_call(event))

    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(run, lanes))
    return time.perf_counter() - started


def _apply_streamed(gateway: Any, events: Sequence[dict[str, Any]], kinesis: Any, state: Path) -> tuple[float, float]:
    """Seconds to put every event (POST /events of 500), and until the consumer has applied them all."""
    started = time.perf_counter()
    for start in range(0, len(events), REQUEST_EVENTS):
        answer = json.loads(
            gateway_request(gateway, "POST", "/events", {"events": events[start : start + REQUEST_EVENTS]})["body"]
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
            gateway_request(gateway, "PUT", f"/averages/a{n}", {"size": WINDOW_SIZE})
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


def report(gateway: Any, client: Any) -> str:
    """The throughput table and the equal-results check, as Markdown."""
    throughput = _throughput(gateway, client)
    return (
        f"{EVENTS:,} mixed events (four types, half on one hot key each, the rest over 39 cold keys), applied "
        f"direct with {WORKERS} threads and through kinesalite (POST /events of {REQUEST_EVENTS}, then the dev "
        "server's poller and the consumer, one shard at a time), into two tables; write units as DynamoDB Local "
        f"reports them:\n\n{throughput}"
    )
