"""The client against the real dev server (`python -m devtools.devserver`: DynamoDB Local, kinesalite and the
events consumer): every typed call, and the batcher's exactly-once delivery through a proxy that loses answers.

One test, so that `make test`'s workers (pytest-xdist) start one dev server, not one each; the steps are helpers."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from conftest import DevServer
from livestats_client import (
    Client,
    Event,
    EventBatcher,
    InvalidRequest,
    NotFound,
    RetryPolicy,
)

from tests.lossy_proxy import AnswerLosingProxy, header

APPLIED_TIMEOUT_S = 60.0  # a bound for failures: the consumer applies within seconds on a quiet machine


class EventsAnswerLosingProxy(AnswerLosingProxy):
    """Loses the answer to the first POST /events of each of the first `lose` Idempotency-Keys (forwarded whole, its
    answer read from the server: applied). `events_keys` lists the Idempotency-Key of every POST /events in the order
    they arrived, `lost_keys` those whose answer was lost, `replayed` whether each was answered with
    `Idempotent-Replayed: true`."""

    def __init__(self, upstream_port: int, lose: int) -> None:
        self.lose = lose
        self.events_keys: list[str | None] = []
        self.lost_keys: list[str | None] = []
        self.replayed: list[bool] = []  # per POST /events: whether the service answered it from a stored answer
        super().__init__(upstream_port)

    def loses(self, request: bytes, answer: bytes) -> bool:
        head = request.partition(b"\r\n\r\n")[0].decode("latin-1")
        if not head.startswith("POST /events "):
            return False
        key = header(head, "idempotency-key")
        replayed = header(answer.partition(b"\r\n\r\n")[0].decode("latin-1"), "idempotent-replayed") == "true"
        with self._lock:
            self.replayed.append(replayed)
            self.events_keys.append(key)
            if key not in self.lost_keys and len(self.lost_keys) < self.lose:
                self.lost_keys.append(key)
                return True
        return False


def wait_until(what: str, check: object) -> None:
    import time

    assert callable(check)
    deadline = time.monotonic() + APPLIED_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last is True:
            return
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {APPLIED_TIMEOUT_S:.0f} s (last: {last!r})")


def check_streams(client: Client, stream: str) -> None:
    first = client.add(stream, [1, 2, 4])
    assert (first.stream, first.count, first.session) == (stream, 3, first.session)
    assert first.mean is not None and math.isclose(first.mean, 7 / 3)
    after = client.add(stream, 3, user="ada")
    assert after.count == 4 and after.max == 4 and after.sum == 10
    snapshot = client.snapshot(stream)
    assert snapshot.count == 4 and snapshot.started_at is not None and snapshot.started_at.tzinfo is not None
    assert snapshot.quantiles is not None and snapshot.quantiles.p50 == pytest.approx(2, rel=0.01)
    quantiles = client.stream_quantiles(stream, [0.5, 1])
    assert quantiles.count == 4 and set(quantiles.quantiles) == {0.5, 1.0}
    assert quantiles.quantiles[1.0] == pytest.approx(4, rel=0.01)
    closed = client.reset(stream, user="ada")
    assert (closed.count, closed.closed_by) == (4, "ada") and closed.closed_at is not None
    assert client.snapshot(stream).count == 0
    page = client.sessions(stream, limit=10)
    assert [(s.count, s.closed_by) for s in page.sessions] == [(4, "ada")] and page.cursor is None
    with pytest.raises(InvalidRequest) as refused:
        client.stream_quantiles(stream, [2])
    assert (refused.value.status, refused.value.code, refused.value.field) == (400, "invalid_input", "q")
    client.add(stream, 5)
    listed = client.streams(prefix=stream, limit=1)
    assert [n.name for n in listed.names] == [stream] and listed.names[0].updated_at is not None
    client.delete_stream(stream)
    client.delete_stream(stream)  # idempotent
    assert client.snapshot(stream).count == 0 and client.sessions(stream).sessions == ()
    assert client.streams(prefix=stream).names == ()


def check_metrics(client: Client, key: str) -> None:
    client.post_metric(key, 2)
    client.post_metric(key, 3.4)  # rounded to 3
    assert client.metric_sum(key, window=3600) == 5
    quantiles = client.metric_quantiles(key, [0.5, 0.99])
    assert quantiles.count == 2 and set(quantiles.quantiles) == {0.5, 0.99}
    now = datetime.now(UTC)
    series = client.metric_series(key, now - timedelta(hours=1), now + timedelta(minutes=1), 60, q=[0.5])
    assert series.key == key and series.step == 60
    assert sum(p.count for p in series.points) == 2 and sum(p.sum or 0 for p in series.points) == 5
    assert all(p.at.tzinfo is not None for p in series.points)
    client.delete_metric(key)  # listed only once a minute is compacted: GET /metric is checked by the service's tests
    assert client.metric_sum(key) == 0
    client.post_metric(key, 7)
    assert client.metric_sum(key) == 7  # started afresh


def check_averages(client: Client, key: str) -> None:
    with pytest.raises(NotFound):
        client.window(key)
    created = client.set_window(key, 3)
    assert (created.size, created.count, created.average, created.elements) == (3, 0, None, ())
    for value in (1, 2, 3, 4):
        appended = client.append(key, value)
    assert (appended.average, appended.count, appended.size) == (3.0, 3, 3)
    assert client.window(key).elements == (2.0, 3.0, 4.0)
    assert client.set_window(key, 2).elements == (3.0, 4.0)
    assert [n.name for n in client.windows(prefix=key).names] == [key]
    client.delete_window(key)
    with pytest.raises(NotFound):
        client.append(key, 1)
    assert client.windows(prefix=key).names == ()


def check_hits(client: Client, path: str) -> None:
    first = client.hit(path)
    assert (first.path, first.count) == (path + "/", 1)  # sent percent-encoded, counted as given
    assert client.hit(path).count == 2
    today = datetime.now(UTC).date()
    ranked = {p.path: p.count for p in client.ranking(limit=1000).paths}
    assert ranked[path + "/"] == 2
    series = client.hit_series(path, today - timedelta(days=1), today)
    assert [d.day for d in series.days] == [today - timedelta(days=1), today] and series.path == path + "/"
    assert sum(d.count for d in series.days) == 2


def check_events(client: Client, key: str) -> None:
    invalid = cast(Event, {"type": "metric", "key": key, "value": "x"})  # invalid on purpose
    answer = client.send_events(
        [{"type": "metric", "key": key, "value": 1}, invalid], idempotency_key=str(uuid.uuid4())
    )
    assert answer.accepted == 1
    assert [(r.index, r.code, r.field) for r in answer.rejected] == [(1, "invalid_input", "events[1].value")]
    wait_until("the event's metric applied", lambda: client.metric_sum(key) == 1 or client.metric_sum(key))


def check_exactly_once(client: Client, dev_server: DevServer, run: str) -> None:
    """1,200 events in 3 batches; the answers to the first two POST /events are lost after the service took them.
    The batcher retries each with its key, and each event counts once: the sums, counts and hits are exactly the
    events sent. A sentinel sent after them, on the same partition keys, is applied after any copy would be."""
    key, stream, path = f"eo-{run}", f"eo-{run}", f"/api/eo-{run}"
    events: list[Event] = [{"type": "metric", "key": key, "value": v} for v in range(1, 701)]
    events += [{"type": "value", "stream": stream, "value": v} for v in range(1, 301)]
    events += [{"type": "hit", "path": path} for _ in range(200)]
    with EventsAnswerLosingProxy(dev_server.port, lose=2) as proxy, Client(proxy.url) as through_proxy:
        with EventBatcher(through_proxy, flush_interval=60, retry=RetryPolicy(base_delay=0.05)) as batcher:
            for event in events:
                batcher.add(event)
        assert batcher.failures == [] and batcher.accepted == len(events)
        assert len(proxy.lost_keys) == 2 and None not in proxy.lost_keys
        assert len(set(proxy.events_keys)) == 3  # 3 batches, the 2 lost ones sent again with their own key
        for lost in proxy.lost_keys:
            assert proxy.events_keys.count(lost) == 2
        # Each retry of a lost batch was answered from the first answer: the service put nothing again.
        retries = [
            i for i, key in enumerate(proxy.events_keys) if key in proxy.lost_keys and i > proxy.events_keys.index(key)
        ]
        assert [proxy.replayed[i] for i in retries] == [True, True]
        assert proxy.replayed.count(True) == 2

    sentinel = 1_000_000
    sentinels: list[Event] = [
        {"type": "metric", "key": key, "value": sentinel},
        {"type": "value", "stream": stream, "value": 0},
        {"type": "hit", "path": path},
    ]
    assert client.send_events(sentinels).accepted == 3
    today = datetime.now(UTC).date()

    def hits() -> int:
        return sum(d.count for d in client.hit_series(path, today - timedelta(days=1), today).days)

    wait_until("the metric's sentinel", lambda: client.metric_sum(key) >= sentinel or client.metric_sum(key))
    assert client.metric_sum(key) == sum(range(1, 701)) + sentinel
    wait_until("the stream's sentinel", lambda: client.snapshot(stream).min == 0 or client.snapshot(stream).count)
    snapshot = client.snapshot(stream)
    assert (snapshot.count, snapshot.sum) == (301, sum(range(1, 301)))
    wait_until("the hits", lambda: hits() >= 201 or hits())
    assert hits() == 201


def test_every_call_and_exactly_once_delivery_against_the_dev_server(dev_server: DevServer) -> None:
    run = uuid.uuid4().hex[:8]
    with Client(dev_server.url, timeout=30) as client:
        check_streams(client, f"client-{run}")
        check_metrics(client, f"client:{run}")
        check_averages(client, f"client:{run}")
        check_hits(client, f"/api/client {run}/%41")
        check_events(client, f"events:{run}")
        check_exactly_once(client, dev_server, run)
