"""devtools.kinesis_poller: the dev server runs `on_kinesis_record` functions as Lambda's event source mapping does.

On moto's Kinesis (in-process), with a test app of its own and an injected clock (no sleeping).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice import Chalice
from chalice.app import KinesisEvent

from devtools.kinesis_poller import (
    Checkpoints,
    KinesisPoller,
    Registration,
    first_failure,
    lambda_record,
    registrations,
    retry_delay,
)

pytestmark = pytest.mark.pure  # no database: runs once

STREAM = "events"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Consumer:
    """A test app with one kinesis consumer; what it saw, and which records it refuses (by data)."""

    def __init__(self, batch_size: int = 3, window_s: int = 0) -> None:
        self.batches: list[list[bytes]] = []
        self.refuse: set[bytes] = set()  # reported as batch item failures
        self.explode = 0  # raise on the next `explode` invocations
        self.app = Chalice(app_name="poller-test")

        @self.app.on_kinesis_record(
            stream=STREAM,
            batch_size=batch_size,
            starting_position="TRIM_HORIZON",
            maximum_batching_window_in_seconds=window_s,
        )
        def consume(event: KinesisEvent) -> dict[str, Any]:
            records = list(event)
            self.batches.append([r.data for r in records])
            if self.explode:
                self.explode -= 1
                raise RuntimeError("boom")
            failed = [{"itemIdentifier": r.sequence_number} for r in records if r.data in self.refuse]
            return {"batchItemFailures": failed}

    def seen(self) -> list[bytes]:
        return [data for batch in self.batches for data in batch]


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("kinesis")
        client.create_stream(StreamName=STREAM, ShardCount=1)
        yield client


def put(client: Any, *datas: bytes, key: str = "k") -> None:
    client.put_records(StreamName=STREAM, Records=[{"Data": d, "PartitionKey": key} for d in datas])


def poller(consumer: Consumer, client: Any, tmp_path: Path, clock: Clock, **kwargs: Any) -> KinesisPoller:
    (registration,) = registrations(consumer.app)
    checkpoints = Checkpoints(tmp_path / "checkpoints.json")
    return KinesisPoller(registration, client, checkpoints, tmp_path / "dead-letters.jsonl", clock=clock, **kwargs)


def test_registrations_are_read_from_the_app() -> None:
    consumer = Consumer(batch_size=7, window_s=2)
    (registration,) = registrations(consumer.app)
    assert registration == Registration("consume", STREAM, 7, 2.0, "TRIM_HORIZON", consumer.app.handler_map["consume"])


def test_the_event_is_lambdas() -> None:
    arrival = dt.datetime(2026, 11, 24, 12, 0, 1, 500000, tzinfo=dt.UTC)
    record = {"SequenceNumber": "4960", "PartitionKey": "hit:/a", "Data": b"{}", "ApproximateArrivalTimestamp": arrival}
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/events"
    event = lambda_record(record, "shardId-000000000002", arn, "us-east-1")
    assert event["kinesis"] == {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": "hit:/a",
        "sequenceNumber": "4960",
        "data": base64.b64encode(b"{}").decode(),
        "approximateArrivalTimestamp": arrival.timestamp(),
    }
    assert event["eventID"] == "shardId-000000000002:4960"
    assert (event["eventSource"], event["eventName"], event["eventSourceARN"]) == (
        "aws:kinesis",
        "aws:kinesis:record",
        arn,
    )
    # Chalice reads it as it reads Lambda's.
    (parsed,) = list(KinesisEvent({"Records": [event]}, None))
    assert (parsed.data, parsed.sequence_number, parsed.partition_key) == (b"{}", "4960", "hit:/a")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, None),
        ({}, None),
        ({"batchItemFailures": []}, None),
        ({"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}, 1),  # the lowest
        ({"batchItemFailures": [{"itemIdentifier": "9"}]}, 0),  # not in the batch: all of it fails
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, 0),
        ({"batchItemFailures": [{"id": "2"}]}, 0),
    ],
)
def test_the_answer_is_read_as_lambda_reads_it(answer: Any, expected: int | None) -> None:
    assert first_failure(answer, ["1", "2", "3"]) == expected


def test_retries_back_off() -> None:
    assert [retry_delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert retry_delay(30) == 30.0


def test_batches_in_order_up_to_the_batch_size(kinesis: Any, tmp_path: Path) -> None:
    consumer, clock = Consumer(batch_size=3), Clock()
    put(kinesis, *[b"%d" % i for i in range(7)])
    reader = poller(consumer, kinesis, tmp_path, clock)
    for _ in range(4):
        reader.poll_once()
    assert consumer.batches == [[b"0", b"1", b"2"], [b"3", b"4", b"5"], [b"6"]]


def test_a_restart_resumes_from_the_checkpoint(kinesis: Any, tmp_path: Path) -> None:
    consumer, clock = Consumer(batch_size=10), Clock()
    put(kinesis, b"a", b"b")
    poller(consumer, kinesis, tmp_path, clock).poll_once()
    assert consumer.seen() == [b"a", b"b"]

    put(kinesis, b"c")
    again = Consumer(batch_size=10)
    poller(again, kinesis, tmp_path, clock).poll_once()  # a new process: the same checkpoint file
    assert again.seen() == [b"c"]
    saved = json.loads((tmp_path / "checkpoints.json").read_text())
    ((key, shards),) = saved.items()
    assert key.startswith("consume arn:aws:kinesis:")
    assert list(shards) == ["shardId-000000000000"]


def test_the_batching_window_waits_for_more(kinesis: Any, tmp_path: Path) -> None:
    consumer, clock = Consumer(batch_size=10, window_s=5), Clock()
    reader = poller(consumer, kinesis, tmp_path, clock)
    put(kinesis, b"a")
    reader.poll_once()
    assert consumer.batches == []  # within the window, the batch not full
    clock.now += 4
    put(kinesis, b"b")
    reader.poll_once()
    assert consumer.batches == []
    clock.now += 1
    reader.poll_once()
    assert consumer.batches == [[b"a", b"b"]]


def test_a_full_batch_does_not_wait_for_the_window(kinesis: Any, tmp_path: Path) -> None:
    consumer, clock = Consumer(batch_size=2, window_s=60), Clock()
    put(kinesis, b"a", b"b", b"c")
    poller(consumer, kinesis, tmp_path, clock).poll_once()
    assert consumer.batches == [[b"a", b"b"]]


def test_a_partial_failure_resumes_from_the_failed_record(kinesis: Any, tmp_path: Path) -> None:
    consumer, clock = Consumer(batch_size=10), Clock()
    consumer.refuse = {b"c"}
    put(kinesis, b"a", b"b", b"c", b"d")
    reader = poller(consumer, kinesis, tmp_path, clock)
    reader.poll_once()
    assert consumer.batches == [[b"a", b"b", b"c", b"d"]]
    reader.poll_once()
    assert len(consumer.batches) == 1  # backing off
    consumer.refuse = set()
    clock.now += retry_delay(1)
    reader.poll_once()
    assert consumer.batches[1] == [b"c", b"d"]  # from the failed one; a and b are done

    put(kinesis, b"e")
    restarted = Consumer(batch_size=10)
    poller(restarted, kinesis, tmp_path, clock).poll_once()
    assert restarted.seen() == [b"e"]


def test_an_exception_retries_the_whole_batch(kinesis: Any, tmp_path: Path) -> None:
    consumer, clock = Consumer(batch_size=10), Clock()
    consumer.explode = 1
    put(kinesis, b"a", b"b")
    reader = poller(consumer, kinesis, tmp_path, clock)
    reader.poll_once()
    clock.now += retry_delay(1)
    reader.poll_once()
    assert consumer.batches == [[b"a", b"b"], [b"a", b"b"]]
    assert not (tmp_path / "dead-letters.jsonl").exists()


def test_exhausted_retries_skip_the_batch_and_say_where_it_went(
    kinesis: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    consumer, clock = Consumer(batch_size=10), Clock()
    consumer.refuse = {b"poison"}
    put(kinesis, b"a", b"poison", b"b")
    reader = poller(consumer, kinesis, tmp_path, clock, max_retries=2)
    for _ in range(3):  # the first attempt and 2 retries
        reader.poll_once()
        clock.now += 60
    assert consumer.batches == [[b"a", b"poison", b"b"], [b"poison", b"b"], [b"poison", b"b"]]
    assert "gave up on 2 records" in caplog.text and str(tmp_path / "dead-letters.jsonl") in caplog.text

    (line,) = (tmp_path / "dead-letters.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["condition"] == "RetryAttemptsExhausted"
    assert entry["KinesisBatchInfo"]["batchSize"] == 2
    assert [base64.b64decode(r["kinesis"]["data"]) for r in entry["records"]] == [b"poison", b"b"]

    consumer.refuse = set()
    put(kinesis, b"c")
    reader.poll_once()
    assert consumer.batches[-1] == [b"c"]  # the shard goes on


def test_children_are_read_after_their_parents(kinesis: Any, tmp_path: Path) -> None:
    # moto keeps putting records on a closed parent (its hash range still matches), so the records go in before
    # the split; what is checked is the order of reading: the children only once the parent is read to its end.
    consumer, clock = Consumer(batch_size=2), Clock()
    put(kinesis, b"a", b"b", b"c")
    kinesis.split_shard(StreamName=STREAM, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127))
    reader = poller(consumer, kinesis, tmp_path, clock)
    reader.poll_once()
    parent, children = reader.shards["shardId-000000000000"], ["shardId-000000000001", "shardId-000000000002"]
    assert parent.closed and not parent.drained
    assert [reader.shards[c].parents for c in children] == [(parent.shard_id,), (parent.shard_id,)]
    assert all(reader.shards[c].iterator is None for c in children)  # never read while the parent has records
    for _ in range(3):
        reader.poll_once()
    assert consumer.seen() == [b"a", b"b", b"c"] and parent.drained
    assert all(reader.shards[c].iterator is not None for c in children)
    # A restart remembers that the parent is done.
    again = poller(Consumer(batch_size=2), kinesis, tmp_path, clock)
    again.refresh_shards()
    assert again.shards[parent.shard_id].drained and all(again.readable(again.shards[c]) for c in children)
