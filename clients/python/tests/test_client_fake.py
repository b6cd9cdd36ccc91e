"""The client and the batcher against a fake service: URLs under a path prefix, headers, errors, and the
batcher's batching, retries, Retry-After, re-sending of refused events, failures, queue, flush and close."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from fake_service import Answer, FakeService, Received, accept_all
from livestats_client import (
    BatcherClosed,
    Client,
    ConnectionFailed,
    Event,
    EventBatcher,
    Failure,
    NotFound,
    QueueFull,
    RetryPolicy,
    Unavailable,
)

FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01)  # backoff out of the way


def metric(i: int) -> Event:
    return {"type": "metric", "key": "k", "value": i}


@pytest.fixture
def fake() -> Iterator[FakeService]:
    with FakeService() as service:
        yield service


def snapshot_json(stream: str) -> dict[str, object]:
    statistics = ["session", "mean", "variance", "stddev", "sample_variance", "sample_stddev", "min", "max", "sum"]
    empty = dict.fromkeys([*statistics, "started_at", "started_by", "updated_at", "quantiles"])
    return {"stream": stream, "count": 0, **empty}


def test_urls_under_a_path_prefix_are_percent_encoded_and_carry_the_token(fake: FakeService) -> None:
    def answer(request: Received) -> Answer:
        if request.path.startswith("/api/streams/"):
            return 200, {}, snapshot_json("a.b")
        if request.path.startswith("/api/api/"):
            return 200, {}, {"path": "/api/a b/", "count": 1}
        return 200, {}, {"value": 7}

    fake.answer = answer
    with Client(fake.url + "/api/", token="secret") as client:
        assert client.snapshot("a.b").count == 0
        assert client.hit("/api/a b").count == 1
        assert client.metric_sum("k:1", window=60) == 7
    paths = [r.path for r in fake.requests()]
    assert paths == ["/api/streams/a.b", "/api/api/a%20b", "/api/metric/k%3A1/sum?window=60"]
    assert {r.headers["authorization"] for r in fake.requests()} == {"Bearer secret"}


def test_no_token_no_authorization_header(fake: FakeService) -> None:
    with Client(fake.url) as client:
        client.send_events([metric(1)], idempotency_key="key-1")
    (request,) = fake.requests()
    assert "authorization" not in request.headers
    assert request.headers["idempotency-key"] == "key-1"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {"events": [metric(1)]}


def test_errors_carry_the_answer(fake: FakeService) -> None:
    fake.answer = lambda request: (
        (404, {}, {"error": {"code": "not_found", "message": "no such window", "field": None}})
        if request.path.startswith("/averages/")
        else (503, {"Retry-After": "5"}, {"error": {"code": "database_unavailable", "message": "retry"}})
    )
    with Client(fake.url) as client:
        with pytest.raises(NotFound) as missing:
            client.window("w")
        assert (missing.value.status, missing.value.code, missing.value.field) == (404, "not_found", None)
        with pytest.raises(Unavailable) as unavailable:
            client.snapshot("s")
        assert (unavailable.value.code, unavailable.value.retry_after) == ("database_unavailable", 5.0)


def test_no_answer_is_connection_failed() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", timeout=2) as client, pytest.raises(ConnectionFailed) as failed:
        client.snapshot("s")
    assert failed.value.status is None


@pytest.mark.parametrize(("status", "code"), [(503, "stream_unavailable"), (429, "too_many_requests")])
def test_retry_after_is_honoured_with_the_same_key(fake: FakeService, status: int, code: str) -> None:
    def answer(request: Received) -> Answer:
        if len(fake.requests()) == 1:
            return status, {"Retry-After": "1"}, {"error": {"code": code, "message": "later"}}
        return accept_all(request)

    fake.answer = answer
    with Client(fake.url) as client, EventBatcher(client, retry=FAST) as batcher:
        batcher.add(metric(1))
    first, second = fake.requests()
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert second.at - first.at >= 1.0  # the backoff alone would have waited at most 0.01 s
    assert batcher.accepted == 1 and batcher.failures == []


def test_a_409_in_progress_is_retried_with_the_same_key(fake: FakeService) -> None:
    def answer(request: Received) -> Answer:
        if len(fake.requests()) == 1:
            return 409, {}, {"error": {"code": "idempotency_in_progress", "message": "still running"}}
        return accept_all(request)

    fake.answer = answer
    with Client(fake.url) as client, EventBatcher(client, retry=FAST) as batcher:
        batcher.add(metric(1))
    first, second = fake.requests()
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert batcher.accepted == 1 and batcher.failures == []


def test_refused_events_are_sent_again_alone_and_invalid_ones_reported(fake: FakeService) -> None:
    def answer(request: Received) -> Answer:
        if len(fake.requests()) > 1:
            return accept_all(request)
        rejected = [
            {"index": 1, "error": {"code": "stream_unavailable", "message": "retry", "field": "events[1]"}},
            {"index": 2, "error": {"code": "invalid_input", "message": "bad value", "field": "events[2].value"}},
        ]
        return 202, {}, {"accepted": 1, "rejected": rejected}

    fake.answer = answer
    reported: list[Failure] = []
    with Client(fake.url) as client, EventBatcher(client, retry=FAST, on_failure=reported.append) as batcher:
        for i in range(3):
            batcher.add(metric(i))
    first, second = fake.requests()
    assert first.body == {"events": [metric(0), metric(1), metric(2)]}
    assert second.body == {"events": [metric(1)]}
    assert first.headers["idempotency-key"] != second.headers["idempotency-key"]
    assert (
        reported
        == batcher.failures
        == [Failure(metric(2), "rejected", 202, "invalid_input", "bad value", "events[2].value")]
    )
    assert batcher.accepted == 2


def test_a_batch_always_unavailable_is_reported_after_the_last_attempt(fake: FakeService) -> None:
    fake.answer = lambda request: (503, {}, {"error": {"code": "stream_unavailable", "message": "down"}})
    with Client(fake.url) as client, EventBatcher(client, retry=FAST) as batcher:
        batcher.add(metric(1))
        batcher.add(metric(2))
    assert len(fake.requests()) == FAST.max_attempts
    assert len({r.headers["idempotency-key"] for r in fake.requests()}) == 1
    assert [(f.event, f.reason, f.status, f.code) for f in batcher.failures] == [
        (metric(1), "gave_up", 503, "stream_unavailable"),
        (metric(2), "gave_up", 503, "stream_unavailable"),
    ]


def test_an_error_no_retry_mends_is_reported_at_once(fake: FakeService) -> None:
    fake.answer = lambda request: (401, {}, {"error": {"code": "unauthorized", "message": "token"}})
    with Client(fake.url) as client, EventBatcher(client, retry=FAST) as batcher:
        batcher.add(metric(1))
    assert len(fake.requests()) == 1
    assert [(f.reason, f.status, f.code) for f in batcher.failures] == [("refused", 401, "unauthorized")]


def test_batches_are_cut_at_500_events(fake: FakeService) -> None:
    with Client(fake.url) as client, EventBatcher(client, flush_interval=60) as batcher:
        for i in range(1201):
            batcher.add(metric(i))
    assert [len(r.body["events"]) for r in fake.requests()] == [500, 500, 201]
    assert [e["value"] for r in fake.requests() for e in r.body["events"]] == list(range(1201))


def test_batches_are_cut_at_256_kib(fake: FakeService) -> None:
    long_hit: Event = {"type": "hit", "path": "/api/" + "x" * 2000}
    with Client(fake.url) as client, EventBatcher(client, flush_interval=60) as batcher:
        for _ in range(300):
            batcher.add(long_hit)
    sizes = [int(r.headers["content-length"]) for r in fake.requests()]
    assert len(sizes) == 3 and max(sizes) <= 256 * 1024
    assert sum(len(r.body["events"]) for r in fake.requests()) == 300


def test_an_event_too_large_for_any_request_is_refused_by_add(fake: FakeService) -> None:
    with Client(fake.url) as client, EventBatcher(client) as batcher, pytest.raises(ValueError):
        batcher.add({"type": "hit", "path": "/api/" + "x" * 300_000})


def test_a_batch_is_sent_after_the_flush_interval_without_flush(fake: FakeService) -> None:
    with Client(fake.url) as client, EventBatcher(client, flush_interval=0.2) as batcher:
        batcher.add(metric(1))
        batcher.add(metric(2))
        (request,) = fake.wait_for_requests(1)
        assert request.body == {"events": [metric(1), metric(2)]}


def test_flush_waits_until_everything_added_is_accepted(fake: FakeService) -> None:
    with Client(fake.url) as client, EventBatcher(client, flush_interval=60) as batcher:
        batcher.add(metric(1))
        assert batcher.flush(timeout=10)
        assert batcher.accepted == 1 and len(fake.requests()) == 1


def test_a_full_queue_makes_add_raise_after_its_timeout(fake: FakeService) -> None:
    release = threading.Event()

    def answer(request: Received) -> Answer:
        release.wait(10)
        return accept_all(request)

    fake.answer = answer
    with Client(fake.url) as client:
        batcher = EventBatcher(client, max_queue=2, add_timeout=0.2, max_events=1)
        batcher.add(metric(0))
        fake.wait_for_requests(1)  # the thread holds event 0 in a request the service does not answer yet
        batcher.add(metric(1))
        batcher.add(metric(2))
        with pytest.raises(QueueFull):
            batcher.add(metric(3))
        release.set()
        assert batcher.close(timeout=10)
    assert [r.body["events"] for r in fake.requests()] == [[metric(0)], [metric(1)], [metric(2)]]
    with pytest.raises(BatcherClosed):
        batcher.add(metric(4))
