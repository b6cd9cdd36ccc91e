"""The events stream's consumer on hand-built Kinesis events: aggregation, exactly once under redelivery, partial
batch responses, poison records, equal results direct vs streamed, and concurrent direct writers.

The events are built here (chalice.test's helper gives every record one sequence number, which markers reject).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import random
import statistics
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import pytest

from chalicelib.averages.store import AverageStore
from chalicelib.hits import days, streamed
from chalicelib.hits.store import HitStore, Totals
from chalicelib.ingest import applied, dedupe, records
from chalicelib.ingest.records import AverageEvent, Event, EventId, HitEvent, MetricEvent, ValueEvent
from chalicelib.ingest.store import FirstCopyStore
from chalicelib.metrics.store import SumStore
from chalicelib.process import observability, runtime
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.streams.store import StreamStore
from tests.conftest import TABLE, Environment, item_size

SHARD = "shardId-000000000000"
NOW_MS = clock.now_ms()
DAY, _ = days.counting_day(NOW_MS / 1000)


def seq(n: int) -> str:
    """The n-th record's sequence number (Kinesis-like: long decimal strings, increasing)."""
    return str(49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898 + 1000 * n)


def kinesis_record(n: int, data: bytes, partition_key: str = "pk", shard: str = SHARD) -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": seq(n),
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": NOW_MS / 1000,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{seq(n)}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/livestats-events",
    }


def kinesis_event(batch: Sequence[tuple[int, list[Event]]], shard: str = SHARD) -> dict[str, Any]:
    return {
        "Records": [
            kinesis_record(n, records.encode(events), records.partition_key(events[0]), shard) for n, events in batch
        ]
    }


def consume(client: Any, batch: Sequence[tuple[int, list[Event]]], shard: str = SHARD) -> list[str]:
    """Deliver the batch to the app's consumer; the sequence numbers it asks back."""
    payload = client.lambda_.invoke("apply_events", kinesis_event(batch, shard)).payload
    return [failure["itemIdentifier"] for failure in payload["batchItemFailures"]]


def hits(path: str, n: int) -> list[Event]:
    return [HitEvent(path, NOW_MS) for _ in range(n)]


def values(stream: str, xs: Sequence[float], user: str | None = "ana") -> list[Event]:
    return [ValueEvent(stream, x, NOW_MS + i, user) for i, x in enumerate(xs)]


def averages(key: str, xs: Sequence[float]) -> list[Event]:
    return [AverageEvent(key, x) for x in xs]


def hit_store() -> HitStore:
    return HitStore(runtime.dynamodb(), TABLE)


def stream_store() -> StreamStore:
    return StreamStore(runtime.dynamodb(), TABLE)


def average_store() -> AverageStore:
    return AverageStore(runtime.dynamodb(), TABLE)


@contextlib.contextmanager
def calls(client: Any) -> Iterator[Counter[str]]:
    """The DynamoDB operations called meanwhile, counted by name (and TransactWriteItems' actions by kind)."""
    seen: Counter[str] = Counter()

    def hook(model: Any, params: dict[str, Any], **_: Any) -> None:
        seen[model.name] += 1
        for action in params.get("TransactItems", []):
            seen.update(f"{model.name}.{kind}" for kind in action)

    client.meta.events.register("before-parameter-build.dynamodb", hook)
    try:
        yield seen
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", hook)


def mixed_batch(first: int, last: int) -> list[tuple[int, list[Event]]]:
    """Records first..last: hits, stream values and averages, 3 events each, values depending on n."""
    kinds = (
        lambda n: hits("/api/mixed/", 3),
        lambda n: values("mixed", [n, n + 0.5, -n]),
        lambda n: averages("mixed", [n, n + 1, n + 2]),
    )
    return [(n, kinds[n % 3](n)) for n in range(first, last + 1)]


def mixed_state() -> tuple[int, Any, list[float] | None, Any]:
    figures = stream_store().snapshot("mixed")
    window = average_store().get("mixed")
    return (
        hit_store().count(keys.HIT_ALL, "/api/mixed/"),
        (figures.moments.count, figures.moments.sum, figures.moments.min, figures.moments.max),
        None if window is None else list(window.get_elements()),
        hit_store().totals(keys.HIT_ALL),
    )


# --- aggregation ---------------------------------------------------------------------------------------------------


def test_a_thousand_hits_on_one_path_cost_one_counter_update_per_scope(client: Any, dynamodb: Any) -> None:
    batch = [(n, hits("/api/hot/", 100)) for n in range(10)]
    with calls(runtime.dynamodb()) as seen:
        assert consume(client, batch) == []
    writes = {name: k for name, k in seen.items() if not name.startswith(("Get", "BatchGet", "Query"))}
    # No transaction: one increment of the path's counter (both scopes), one of the shard's totals per scope (all
    # time, the day), and the path's two ranking entries (its first change this minute).
    assert writes == {"UpdateItem": 3, "PutItem": 2}
    store = hit_store()
    assert store.count(keys.HIT_ALL, "/api/hot/") == store.count(DAY, "/api/hot/") == 1000
    for scope in (keys.HIT_ALL, DAY):
        totals = store.totals(scope)
        assert (totals.total_hits, totals.distinct_paths) == (1000, 1)


def test_a_batch_of_stream_values_is_one_transaction_with_its_audit_entry(client: Any, dynamodb: Any) -> None:
    xs = [random.Random(3).uniform(-50, 50) for _ in range(600)]
    batch = [(n, values("s", xs[n * 100 : n * 100 + 100], user=f"u{n}")) for n in range(6)]
    with calls(runtime.dynamodb()) as seen:
        assert consume(client, batch) == []
    # The shard, the audit entry and (the stream's first write this minute by this writer) its registry entry.
    assert seen["TransactWriteItems"] == 1 and seen["TransactWriteItems.Put"] == 3
    figures = stream_store().snapshot("s")
    assert figures.moments.count == 600
    assert math.isclose(figures.moments.mean, statistics.fmean(xs), rel_tol=1e-9)
    assert math.isclose(figures.moments.variance or 0, statistics.pvariance(xs), rel_tol=1e-9)
    audit = stream_store().list_values("s", 1000, None).items
    assert [(e.value, e.user, e.at) for e in audit] == [
        (x, f"u{i // 100}", NOW_MS + i % 100) for i, x in reversed(list(enumerate(xs)))
    ]


def test_a_batch_of_averages_is_one_append_in_order(client: Any, dynamodb: Any) -> None:
    average_store().set_size("w", 5)
    with calls(runtime.dynamodb()) as seen:
        assert consume(client, [(0, averages("w", [1, 2, 3])), (1, averages("w", [4, 5, 6, 7]))]) == []
    assert seen["UpdateItem"] == 1
    window = average_store().get("w")
    assert window is not None and list(window.get_elements()) == [3, 4, 5, 6, 7]


def test_averages_past_the_cap_rewrite_the_window_and_keep_the_rule(client: Any, dynamodb: Any) -> None:
    average_store().set_size("w", 2)  # cap 2 + 32
    xs = [float(i) for i in range(100)]
    batches = [[(n, averages("w", xs[n * 10 : n * 10 + 10]))] for n in range(10)]
    for batch in batches:
        assert consume(client, batch) == []
    for batch in batches:  # redelivered: nothing changes
        assert consume(client, batch) == []
    window = average_store().get("w")
    assert window is not None and list(window.get_elements()) == [98, 99]
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "AVERAGE#w"}, "sk": {"S": "WINDOW"}})["Item"]
    assert len(item["elements"]["L"]) < 34 + 10


# --- exactly once --------------------------------------------------------------------------------------------------


def test_the_same_batch_redelivered_applies_once(client: Any, dynamodb: Any) -> None:
    average_store().set_size("mixed", 50)
    batch = mixed_batch(0, 14)
    assert consume(client, batch) == []
    once = mixed_state()
    assert once[0] == 15  # 5 hit records of 3
    assert consume(client, batch) == []
    assert mixed_state() == once


def test_overlapping_and_bisected_batches_apply_each_record_once(client: Any, dynamodb: Any) -> None:
    average_store().set_size("mixed", 50)
    assert consume(client, mixed_batch(0, 14)) == []
    expected = mixed_state()
    dynamodb_reset(dynamodb)
    average_store().set_size("mixed", 50)
    # First half applied, then a retry from the middle overlapping it, then the bisected halves again.
    for first, last in ((0, 7), (4, 14), (0, 3), (8, 14), (0, 14)):
        assert consume(client, mixed_batch(first, last)) == []
    assert mixed_state() == expected


def dynamodb_reset(dynamodb: Any) -> None:
    """Delete every item (the table itself stays)."""
    for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})


def test_a_reset_keeps_what_was_applied_and_a_later_batch_counts_in_the_new_session(client: Any, dynamodb: Any) -> None:
    first = [(0, values("r", [1, 2, 3]))]
    assert consume(client, first) == []
    stream_store().reset("r", "admin", NOW_MS)
    assert consume(client, first) == []  # redelivered after the reset: already applied
    assert stream_store().snapshot("r").moments.count == 0
    assert consume(client, [*first, (1, values("r", [10, 20]))]) == []
    figures = stream_store().snapshot("r")
    assert (figures.session, figures.moments.count, figures.moments.sum) == (2, 2, 30)


def test_two_kinesis_shards_keep_their_own_markers(client: Any, dynamodb: Any) -> None:
    batch = [(0, hits("/api/two/", 2)), (1, hits("/api/two/", 3))]
    assert consume(client, batch, shard="shardId-000000000001") == []
    assert consume(client, batch, shard="shardId-000000000002") == []  # same numbers, another shard: new records
    assert consume(client, batch, shard="shardId-000000000001") == []
    assert hit_store().count(keys.HIT_ALL, "/api/two/") == 10


# --- failures --------------------------------------------------------------------------------------------------------


def test_a_failing_path_brings_back_every_hit_record_of_the_batch_and_the_retry_completes_it(
    client: Any, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's hits are one group (their totals are written once per batch): when one path fails after others were
    counted, every record holding hits comes back, and the retry counts each hit once, totals included."""
    # Record 1 holds no hit: it is not brought back.
    batch = [
        (n, hits("/api/bad/" if n in (4, 7) else "/api/good/", 10) if n != 1 else values("v", [1.0])) for n in range(10)
    ]
    counts = streamed._count_path

    def flaky(store: HitStore, shard_id: str, runs: list[streamed.Run], minute: int) -> streamed.Counted:
        if runs[0].path == "/api/bad/":
            raise RuntimeError("the database is not answering")
        return counts(store, shard_id, runs, minute)

    monkeypatch.setattr(streamed, "_count_path", flaky)
    assert consume(client, batch) == [seq(n) for n in range(10) if n != 1]
    assert hit_store().count(keys.HIT_ALL, "/api/good/") == 70  # counted before the failure...
    assert hit_store().totals(keys.HIT_ALL).total_hits == 0  # ...but the batch's totals wait for the whole batch
    monkeypatch.setattr(streamed, "_count_path", counts)
    # Lambda resends from the lowest failed record: every hit record again; each hit counts once.
    assert consume(client, batch) == []
    store = hit_store()
    assert (store.count(keys.HIT_ALL, "/api/good/"), store.count(keys.HIT_ALL, "/api/bad/")) == (70, 20)
    for scope in (keys.HIT_ALL, DAY):
        assert store.totals(scope) == Totals(total_hits=90, distinct_paths=2)


@pytest.fixture
def dead_letters(backend: str, dynamodb: Any, env: Environment) -> Iterator[Any]:
    """A (moto) dead-letter queue set in the settings; yields a function reading its messages."""
    from moto import mock_aws

    # On DynamoDB Local, only SQS is mocked: every other AWS endpoint is the closed port conftest sets.
    with mock_aws() if backend == "ddblocal" else contextlib.nullcontext():
        if backend == "ddblocal":
            env.unset("AWS_ENDPOINT_URL")
            runtime.reset()  # a botocore session made before moto was imported lacks its hook
        sqs = runtime.sqs()
        url = sqs.create_queue(QueueName="livestats-events-dlq")["QueueUrl"]
        env.set("DEAD_LETTER_QUEUE_URL", url)

        def read() -> list[dict[str, Any]]:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            return [json.loads(m["Body"]) for m in messages]

        yield read


def test_poison_records_go_to_the_dead_letter_queue_and_the_rest_applies(client: Any, dead_letters: Any) -> None:
    poison = b'{"events": [{"type": "hit"}]}'
    event = kinesis_event([(0, hits("/api/p/", 2)), (2, averages("no-such-window", [1.0]))])
    event["Records"].insert(1, kinesis_record(1, poison))
    assert client.lambda_.invoke("apply_events", event).payload == {"batchItemFailures": []}
    assert hit_store().count(keys.HIT_ALL, "/api/p/") == 2
    letters = sorted(dead_letters(), key=lambda m: m["sequence_number"])
    assert [(m["shard_id"], m["sequence_number"]) for m in letters] == [(SHARD, seq(1)), (SHARD, seq(2))]
    assert base64.b64decode(letters[0]["data"]) == poison and "not an events record" in letters[0]["reason"]
    assert "no moving-average window" in letters[1]["reason"]


def test_without_a_dead_letter_queue_a_poison_record_is_logged_and_skipped(
    client: Any, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors: list[dict[str, Any]] = []
    monkeypatch.setattr(observability.logger, "error", lambda message, extra: errors.append(extra))
    event = kinesis_event([(1, hits("/api/p/", 1))])
    event["Records"].insert(0, kinesis_record(0, b"\xff not json"))
    assert client.lambda_.invoke("apply_events", event).payload == {"batchItemFailures": []}
    assert hit_store().count(keys.HIT_ALL, "/api/p/") == 1
    assert [(line["sequence_number"], line["data"]) for line in errors] == [
        (seq(0), base64.b64encode(b"\xff not json").decode())
    ]


def test_metric_events_go_to_the_sums_applier_with_the_arrival_time(
    client: Any, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[tuple[list[Event], int]] = []

    def record(self: SumStore, delivered: Sequence[records.Delivered], now_ms: int) -> None:
        received.append(([d.event for d in delivered], now_ms))

    monkeypatch.setattr(SumStore, "apply_delivered", record)
    clock.set_source(lambda: NOW_MS / 1000 + 5)
    metric: list[Event] = [MetricEvent("m", 3, NOW_MS), MetricEvent("m", 4, NOW_MS - 1000)]
    assert consume(client, [(0, metric)]) == []
    assert received == [(metric, NOW_MS + 5000)]


# --- equal results, concurrency --------------------------------------------------------------------------------------


@pytest.mark.heavy
def test_direct_and_streamed_events_give_identical_results(client: Any, dynamodb: Any) -> None:
    rng = random.Random(11)
    xs = [rng.uniform(-1e3, 1e3) + 1e6 for _ in range(200)]
    paths = [f"/api/p{rng.randrange(20)}/" for _ in range(200)]
    for i, x in enumerate(xs):
        stream_store().add_values("direct", [x], "ana", f"id{i}", NOW_MS, clock.iso(NOW_MS))
    day, expires = days.counting_day(NOW_MS / 1000)
    for path in paths:
        hit_store().record(path.replace("/api/", "/api/d"), day, expires)
    average_store().set_size("direct", 16)
    average_store().set_size("streamed", 16)
    for x in xs:
        average_store().append("direct", x)
    direct_totals = hit_store().totals(keys.HIT_ALL)

    batch: list[tuple[int, list[Event]]] = []
    for n in range(20):
        batch.append((3 * n, values("streamed", xs[10 * n : 10 * n + 10])))
        batch.append((3 * n + 1, [HitEvent(path, NOW_MS) for path in paths[10 * n : 10 * n + 10]]))
        batch.append((3 * n + 2, averages("streamed", xs[10 * n : 10 * n + 10])))
    assert consume(client, batch) == []

    direct, streamed = stream_store().snapshot("direct").moments, stream_store().snapshot("streamed").moments
    assert (streamed.count, streamed.min, streamed.max) == (direct.count, direct.min, direct.max)
    for figure in ("mean", "variance", "sum"):
        assert math.isclose(getattr(streamed, figure), getattr(direct, figure), rel_tol=1e-9)
    for path in set(paths):
        direct_path = path.replace("/api/", "/api/d")
        assert hit_store().count(keys.HIT_ALL, path) == hit_store().count(keys.HIT_ALL, direct_path)
        assert hit_store().count(day, path) == hit_store().count(day, direct_path)
    both = hit_store().totals(keys.HIT_ALL)
    assert (both.total_hits, both.distinct_paths) == (2 * direct_totals.total_hits, 2 * direct_totals.distinct_paths)
    direct_window, streamed_window = average_store().get("direct"), average_store().get("streamed")
    assert direct_window is not None and streamed_window is not None
    assert list(streamed_window.get_elements()) == list(direct_window.get_elements())


def test_the_consumer_and_direct_writers_at_once_lose_nothing(client: Any, dynamodb: Any) -> None:
    day, expires = days.counting_day(NOW_MS / 1000)
    stop = threading.Event()
    written = Counter[str]()

    def direct_writer(worker: int) -> None:
        hits_store, streams = hit_store(), stream_store()
        while not stop.is_set():
            hits_store.record("/api/shared/", day, expires)
            request_id = f"w{worker}.{written[str(worker)]}"
            streams.add_values("shared", [float(worker)], None, request_id, NOW_MS, clock.iso(NOW_MS))
            written[str(worker)] += 1

    threads = [threading.Thread(target=direct_writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(0, 40, 4):
            batch = [(n + i, [*hits("/api/shared/", 5)]) for i in range(2)]
            batch += [(n + 2 + i, values("shared", [100.0] * 5)) for i in range(2)]
            assert consume(client, batch) == []
            assert consume(client, batch[1:]) == []  # and a retry from its middle
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    direct = sum(written.values())
    assert hit_store().count(keys.HIT_ALL, "/api/shared/") == direct + 100
    assert hit_store().totals(keys.HIT_ALL).total_hits == direct + 100
    assert stream_store().snapshot("shared").moments.count == direct + 100


# --- copies of events: the registry of first copies ------------------------------------------------------------------

PARENT, CHILD = "shardId-000000000000", "shardId-000000000004"


def identified_event(batch: Sequence[tuple[int, list[Event], list[EventId]]], shard: str = SHARD) -> dict[str, Any]:
    """A Lambda event of records carrying their events' ids (as POST /events puts them)."""
    return {
        "Records": [
            kinesis_record(n, records.encode(events, ids), records.partition_key(events[0]), shard)
            for n, events, ids in batch
        ]
    }


def consume_identified(client: Any, batch: Sequence[tuple[int, list[Event], list[EventId]]], shard: str) -> list[str]:
    payload = client.lambda_.invoke("apply_events", identified_event(batch, shard)).payload
    return [failure["itemIdentifier"] for failure in payload["batchItemFailures"]]


def ids_of(origin: str, positions: Sequence[int]) -> list[EventId]:
    return [EventId(origin, p) for p in positions]


def sums_of(key: str) -> int:
    return SumStore(runtime.dynamodb(), TABLE).sum(key, NOW_MS, 3_600_000)


def test_copies_of_a_record_apply_once_in_one_batch_across_shards_and_redelivered(client: Any, dynamodb: Any) -> None:
    metric: list[Event] = [MetricEvent("copied", 5, NOW_MS)]
    hit = hits("/api/copied/", 2)
    record = [(0, metric, ids_of("o1", [0])), (1, hit, ids_of("o1", [1, 2]))]
    again = [(2, metric, ids_of("o1", [0])), (3, hit, ids_of("o1", [1, 2]))]  # the producer's retry: new numbers
    assert consume_identified(client, [*record, *again], PARENT) == []
    assert consume_identified(client, record, PARENT) == []  # redelivered
    assert consume_identified(client, again, CHILD) == []  # a third copy, on a child shard after a reshard
    assert consume_identified(client, [*record, *again][1:3], PARENT) == []  # a bisected retry
    assert sums_of("copied") == 5
    assert hit_store().count(keys.HIT_ALL, "/api/copied/") == hit_store().totals(keys.HIT_ALL).total_hits == 2


def test_a_keyed_retry_packed_otherwise_applies_the_events_it_adds_and_nothing_twice(
    client: Any, dynamodb: Any
) -> None:
    # The first run of a request put positions 0-2; its retry (same key: same origin) also holds position 3, an
    # average whose window was created in between.
    first = [(0, values("v", [1, 2, 3]), ids_of("o2", [0, 1, 2]))]
    retry = [(1, values("v", [1, 2, 3, 4]), ids_of("o2", [0, 1, 2, 3]))]
    assert consume_identified(client, first, PARENT) == []
    assert consume_identified(client, retry, PARENT) == []
    moments = stream_store().snapshot("v").moments
    assert (moments.count, moments.sum) == (4, 10)


def test_an_event_the_producer_refused_is_never_applied(client: Any, dynamodb: Any) -> None:
    store = FirstCopyStore(runtime.dynamodb(), TABLE)
    store.claim(("o3", 0), dedupe.refusals(ids_of("o3", [1]))[("o3", 0)])
    batch = [(0, hits("/api/refused/", 3), ids_of("o3", [0, 1, 2]))]
    assert consume_identified(client, batch, PARENT) == []
    assert consume_identified(client, batch, CHILD) == []
    assert hit_store().count(keys.HIT_ALL, "/api/refused/") == 2


def test_records_whose_events_cannot_be_claimed_come_back_with_every_later_one(
    client: Any, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim = FirstCopyStore.claim

    def failing(self: FirstCopyStore, block: dedupe.Block, slots: Any) -> dict[str, bytes]:
        if block[0] == "bad":
            raise RuntimeError("the database is not answering")
        return claim(self, block, slots)

    batch = [
        (0, hits("/api/cut/", 1), ids_of("good", [0])),
        (1, hits("/api/cut/", 1), ids_of("bad", [0])),
        (2, hits("/api/cut/", 1), ids_of("good", [1])),
    ]
    monkeypatch.setattr(FirstCopyStore, "claim", failing)
    assert consume_identified(client, batch, PARENT) == [seq(1), seq(2)]
    assert hit_store().count(keys.HIT_ALL, "/api/cut/") == 1  # record 2's hit waits: the marker must not pass 1
    monkeypatch.setattr(FirstCopyStore, "claim", claim)
    assert consume_identified(client, batch[1:], PARENT) == []
    assert hit_store().count(keys.HIT_ALL, "/api/cut/") == 3


def test_a_hit_counter_stays_under_1_kb_through_any_number_of_reshards(client: Any, dynamodb: Any) -> None:
    """Each reshard moves the path's records to a new shard (numbered after every earlier one); a marker of a
    closed shard goes once it is older than the mapping's maximum record age."""
    start = NOW_MS / 1000
    for n in range(40):
        clock.set_source(partial(float, start + n * 25 * 60))  # a reshard every 25 minutes
        batch = [(n, hits("/api/resharded/", 1), ids_of(f"r{n}", [0]))]
        assert consume_identified(client, batch, f"shardId-{n:012d}") == []
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": keys.hit_pk("/api/resharded/")}, "sk": {"S": "COUNT"}})[
        "Item"
    ]
    markers = applied.marker_attrs(item)
    # The current shard's, and those written within the hour (25 and 50 minutes ago); the 37 before are gone.
    assert sorted(markers) == [applied.marker_attr(f"shardId-{n:012d}") for n in (37, 38, 39)]
    assert item_size(item) < 1024
    assert hit_store().count(keys.HIT_ALL, "/api/resharded/") == 40


def test_markers_of_the_older_form_still_skip_what_they_applied_and_are_rewritten(client: Any, dynamodb: Any) -> None:
    """Items written before markers were compact hold 128 zero-padded digits: a blind append (averages) and a read
    first (a hit counter's increment) both skip the records at or below them."""
    average_store().set_size("old", 10)
    consume(client, [(0, hits("/api/old/", 1))])
    legacy = {"S": seq(1).zfill(128)}
    for key in (
        {"pk": {"S": "AVERAGE#old"}, "sk": {"S": "WINDOW"}},
        {"pk": {"S": keys.hit_pk("/api/old/")}, "sk": {"S": "COUNT"}},
    ):
        dynamodb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET #m = :m",
            ExpressionAttributeNames={"#m": applied.marker_attr(SHARD)},
            ExpressionAttributeValues={":m": legacy},
        )
    assert consume(client, [(n, averages("old", [n])) for n in range(3)]) == []
    assert consume(client, [(n, hits("/api/old/", 1)) for n in range(3)]) == []
    window = average_store().get("old")
    assert window is not None and list(window.get_elements()) == [2]
    assert hit_store().count(keys.HIT_ALL, "/api/old/") == 2
    for key in (
        {"pk": {"S": "AVERAGE#old"}, "sk": {"S": "WINDOW"}},
        {"pk": {"S": keys.hit_pk("/api/old/")}, "sk": {"S": "COUNT"}},
    ):
        stored = dynamodb.get_item(TableName=TABLE, Key=key)["Item"][applied.marker_attr(SHARD)]["S"]
        assert stored.startswith(records.sequence_marker(seq(2)) + "@")
