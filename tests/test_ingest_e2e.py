"""The whole ingest path: POST /events puts records on the stream (moto's Kinesis), the dev server's poller hands
them to the app's consumer as Lambda would, and every aggregate equals the one the same events make direct.

Each event is sent twice, to twin keys: `-d` through its direct endpoint, `-s` through POST /events.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.averages.store import AverageStore
from chalicelib.hits import days
from chalicelib.hits.store import HitStore
from chalicelib.metrics.store import SumStore
from chalicelib.process import runtime
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.streams.store import StreamStore
from tests.conftest import TABLE, Api, EventsStream, drain, ok

WINDOW = 8  # each average key gets about 20 of the events: its window evicts
AVERAGES = ("a0", "a1")


def _events(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Events of every type on a few keys each, some keys hot."""
    events: list[dict[str, Any]] = []
    for _ in range(n):
        kind = rng.choice(("hit", "value", "metric", "average"))
        k = rng.choice((0, 0, 0, 1, 2))
        if kind == "hit":
            events.append({"type": "hit", "path": f"/api/p{k}/x"})
        elif kind == "value":
            events.append({"type": "value", "stream": f"s{k}", "value": rng.uniform(-1e3, 1e3), "user": f"u{k}"})
        elif kind == "metric":
            events.append({"type": "metric", "key": f"m{k}", "value": rng.randrange(-500, 500)})
        else:
            events.append({"type": "average", "key": AVERAGES[k % 2], "value": rng.uniform(0, 100)})
    return events


def _twin(event: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The event for the twin key with this suffix."""
    twin = dict(event)
    if "path" in twin:
        twin["path"] = twin["path"].replace("/x", f"{suffix}/x")
    for name in ("stream", "key"):
        if name in twin:
            twin[name] += suffix
    return twin


def _send_direct(api: Api, event: dict[str, Any]) -> None:
    kind = event["type"]
    if kind == "hit":
        ok(api.get(event["path"]))
    elif kind == "value":
        ok(api.post(f"/streams/{event['stream']}/values", {"value": event["value"], "user": event["user"]}))
    elif kind == "metric":
        ok(api.post(f"/metric/{event['key']}", {"value": event["value"]}))
    else:
        ok(api.post(f"/averages/{event['key']}", {"value": event["value"]}))


def _figures(suffix: str, events: list[dict[str, Any]], now_ms: int) -> dict[str, Any]:
    client = runtime.dynamodb()
    hits, streams = HitStore(client, TABLE), StreamStore(client, TABLE)
    sums, averages = SumStore(client, TABLE), AverageStore(client, TABLE)
    day, _ = days.counting_day(now_ms / 1000)
    figures: dict[str, Any] = {}
    for event in (_twin(e, suffix) for e in events):
        kind = event["type"]
        if kind == "hit":
            path = event["path"] + "/"
            figures[f"hit {path}"] = (hits.count(keys.HIT_ALL, path), hits.count(day, path))
        elif kind == "value":
            moments = streams.snapshot(event["stream"]).moments
            figures[f"value {event['stream']}"] = moments
        elif kind == "metric":
            figures[f"metric {event['key']}"] = (
                sums.sum(event["key"], now_ms, 3_600_000),
                sums.minutes(event["key"], now_ms, 3_600_000),
            )
        else:
            window = averages.get(event["key"])
            figures[f"average {event['key']}"] = None if window is None else window.get_elements()
    return {name.replace(suffix, ""): value for name, value in figures.items()}


@pytest.mark.heavy
def test_events_through_the_stream_equal_the_same_events_direct(
    api: Api, events_stream: EventsStream, tmp_path: Path
) -> None:
    # One instant for the whole test: a direct post counts at its arrival and a streamed one at POST /events', so
    # a minute boundary between them would move values between minutes (the dynamodb fixture restores the clock).
    instant = time.time() // 60 * 60 + 30
    clock.set_source(lambda: instant)
    events = _events(random.Random(11), 160)
    for suffix in ("-d", "-s"):
        for name in AVERAGES:
            ok(api.put(f"/averages/{name}{suffix}", {"size": WINDOW}))
    for event in events:
        _send_direct(api, _twin(event, "-d"))
    for start in range(0, len(events), 60):
        batch = [_twin(e, "-s") for e in events[start : start + 60]]
        answer = ok(api.post("/events", {"events": batch}), 202)
        assert answer == {"accepted": len(batch), "rejected": []}

    poller = drain(events_stream, tmp_path)

    assert not poller.dead_letters.exists()
    now_ms = clock.now_ms()
    direct, streamed = _figures("-d", events, now_ms), _figures("-s", events, now_ms)
    assert direct.keys() == streamed.keys() and len(direct) == 3 * 3 + len(AVERAGES)
    for name, value in direct.items():
        if name.startswith("value "):
            other = streamed[name]
            assert (value.count, value.min, value.max) == (other.count, other.min, other.max), name
            for attr in ("mean", "m2", "sum"):
                assert math.isclose(getattr(value, attr), getattr(other, attr), rel_tol=1e-9, abs_tol=1e-9), name
        else:
            assert value == streamed[name], name
    # Every event was counted once: the hit totals are the sum of the paths' counts, on both sides.
    hits = HitStore(runtime.dynamodb(), TABLE)
    total = sum(1 for e in events if e["type"] == "hit")
    assert hits.totals(keys.HIT_ALL).total_hits == 2 * total


def test_a_redelivered_stream_applies_nothing_twice(api: Api, events_stream: EventsStream, tmp_path: Path) -> None:
    events = [{"type": "hit", "path": "/api/again"}] * 50 + [{"type": "metric", "key": "again", "value": 2}] * 50
    ok(api.post("/events", {"events": events}), 202)
    drain(events_stream, tmp_path)
    # A fresh poller with no checkpoints reads the whole stream again, as a replay from TRIM_HORIZON would.
    (tmp_path / "replay").mkdir()
    drain(events_stream, tmp_path / "replay")

    now_ms = clock.now_ms()
    assert HitStore(runtime.dynamodb(), TABLE).count(keys.HIT_ALL, "/api/again/") == 50
    assert SumStore(runtime.dynamodb(), TABLE).sum("again", now_ms, 3_600_000) == 100
    assert json.loads(api.get("/metric/again/sum").body)["value"] == 100
