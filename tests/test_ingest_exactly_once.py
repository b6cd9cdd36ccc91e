"""Lost PutRecords answers, end to end: POST /events (moto's Kinesis, on both backends) with the answers of chosen
calls lost after Kinesis stored their records, then the dev server's poller handing the stream to the consumer.
Every acknowledged event is applied once, however many copies the stream holds; every refused one never."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from chalicelib.hits.store import HitStore
from chalicelib.ingest import producer, records
from chalicelib.ingest.store import FirstCopyStore
from chalicelib.metrics.store import SumStore
from chalicelib.process import runtime
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.streams.store import StreamStore
from tests.conftest import TABLE, Api, EventsStream, assert_error, drain, ok

NOW_MS = 1_795_514_400_000
EVENTS = [
    {"type": "metric", "key": "m", "value": 5},
    {"type": "hit", "path": "/api/once"},
    {"type": "value", "stream": "s", "value": 2.5},
]


@pytest.fixture
def ingest(api: Api, events_stream: EventsStream) -> Iterator[Api]:
    clock.set_source(lambda: NOW_MS / 1000)
    yield api
    clock.set_source(None)


class LostAnswers:
    """Botocore hook on the app's Kinesis client: the PutRecords calls `lose(call)` picks reach Kinesis, which stores
    their records, and their answers are lost (a read timeout), as when a stalled Kinesis answers too late."""

    def __init__(self, lose: Callable[[int], bool]) -> None:
        self.lose = lose
        self.calls = 0
        runtime.kinesis().meta.events.register("after-call.kinesis.PutRecords", self._after)

    def _after(self, **_: Any) -> None:
        call, self.calls = self.calls, self.calls + 1
        if self.lose(call):
            raise ReadTimeoutError(endpoint_url="https://kinesis.us-east-1.amazonaws.com")


def applied() -> tuple[int, int, int]:
    """What the consumer made of EVENTS: the metric's sum, the path's count, the stream's count of values."""
    client = runtime.dynamodb()
    return (
        SumStore(client, TABLE).sum("m", NOW_MS, 3_600_000),
        HitStore(client, TABLE).count(keys.HIT_ALL, "/api/once/"),
        StreamStore(client, TABLE).snapshot("s").moments.count,
    )


def copies(stream: EventsStream) -> int:
    """How many records the stream holds for the metric event (one per copy)."""
    return sum(1 for r in stream.records() if r["PartitionKey"] == "metric:m")


def test_a_put_whose_answer_was_lost_twice_is_sent_again_and_each_event_applies_once(
    ingest: Api, events_stream: EventsStream, tmp_path: Path
) -> None:
    lost = LostAnswers(lambda call: call < 2)
    assert ok(ingest.post("/events", {"events": EVENTS}), 202) == {"accepted": 3, "rejected": []}
    assert lost.calls == 3 and copies(events_stream) == 3  # the case: three copies on the stream
    drain(events_stream, tmp_path)
    assert applied() == (5, 1, 1)
    # A replay of the whole stream (a fresh poller) changes nothing either.
    (tmp_path / "replay").mkdir()
    drain(events_stream, tmp_path / "replay")
    assert applied() == (5, 1, 1)


def test_events_whose_answers_are_all_lost_are_refused_and_never_applied(
    ingest: Api, events_stream: EventsStream, tmp_path: Path
) -> None:
    lost = LostAnswers(lambda call: True)
    response = ingest.post("/events", {"events": EVENTS}, headers={"Idempotency-Key": "lost"})
    answer = ok(response, 202)  # not 503: the stream may hold them, so "nothing was put" would be untrue
    assert answer["accepted"] == 0
    assert [(r["index"], r["error"]["code"]) for r in answer["rejected"]] == [
        (i, "stream_unavailable") for i in range(3)
    ]
    assert response.headers["Retry-After"] == str(producer.RETRY_AFTER_S)
    assert copies(events_stream) >= 2
    drain(events_stream, tmp_path)
    assert applied() == (0, 0, 0)
    # The keyed retry gets the same answer; sent again in a new request, each event applies once.
    assert ok(ingest.post("/events", {"events": EVENTS}, headers={"Idempotency-Key": "lost"}), 202) == answer
    lost.lose = lambda call: False
    assert ok(ingest.post("/events", {"events": EVENTS}), 202)["accepted"] == 3
    drain(events_stream, tmp_path)
    assert applied() == (5, 1, 1)


def test_an_unsure_event_that_a_copy_claimed_first_is_accepted(
    ingest: Api, events_stream: EventsStream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    LostAnswers(lambda call: True)
    refuse = producer.Producer._refuse

    def consumer_first(self: producer.Producer, unsure: list[records.EventId]) -> list[records.EventId]:
        drain(events_stream, tmp_path)  # the consumer applied a copy before the producer gave up
        return refuse(self, unsure)

    monkeypatch.setattr(producer.Producer, "_refuse", consumer_first)
    assert ok(ingest.post("/events", {"events": EVENTS}), 202) == {"accepted": 3, "rejected": []}
    drain(events_stream, tmp_path)
    assert applied() == (5, 1, 1)


def test_a_stream_never_reached_is_503_and_a_retry_puts_once(
    ingest: Api, events_stream: EventsStream, tmp_path: Path
) -> None:
    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://kinesis.us-east-1.amazonaws.com")

    runtime.kinesis().meta.events.register("before-call.kinesis.PutRecords", unreachable)
    assert_error(ingest.post("/events", {"events": EVENTS}), 503, "stream_unavailable")
    assert events_stream.records() == []  # "nothing was put" is true
    runtime.kinesis().meta.events.unregister("before-call.kinesis.PutRecords", unreachable)
    ok(ingest.post("/events", {"events": EVENTS}), 202)
    drain(events_stream, tmp_path)
    assert applied() == (5, 1, 1)


def test_when_refusals_cannot_be_written_a_keyed_retry_sends_the_same_ids_and_each_event_applies_once(
    ingest: Api, events_stream: EventsStream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost = LostAnswers(lambda call: True)

    def database_down(self: FirstCopyStore, *_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    claim = FirstCopyStore.claim
    monkeypatch.setattr(FirstCopyStore, "claim", database_down)
    key = {"Idempotency-Key": "unknown"}
    assert_error(ingest.post("/events", {"events": EVENTS}, headers=key), 503, "database_unavailable")
    assert copies(events_stream) >= 2  # whether they apply is unknown to the client, so it retries
    monkeypatch.setattr(FirstCopyStore, "claim", claim)
    lost.lose = lambda call: False
    assert ok(ingest.post("/events", {"events": EVENTS}, headers=key), 202) == {"accepted": 3, "rejected": []}
    origins = {json.loads(r["Data"])["origin"] for r in events_stream.records()}
    assert len(origins) == 1  # the retry's records carry the same ids as the first run's
    drain(events_stream, tmp_path)
    assert applied() == (5, 1, 1)


def test_a_keyed_request_run_again_after_its_events_were_refused_refuses_them_again(
    ingest: Api, events_stream: EventsStream, tmp_path: Path, dynamodb: Any
) -> None:
    """Its stored answer gone (it expired, or could not be saved), the same key and body are the same events: a
    refusal stands, and nothing is put."""
    lost = LostAnswers(lambda call: True)
    key = {"Idempotency-Key": "refused"}
    first = ok(ingest.post("/events", {"events": EVENTS}, headers=key), 202)
    assert first["accepted"] == 0
    for item in dynamodb.scan(TableName=TABLE)["Items"]:
        if item["pk"]["S"] == keys.IDEMPOTENCY_PARTITION:
            dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    lost.lose = lambda call: False
    put_before = lost.calls
    again = ingest.post("/events", {"events": EVENTS}, headers=key)
    assert ok(again, 202) == first and "Idempotent-Replayed" not in again.headers
    assert lost.calls == put_before
    drain(events_stream, tmp_path)
    assert applied() == (0, 0, 0)


@pytest.mark.real_dynamodb
@pytest.mark.parametrize(("keys_per_request", "units"), [(1, 5.0), (40, 20.0)])
def test_the_registry_costs_one_write_unit_per_block_and_shard_of_a_request(
    ingest: Api, events_stream: EventsStream, tmp_path: Path, keys_per_request: int, units: float
) -> None:
    """500 events of one request: of one key (one record, one shard: 5 blocks of 120 positions, 5 writes), or of 40
    keys over the 4 shards (each shard's batch holds positions of every block: 20 writes). DynamoDB Local's figures,
    which AWS's rules give too (each item under 1 KB, no transaction)."""
    consumed: list[float] = []

    def ask(params: dict[str, Any], **_: Any) -> None:
        if params["Key"]["pk"]["S"].startswith("ORIGIN#"):
            params["ReturnConsumedCapacity"] = "TOTAL"

    def record(parsed: dict[str, Any], **_: Any) -> None:
        if "ConsumedCapacity" in parsed:
            consumed.append(parsed["ConsumedCapacity"]["CapacityUnits"])

    events = [{"type": "metric", "key": f"k{n % keys_per_request}", "value": 1} for n in range(500)]
    ok(ingest.post("/events", {"events": events}), 202)
    hooks = runtime.dynamodb().meta.events
    hooks.register("provide-client-params.dynamodb.UpdateItem", ask)
    hooks.register("after-call.dynamodb.UpdateItem", record)
    drain(events_stream, tmp_path)
    shards = {r["ShardId"] for r in events_stream.records()}
    assert len(shards) == (1 if keys_per_request == 1 else 4)
    assert all(units_of_one == 1.0 for units_of_one in consumed) and sum(consumed) == units


def test_the_kinesis_client_makes_one_attempt_per_call(ingest: Api, events_stream: EventsStream) -> None:
    """botocore's own retries would send a record again unseen: the producer makes (and counts) every attempt."""
    sent: list[str] = []

    def lost(**_: Any) -> None:
        sent.append("PutRecords")
        raise ReadTimeoutError(endpoint_url="https://kinesis.us-east-1.amazonaws.com")

    runtime.kinesis().meta.events.register_first("before-send.kinesis.PutRecords", lost)
    with pytest.raises(ReadTimeoutError):
        runtime.kinesis().put_records(StreamName=events_stream.name, Records=[{"Data": b"x", "PartitionKey": "k"}])
    assert sent == ["PutRecords"]
