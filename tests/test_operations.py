"""What operators see: request ids, the access line, logs under threads, health, and database failures."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.process import request_context, runtime, settings
from chalicelib.process.observability import logger
from tests.conftest import TABLE, Api, Environment, assert_error

CLOSED_PORT = "http://127.0.0.1:9"  # discard: nothing listens on loopback


class RecordingStream:
    """Stands in for stdout: keeps every write() call as it was made."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in "".join(self.writes).splitlines()]


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingStream]:
    """The logger's stream and stdout (where Lambda's log lines go), recorded."""
    stream = RecordingStream()
    handler = logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def access_lines(stream: RecordingStream) -> list[dict[str, Any]]:
    return [r for r in stream.records() if r.get("message") == "request"]


# --- request ids and the access line ---------------------------------------------------


def test_every_response_carries_its_own_request_id(api: Api) -> None:
    responses = [
        api.post("/streams/ids/values", {"value": 1}),  # a view's answer
        api.post("/streams/ids/values", {"value": "x"}),  # a ServiceError, shaped by middleware
        api.get("/no/such/thing"),  # the fallback route
        api.request("POST", "/streams/ids/values", "{}", headers={"Content-Type": "text/plain"}),  # Chalice's 415
        api.get("/health"),
    ]
    assert [r.status_code for r in responses] == [200, 400, 404, 415, 200]
    ids = [r.headers["X-Request-Id"] for r in responses]
    assert len(set(ids)) == len(ids)
    for request_id in ids:
        uuid.UUID(request_id)  # locally a uuid4 (API Gateway's id in AWS)


def test_one_access_line_per_request_with_the_cause_of_an_error_once(api: Api, log_stream: RecordingStream) -> None:
    ok = api.post("/streams/access/values", {"value": 2})
    bad = api.post("/streams/access/values", {"value": "two"})
    lines = access_lines(log_stream)
    assert len(lines) == 2
    first, second = lines
    assert first["request_id"] == ok.headers["X-Request-Id"]
    assert (first["method"], first["path"], first["route"], first["status"]) == (
        "POST",
        "/streams/access/values",
        "/streams/{stream}/values",
        200,
    )
    assert isinstance(first["latency_ms"], (int, float)) and first["level"] == "INFO"
    assert "error" not in first
    assert second["request_id"] == bad.headers["X-Request-Id"] and second["status"] == 400
    cause = assert_error(bad, 400, "invalid_input")
    assert second["error"] == cause and second["level"] == "INFO"
    # The cause is logged once: on the access line, by no other line of that request.
    of_bad = [r for r in log_stream.records() if r.get("request_id") == second["request_id"]]
    assert [r for r in of_bad if cause["message"] in json.dumps(r)] == [second]


@pytest.mark.heavy
def test_log_lines_stay_whole_and_keep_their_own_request_under_threads(api: Api, log_stream: RecordingStream) -> None:
    from chalice.local import LambdaContext

    from app import app
    from devtools.scheduler import scheduled_event, utcnow

    stop = threading.Event()
    compactions = 0

    def scheduler() -> None:  # as devtools/scheduler.py runs scheduled functions: in its own thread
        nonlocal compactions
        while not stop.is_set():
            app.handler_map["compact_sums"](
                scheduled_event("compact_sums", utcnow()), LambdaContext("compact_sums", 128)
            )
            compactions += 1

    def client(worker: int) -> list[tuple[str, str, int]]:
        sent = []
        for n in range(30):
            path = f"/streams/w{worker}-{n}/values"
            value: Any = n if n % 5 else "not a number"  # some 400s too
            response = api.post(path, {"value": value})
            sent.append((response.headers["X-Request-Id"], path, response.status_code))
        return sent

    background = threading.Thread(target=scheduler)
    background.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            sent = [request for batch in pool.map(client, range(8)) for request in batch]
    finally:
        stop.set()
        background.join()

    # One write per whole line: nothing another thread writes can land inside a line.
    assert all(w.endswith("\n") and w.count("\n") == 1 for w in log_stream.writes)
    records = log_stream.records()  # every line parses as one JSON object
    assert compactions > 0 and any("_aws" in r for r in records)  # EMF lines among them
    by_request: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if "request_id" in record:
            by_request.setdefault(record["request_id"], []).append(record)
    assert len(sent) == 240 and len({request_id for request_id, _, _ in sent}) == 240
    for request_id, path, status in sent:
        lines = by_request.pop(request_id)
        access = [r for r in lines if r["message"] == "request"]
        assert len(access) == 1 and access[0]["path"] == path and access[0]["status"] == status
        assert all(r.get("function_name") != "compact_sums" for r in lines)
    # What is left is the scheduler's: its own ids and keys, none of a request's.
    assert by_request and all(
        r["function_name"] == "compact_sums" and r["message"] != "request" for rs in by_request.values() for r in rs
    )


# --- health -------------------------------------------------------------------------


def test_health_checks_the_table_and_is_never_cached(api: Api, dynamodb: Any) -> None:
    response = api.get("/health")
    assert response.status_code == 200 and json.loads(response.body) == {"status": "ok", "database": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    dynamodb.delete_table(TableName=TABLE)
    missing = api.get("/health")
    error = assert_error(missing, 503, "database_unavailable")
    assert TABLE in error["message"] and "does not exist" in error["message"]
    assert missing.headers["Cache-Control"] == "no-store"


def test_health_says_when_the_database_is_unreachable(api: Api, env: Environment) -> None:
    env.set("DDB_ENDPOINT_URL", CLOSED_PORT)
    runtime.reset()
    response = api.get("/health")
    assert_error(response, 503, "database_unavailable")
    assert response.headers["Cache-Control"] == "no-store" and int(response.headers["Retry-After"]) > 0


# --- database failures ------------------------------------------------------------------


def test_a_dead_database_is_a_503_logged_at_warning_with_its_cause(
    api: Api, env: Environment, log_stream: RecordingStream
) -> None:
    # An explicit endpoint is not one moto intercepts: on both backends this reaches a closed port.
    env.set("DDB_ENDPOINT_URL", CLOSED_PORT)
    runtime.reset()
    for response in (api.post("/streams/dead/values", {"value": 1}), api.get("/streams/dead")):
        assert_error(response, 503, "database_unavailable")
        assert int(response.headers["Retry-After"]) > 0
    records = log_stream.records()
    causes = [r for r in records if r.get("message") == "database unavailable"]
    assert len(causes) == 2
    assert all(
        r["level"] == "WARNING" and r["cause"] == "EndpointConnectionError" and r["endpoint"].startswith(CLOSED_PORT)
        for r in causes
    )
    assert not [r for r in records if r.get("level") == "ERROR" or "exception" in r]


def test_no_database_call_starts_after_the_budget_is_spent(dynamodb: Any) -> None:
    with request_context.budget(0), pytest.raises(request_context.BudgetSpent):
        dynamodb.describe_table(TableName=TABLE)
    dynamodb.describe_table(TableName=TABLE)  # outside the budget: allowed again


def test_a_spent_budget_stops_every_route_with_a_503_and_stores_nothing(
    api: Api, env: Environment, dynamodb: Any
) -> None:
    env.set("REQUEST_BUDGET_S", "0.000001")
    for response in (
        api.post("/streams/spent/values", {"value": 1}),
        api.post("/metric/spent", {"value": 1}),
        api.post("/survey/responses", {}),
        api.get("/stats/"),  # parallel reads on a pool run in the request's context too
    ):
        assert_error(response, 503, "database_unavailable")
        assert int(response.headers["Retry-After"]) > 0
    assert dynamodb.scan(TableName=TABLE)["Items"] == []


def test_the_default_limits_answer_well_before_api_gateway_gives_up() -> None:
    defaults = settings.Settings()
    # The worst wait: the budget, then one attempt in flight (connect + read) or one back-off.
    assert (
        defaults.worst_case_s == defaults.request_budget_s + defaults.db_connect_timeout_s + defaults.db_read_timeout_s
    )
    assert defaults.worst_case_s <= settings.GATEWAY_TIMEOUT_S - settings.ANSWER_MARGIN_S
    # One call's own retries are bounded too: the budget is what ends them, not the attempts.
    one_call = defaults.db_max_attempts * (defaults.db_connect_timeout_s + defaults.db_read_timeout_s)
    assert one_call > defaults.request_budget_s


def test_limits_that_could_outlast_api_gateway_are_refused(env: Environment) -> None:
    env.set("REQUEST_BUDGET_S", "20")
    env.set("DB_READ_TIMEOUT_S", "10")
    with pytest.raises(ValueError, match="29 s"):
        settings.get()


@pytest.mark.real_dynamodb
def test_a_stalled_database_answers_503_in_time_and_leaves_nothing_partial(
    api: Api, env: Environment, log_stream: RecordingStream
) -> None:
    from chalicelib.storage.table import ensure_table
    from devtools.ddblocal import DynamoDBLocal, dynamodb_client
    from tests.test_survey_summary import recomputed, stored_counters

    with DynamoDBLocal() as database:  # its own: the session's database is not stalled
        client = dynamodb_client(database.endpoint_url)
        ensure_table(client, TABLE)
        env.set("DDB_ENDPOINT_URL", database.endpoint_url)
        env.set("ADMIN_TOKEN", "stall-test-admin-token-0123456789")
        runtime.reset()
        for value in (1, 2, 3):
            assert api.post("/streams/stall/values", {"value": value}).status_code == 200
        assert api.post("/metric/stall", {"value": 5}).status_code == 200
        created = json.loads(api.post("/survey/responses", {"name": "Ann"}).body)
        token = {"X-Response-Token": created["token"]}

        env.set("REQUEST_BUDGET_S", "1")
        env.set("DB_CONNECT_TIMEOUT_S", "0.5")
        env.set("DB_READ_TIMEOUT_S", "0.5")
        env.set("DB_MAX_ATTEMPTS", "2")
        runtime.reset()
        os.killpg(database._proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            stalled = [
                api.post("/streams/stall/values", {"value": 4}),
                api.post("/metric/stall", {"value": 7}),
                api.request("PATCH", f"/survey/responses/{created['id']}", {"age": 40, "gender": "female"}, token),
                api.get("/streams/stall"),
            ]
        finally:
            os.killpg(database._proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        for response in stalled:
            assert_error(response, 503, "database_unavailable")
            assert int(response.headers["Retry-After"]) > 0
        assert {r["cause"] for r in log_stream.records() if r.get("message") == "database unavailable"} <= {
            "ReadTimeoutError",
            "ConnectTimeoutError",
            "BudgetSpent",
        }

        # A stalled request may still be applied when the database wakes (it had received it), but each of
        # these writes is one transaction: all of it or none of it.
        def state() -> tuple[Any, ...]:
            snapshot = json.loads(api.get("/streams/stall").body)
            audit = json.loads(api.get("/streams/stall/values?limit=100").body)["values"]
            total = json.loads(api.get("/metric/stall/sum").body)["value"]
            events = [i for i in client.scan(TableName=TABLE)["Items"] if i["pk"]["S"].startswith("SUMEV#stall#")]
            return snapshot["count"], len(audit), total, sorted(int(i["v"]["N"]) for i in events)

        env.set("REQUEST_BUDGET_S", "15")
        runtime.reset()
        previous = None
        for _ in range(20):  # until what the woken database had queued has landed
            current = state()
            if current == previous:
                break
            previous = current
            time.sleep(0.2)
        count, audited, total, events = current
        assert count == audited and count in (3, 4)
        assert total == sum(events) and events in ([5], [5, 7])
        assert stored_counters(client) == recomputed(client)


# --- tracing ------------------------------------------------------------------------------------------------------


class RecordingProvider:
    """Stands in for the X-Ray provider: keeps the subsegments opened and their annotations."""

    def __init__(self) -> None:
        self.subsegments: list[tuple[str, dict[str, Any]]] = []

    def in_subsegment(self, name: str) -> Any:
        import contextlib

        annotations: dict[str, Any] = {}
        self.subsegments.append((name, annotations))

        class Subsegment:
            def put_annotation(self, key: str, value: Any) -> None:
                annotations[key] = value

        return contextlib.nullcontext(Subsegment())


def test_tracing_is_off_unless_the_stage_turns_it_on(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.process import observability

    def no_tracer() -> Any:
        raise AssertionError("the tracer (and the X-Ray SDK) must not be loaded where tracing is off")

    monkeypatch.setattr(observability, "tracer", no_tracer)
    assert api.get("/health").status_code == 200


def test_where_tracing_is_on_each_request_is_a_subsegment_named_after_its_route(
    api: Api, env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.process import observability

    env.set("TRACING", "true")
    provider = RecordingProvider()
    monkeypatch.setattr(observability, "tracer", lambda: type("T", (), {"provider": provider})())
    assert api.get("/streams/s").status_code == 200
    assert provider.subsegments == [("## /streams/{stream}", {"route": "/streams/{stream}"})]


def test_the_real_tracer_serves_requests_outside_lambda(api: Api, env: Environment) -> None:
    """Outside Lambda, Powertools turns its tracer off; a traced stage's requests still work."""
    from chalicelib.process import observability

    env.set("TRACING", "true")
    assert api.get("/streams/s").status_code == 200
    assert observability.tracer() is observability.tracer()
