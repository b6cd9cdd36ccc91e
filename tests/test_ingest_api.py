"""POST /events: each event checked as its direct endpoint checks it, the valid ones put on the events stream (moto's
Kinesis, on both backends) as records that decode to the normalised events; whole-batch refusals; PutRecords'
failed entries retried; idempotency; metric event times against an injected clock."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.edge.contract import Error
from chalicelib.ingest import producer, records
from chalicelib.ingest.models import MAX_CLOCK_SKEW_MS, MAX_EVENT_AGE_MS, Accepted
from chalicelib.process import runtime
from chalicelib.pure import clock
from tests.conftest import Api, EventsStream, assert_error, ok

NOW_MS = 1_795_514_400_000  # 2026-11-24T10:00:00.000Z
NOW_ISO = "2026-11-24T10:00:00.000Z"


@pytest.fixture
def ingest(api: Api, events_stream: EventsStream) -> Iterator[Api]:
    """The API with the events stream (after `api`: the stream's endpoint wins over the stage's), at NOW_MS."""
    clock.set_source(lambda: NOW_MS / 1000)
    yield api
    clock.set_source(None)


def post(api: Api, events: Any, headers: dict[str, str] | None = None) -> Any:
    return api.post("/events", {"events": events}, headers=headers)


def accepted(response: Any) -> dict[str, Any]:
    """A 202 that is the declared answer (Accepted)."""
    body: dict[str, Any] = ok(response, 202)
    Accepted.model_validate_json(response.body)
    return body


# --- a valid batch ---------------------------------------------------------------------------------------


def test_a_valid_batch_is_put_as_records_that_decode_to_the_normalised_events(
    ingest: Api, events_stream: EventsStream
) -> None:
    ok(ingest.put("/averages/w", {"size": 3}))
    batch = [
        {"type": "value", "stream": "s", "value": 2.5, "user": "ann"},
        {"type": "hit", "path": "/api/a//b?x=1"},
        {"type": "metric", "key": "m", "value": 2.5},
        {"type": "average", "key": "w", "value": 4},
        {"type": "metric", "key": "m", "value": -2.5, "time": "2026-11-24T11:59:30+02:00"},
        {"type": "value", "stream": "s", "value": -1e-20},
        {"type": "hit", "path": "/api"},
        {"type": "metric", "key": "m", "value": 10**15},
    ]
    assert accepted(post(ingest, batch)) == {"accepted": 8, "rejected": []}

    expected: list[records.Event] = [
        records.ValueEvent(stream="s", value=2.5, time_ms=NOW_MS, user="ann"),
        records.HitEvent(path="/api/a/b/", time_ms=NOW_MS),
        records.MetricEvent(key="m", value=3, time_ms=NOW_MS),
        records.AverageEvent(key="w", value=4.0),
        records.MetricEvent(key="m", value=-3, time_ms=NOW_MS - 30_000),
        records.ValueEvent(stream="s", value=-1e-20, time_ms=NOW_MS),
        records.HitEvent(path="/api/", time_ms=NOW_MS),
        records.MetricEvent(key="m", value=10**15, time_ms=NOW_MS),
    ]
    on_stream = events_stream.records()
    # One record per key (the batch is far below a record's size), each key's events in request order.
    by_key = {record["PartitionKey"]: records.decode(record["Data"]).events for record in on_stream}
    assert len(on_stream) == len(by_key) == 5
    for key, events in by_key.items():
        assert events == [e for e in expected if records.partition_key(e) == key]
    assert sorted(map(repr, events_stream.events())) == sorted(map(repr, expected))
    rounded = by_key["metric:m"][0]
    assert isinstance(rounded, records.MetricEvent) and isinstance(rounded.value, int)


def test_the_events_of_many_keys_spread_over_the_shards(ingest: Api, events_stream: EventsStream) -> None:
    accepted(post(ingest, [{"type": "hit", "path": f"/api/p{n}"} for n in range(200)]))
    shards = {record["ShardId"] for record in events_stream.records()}
    assert len(shards) == len(events_stream.shard_ids()) == 4
    assert len(events_stream.events()) == 200


# --- per-event rejections ----------------------------------------------------------------------------------

VALID = {"type": "hit", "path": "/api/ok"}
INVALID: list[tuple[Any, str, str]] = [
    ("not an object", "invalid_input", "events[{i}]"),
    ({"path": "/api/a"}, "invalid_input", "events[{i}].type"),
    ({"type": "click", "path": "/api/a"}, "invalid_input", "events[{i}].type"),
    ({"type": "value", "stream": "s", "value": "1"}, "invalid_input", "events[{i}].value"),
    ({"type": "value", "stream": "no spaces", "value": 1}, "invalid_input", "events[{i}].stream"),
    ({"type": "value", "stream": "s", "value": 1e-60}, "invalid_input", "events[{i}].value"),
    ({"type": "value", "stream": "s", "value": 1e51}, "invalid_input", "events[{i}].value"),
    ({"type": "value", "stream": "s", "value": 1, "user": "a\nb"}, "invalid_input", "events[{i}].user"),
    ({"type": "value", "stream": "s", "value": True}, "invalid_input", "events[{i}].value"),
    ({"type": "hit", "path": "/stats"}, "invalid_input", "events[{i}].path"),
    ({"type": "hit", "path": "/apix"}, "invalid_input", "events[{i}].path"),
    ({"type": "hit", "path": "/api/" + "x" * 1100}, "path_too_long", "events[{i}].path"),
    ({"type": "hit", "path": "/api/a", "colour": "red"}, "invalid_input", "events[{i}].colour"),
    ({"type": "metric", "key": "a/b", "value": 1}, "invalid_input", "events[{i}].key"),
    ({"type": "metric", "key": "m", "value": 10**15 + 1}, "invalid_input", "events[{i}].value"),
    ({"type": "metric", "key": "m", "value": 1, "time": "2026-11-24T10:00:00"}, "invalid_input", "events[{i}].time"),
    ({"type": "metric", "key": "m", "value": 1, "time": "yesterday"}, "invalid_input", "events[{i}].time"),
    ({"type": "metric", "key": "m", "value": 1, "time": "2026-11-20T10:00:00Z"}, "event_too_old", "events[{i}].time"),
    ({"type": "metric", "key": "m", "value": 1, "time": "2026-11-24T11:00:00Z"}, "event_in_future", "events[{i}].time"),
    ({"type": "average", "key": "missing", "value": 1}, "window_not_found", "events[{i}].key"),
    ({"type": "average", "key": "w", "value": "1"}, "invalid_input", "events[{i}].value"),
]


def test_invalid_events_are_rejected_by_index_and_the_valid_ones_are_put(
    ingest: Api, events_stream: EventsStream
) -> None:
    ok(ingest.put("/averages/w", {"size": 3}))
    batch: list[Any] = []
    wanted: list[tuple[int, str, str]] = []
    for event, code, field in INVALID:
        batch.append(VALID)
        wanted.append((len(batch), code, field.format(i=len(batch))))
        batch.append(event)
    body = accepted(post(ingest, batch))
    assert body["accepted"] == len(INVALID)
    got = [(r["index"], r["error"]["code"], r["error"]["field"]) for r in body["rejected"]]
    assert got == wanted
    for rejection in body["rejected"]:
        message = rejection["error"]["message"]
        assert message and rejection["error"]["field"] in message and "Traceback" not in message
    assert events_stream.events() == [records.HitEvent("/api/ok/", NOW_MS)] * len(INVALID)


def test_an_average_event_is_rejected_as_its_direct_endpoint_answers(ingest: Api, events_stream: EventsStream) -> None:
    direct = assert_error(ingest.post("/averages/nowhere", {"value": 1}), 404)
    body = accepted(post(ingest, [{"type": "average", "key": "nowhere", "value": 1}]))
    assert body["rejected"][0]["error"]["code"] == direct["code"] == "window_not_found"
    ok(ingest.put("/averages/nowhere", {"size": 2}))
    assert accepted(post(ingest, [{"type": "average", "key": "nowhere", "value": 1}])) == {
        "accepted": 1,
        "rejected": [],
    }


def test_a_batch_with_every_event_rejected_is_202_with_none_accepted_and_puts_nothing(
    ingest: Api, events_stream: EventsStream
) -> None:
    body = accepted(post(ingest, [{"type": "hit"}, {"type": "metric", "key": "m"}]))
    assert body["accepted"] == 0 and [r["index"] for r in body["rejected"]] == [0, 1]
    assert events_stream.records() == []


# --- whole-batch refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,status,code,field",
    [
        ([{"type": "hit", "path": "/api/a"}], 400, "invalid_json", None),
        ({}, 400, "invalid_input", "events"),
        ({"events": {"type": "hit", "path": "/api/a"}}, 400, "invalid_input", "events"),
        ({"events": []}, 400, "invalid_input", "events"),
        ({"events": [{"type": "hit", "path": "/api/a"}] * 501}, 400, "invalid_input", "events"),
        ({"events": [{"type": "hit", "path": "/api/a"}], "more": 1}, 400, "invalid_input", "more"),
        ({"events": [{"type": "hit", "path": "/api/" + "a" * 1000}] * 300}, 413, "body_too_large", None),
    ],
    ids=["array", "no-events", "not-a-list", "empty", "501-events", "unknown-key", "over-256-KiB"],
)
def test_a_malformed_or_oversized_batch_is_refused_whole(
    ingest: Api, events_stream: EventsStream, body: Any, status: int, code: str, field: str | None
) -> None:
    error = assert_error(ingest.post("/events", body), status, code)
    assert error.get("field") == field
    Error.model_validate(json.loads(json.dumps({"error": error})))
    assert events_stream.records() == []


def test_500_events_are_taken_and_501_refused(ingest: Api, events_stream: EventsStream) -> None:
    event = {"type": "metric", "key": "m", "value": 1}
    assert_error(post(ingest, [event] * 501), 400, "invalid_input")
    assert accepted(post(ingest, [event] * 500)) == {"accepted": 500, "rejected": []}
    assert events_stream.events() == [records.MetricEvent("m", 1, NOW_MS)] * 500


def test_a_body_up_to_the_limit_is_taken(ingest: Api, events_stream: EventsStream) -> None:
    from chalicelib.edge import web

    # 220 hits of 1,019-byte paths: about 238 KB, under the 256 KiB limit (the 413 case above is 300 of them).
    batch = [{"type": "hit", "path": f"/api/{n:03d}" + "a" * 1010} for n in range(220)]
    assert len(json.dumps({"events": batch})) < web.MAX_BODY_BYTES
    assert accepted(post(ingest, batch))["accepted"] == 220
    assert len(events_stream.events()) == 220


# --- PutRecords failures ----------------------------------------------------------------------------------------


class FailingEntries:
    """Botocore hooks on the app's Kinesis client: PutRecords entries `fails(call, index)` picks are not put and
    come back failed (ErrorCode), as Kinesis answers when a shard is over its throughput; the others are put."""

    def __init__(self, client: Any, fails: Callable[[int, int], bool]) -> None:
        self.fails = fails
        self.sent: list[int] = []  # entries per call
        events = client.meta.events
        events.register("provide-client-params.kinesis.PutRecords", self._drop)
        events.register("before-call.kinesis.PutRecords", self._none_left)
        events.register("after-call.kinesis.PutRecords", self._splice)

    def _drop(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        call = len(self.sent)
        self.sent.append(len(params["Records"]))
        failing = {i for i in range(len(params["Records"])) if self.fails(call, i)}
        context["failing"], context["entries"] = failing, len(params["Records"])
        kept = [entry for i, entry in enumerate(params["Records"]) if i not in failing]
        params["Records"] = kept or params["Records"][:1]  # PutRecords takes at least one (not sent: see below)

    def _none_left(self, context: dict[str, Any], **_: Any) -> Any:
        if len(context["failing"]) == context["entries"]:
            return _Answered(), {"FailedRecordCount": 0, "Records": []}
        return None

    def _splice(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        put = iter(parsed["Records"])
        failed = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}
        parsed["Records"] = [dict(failed) if i in context["failing"] else next(put) for i in range(context["entries"])]
        parsed["FailedRecordCount"] = len(context["failing"])


class _Answered:
    status_code = 200


def test_failed_entries_are_retried_alone_until_put(ingest: Api, events_stream: EventsStream) -> None:
    # Three keys, so three records; the first call fails two of them, the second one of those.
    injected = FailingEntries(runtime.kinesis(), lambda call, index: (call, index) in {(0, 0), (0, 2), (1, 1)})
    batch = [{"type": "metric", "key": key, "value": n} for n, key in enumerate("abcabc")]
    assert accepted(post(ingest, batch)) == {"accepted": 6, "rejected": []}
    assert injected.sent == [3, 2, 1]
    on_stream = events_stream.records()
    assert sorted(record["PartitionKey"] for record in on_stream) == ["metric:a", "metric:b", "metric:c"]
    assert sorted(map(repr, events_stream.events())) == sorted(
        repr(records.MetricEvent(key, n, NOW_MS)) for n, key in enumerate("abcabc")
    )


def test_events_whose_records_keep_failing_are_rejected_by_index_and_the_rest_put(
    ingest: Api, events_stream: EventsStream
) -> None:
    FailingEntries(runtime.kinesis(), lambda call, index: index == 0)  # key a's record, on every call
    batch = [
        {"type": "metric", "key": "a", "value": 1},
        {"type": "metric", "key": "b", "value": 2},
        {"type": "hit"},
        {"type": "metric", "key": "a", "value": 3},
    ]
    response = post(ingest, batch)
    answer = accepted(response)
    assert answer["accepted"] == 1
    assert [(r["index"], r["error"]["code"], r["error"].get("field")) for r in answer["rejected"]] == [
        (0, "stream_unavailable", "events[0]"),
        (2, "invalid_input", "events[2].path"),
        (3, "stream_unavailable", "events[3]"),
    ]
    assert response.headers["Retry-After"] == str(producer.RETRY_AFTER_S)
    # Only key b's record is on the stream: sending events 0 and 3 again puts each of them once.
    assert [record["PartitionKey"] for record in events_stream.records()] == ["metric:b"]


def test_a_partly_refused_request_retried_with_its_key_puts_nothing_twice(
    ingest: Api, events_stream: EventsStream
) -> None:
    refusing = {"now": True}
    FailingEntries(runtime.kinesis(), lambda call, index: refusing["now"] and index == 0)  # key a's record
    batch = [{"type": "metric", "key": "a", "value": 1}, {"type": "metric", "key": "b", "value": 2}]
    key = {"Idempotency-Key": "partly"}
    first = post(ingest, batch, headers=key)
    refusing["now"] = False
    again = post(ingest, batch, headers=key)
    assert accepted(first) == accepted(again)
    assert [r["index"] for r in accepted(first)["rejected"]] == [0] and accepted(first)["accepted"] == 1
    assert again.headers.get("Idempotent-Replayed") == "true" and again.headers["Retry-After"] == "1"
    # The answer said which to send again; sent in a new request, each event is on the stream once.
    assert accepted(post(ingest, [batch[0]])) == {"accepted": 1, "rejected": []}
    assert sorted(map(repr, events_stream.events())) == sorted(
        repr(records.MetricEvent(k, v, NOW_MS)) for k, v in (("a", 1), ("b", 2))
    )


def test_a_stream_that_takes_none_of_the_records_is_503_and_puts_nothing(
    ingest: Api, events_stream: EventsStream
) -> None:
    FailingEntries(runtime.kinesis(), lambda call, index: True)
    response = post(ingest, [{"type": "metric", "key": "a", "value": 1}, {"type": "metric", "key": "b", "value": 2}])
    assert_error(response, 503, "stream_unavailable")
    assert response.headers["Retry-After"] == str(producer.RETRY_AFTER_S)
    assert events_stream.records() == []


def test_a_stream_that_is_not_there_is_503_not_500(ingest: Api, events_stream: EventsStream) -> None:
    events_stream.client.delete_stream(StreamName=events_stream.name)
    response = post(ingest, [VALID])
    assert_error(response, 503, "stream_unavailable")
    assert "Retry-After" in response.headers


# --- idempotency -------------------------------------------------------------------------------------------------


def test_a_retried_request_with_the_same_key_is_put_once(ingest: Api, events_stream: EventsStream) -> None:
    batch = [VALID, {"type": "hit"}, {"type": "metric", "key": "m", "value": 1}]
    key = {"Idempotency-Key": "batch-1"}
    first = post(ingest, batch, headers=key)
    again = post(ingest, batch, headers=key)
    assert accepted(first) == accepted(again) == {"accepted": 2, "rejected": json.loads(first.body)["rejected"]}
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    assert len(events_stream.events()) == 2
    assert_error(post(ingest, [VALID], headers=key), 422, "idempotency_key_reused")
    assert len(events_stream.events()) == 2
    accepted(post(ingest, batch, headers={"Idempotency-Key": "batch-2"}))
    assert len(events_stream.events()) == 4


def test_a_request_refused_for_an_unavailable_stream_can_be_retried_with_its_key(
    ingest: Api, events_stream: EventsStream
) -> None:
    refusing = {"now": True}
    FailingEntries(runtime.kinesis(), lambda call, index: refusing["now"])
    key = {"Idempotency-Key": "batch-3"}
    assert_error(post(ingest, [VALID], headers=key), 503, "stream_unavailable")
    refusing["now"] = False
    assert accepted(post(ingest, [VALID], headers=key))["accepted"] == 1
    assert events_stream.events() == [records.HitEvent("/api/ok/", NOW_MS)]


# --- metric event time -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset_ms,code",
    [
        (-MAX_EVENT_AGE_MS, "event_too_old"),
        (-MAX_EVENT_AGE_MS + 1, None),
        (0, None),
        (MAX_CLOCK_SKEW_MS, None),
        (MAX_CLOCK_SKEW_MS + 1, "event_in_future"),
    ],
)
def test_a_metric_time_counts_within_the_longest_window_and_the_clock_skew(
    ingest: Api, events_stream: EventsStream, offset_ms: int, code: str | None
) -> None:
    at = clock.iso(NOW_MS + offset_ms)
    body = accepted(post(ingest, [{"type": "metric", "key": "m", "value": 1, "time": at}]))
    if code is None:
        assert body == {"accepted": 1, "rejected": []}
        assert events_stream.events() == [records.MetricEvent("m", 1, NOW_MS + offset_ms)]
    else:
        assert [r["error"]["code"] for r in body["rejected"]] == [code]
        assert events_stream.records() == []


def test_the_rules_follow_the_injected_clock(ingest: Api, events_stream: EventsStream) -> None:
    event = {"type": "metric", "key": "m", "value": 1, "time": NOW_ISO}
    clock.set_source(lambda: (NOW_MS + MAX_EVENT_AGE_MS) / 1000)
    assert accepted(post(ingest, [event]))["rejected"][0]["error"]["code"] == "event_too_old"
    clock.set_source(lambda: (NOW_MS - MAX_CLOCK_SKEW_MS - 1) / 1000)
    assert accepted(post(ingest, [event]))["rejected"][0]["error"]["code"] == "event_in_future"
    clock.set_source(lambda: (NOW_MS - 5) / 1000)
    hit = {"type": "hit", "path": "/api/t"}
    assert accepted(post(ingest, [event, hit]))["accepted"] == 2
    assert sorted(map(repr, events_stream.events())) == sorted(
        [repr(records.MetricEvent("m", 1, NOW_MS)), repr(records.HitEvent("/api/t/", NOW_MS - 5))]
    )


# --- packing (pure) ----------------------------------------------------------------------------------------------


@pytest.mark.pure
def test_events_are_grouped_by_key_in_request_order_and_packed_into_few_records() -> None:
    b_events = [records.MetricEvent("b", n, n) for n in range(0, 30, 3)]
    a_events = [records.MetricEvent("a", n, n) for n in range(30) if n % 3]
    events = sorted([*a_events, *b_events], key=lambda e: e.time_ms)
    ids = [records.EventId("origin", 2 * n + 1) for n in range(len(events))]  # e.g. every other event was valid
    packed = producer.pack(events, ids)
    assert [r.partition_key for r in packed] == ["metric:b", "metric:a"]
    assert [records.decode(r.data).events for r in packed] == [b_events, a_events]
    # Each record names its events' positions, so that a refused record's events can be answered by index, and
    # carries their ids.
    assert [[events[p] for p in r.positions] for r in packed] == [b_events, a_events]
    assert all(records.decode(r.data).ids == [ids[p] for p in r.positions] for r in packed)
    # A small record limit: the same events, in order, in more records, each within the limit and as full as allowed.
    limit = 260
    small = producer.pack(events, ids, max_record_bytes=limit)
    assert all(r.size <= limit for r in small) and len(small) > 2
    assert [e for r in small for e in records.decode(r.data).events] == [*b_events, *a_events]
    assert all([events[p] for p in r.positions] == records.decode(r.data).events for r in small)
    for first, second in itertools.pairwise(small):
        if first.partition_key == second.partition_key:
            grown = [*first.positions, second.positions[0]]
            data = records.encode([events[p] for p in grown], [ids[p] for p in grown])
            assert len(data) + len(first.partition_key) > limit


@pytest.mark.pure
def test_calls_hold_at_most_500_records_and_5_mib() -> None:
    many = [producer.Record(f"k{n}", b"x") for n in range(1201)]
    assert [len(c) for c in producer.calls(many)] == [500, 500, 201]
    big = [producer.Record("k", b"x" * ((1 << 20) - 10)) for _ in range(12)]
    sized = producer.calls(big)
    assert all(sum(r.size for r in c) <= producer.MAX_CALL_BYTES for c in sized)
    assert [r for c in sized for r in c] == big and len(sized) == 3


@pytest.mark.pure
def test_a_partition_key_too_long_for_kinesis_is_hashed_but_stays_per_key() -> None:
    long_path = "/api/" + "x" * 1000 + "/"
    key = records.partition_key(records.HitEvent(long_path, 0))
    assert len(key.encode()) <= records.MAX_PARTITION_KEY_BYTES and key.startswith("hit:")
    assert key == records.partition_key(records.HitEvent(long_path, 5))
    assert key != records.partition_key(records.HitEvent(long_path + "y/", 0))
    assert records.partition_key(records.HitEvent("/api/a/", 0)) == "hit:/api/a/"
