"""The events stream stalls under load: `make run`'s server (kinesalite, DynamoDB Local, the poller and the consumer)
as a subprocess, kinesalite stopped (SIGSTOP) for a few seconds while concurrent clients POST /events, then resumed
(SIGCONT) and drained. PutRecords calls in flight lose their answers, and kinesalite stores their records when it
resumes: copies on the stream. Every event acknowledged (accepted) is applied exactly once, and every event refused
never: the stream counts, the sums and the hit counts equal what the answers acknowledged."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools.ddblocal import PROJECT_DIR, find_jar, free_port, java_available
from devtools.kinesis_local import find_kinesalite, kinesis_client, node_available
from tests.test_devserver import START_TIMEOUT_S, Server

pytestmark = pytest.mark.skipif(
    not (node_available() and java_available() and find_kinesalite(PROJECT_DIR) and find_jar(PROJECT_DIR)),
    reason="needs Node, Java and npm ci (kinesalite, DynamoDB Local)",
)

STALL_S = 6.0
CLIENTS = 10  # half of them send an Idempotency-Key (and retry a 5xx with it), half do not
EVENTS_PER_REQUEST = 30  # 10 of each type, on the client's own keys
DRAIN_TIMEOUT_S = 90.0
# Short limits, so that a few seconds of stall make a put attempt lose its answer, then another, then the request
# give up: each attempt needs connect + read + 1 s of the budget (chalicelib/ingest/producer.py), so a request
# makes up to 3 attempts (at 0, 2 and 4 s) and refuses what is still unsure after about 6 s.
SERVER_LIMITS = {"DB_CONNECT_TIMEOUT_S": "1", "DB_READ_TIMEOUT_S": "2", "REQUEST_BUDGET_S": "8"}


@dataclass
class Ledger:
    """What the clients were told, per key: events acknowledged; and how the answers went."""

    acknowledged: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def events_of(client: int) -> list[dict[str, Any]]:
    return [
        event
        for _ in range(EVENTS_PER_REQUEST // 3)
        for event in (
            {"type": "value", "stream": f"c{client}", "value": 1.0},
            {"type": "metric", "key": f"c{client}", "value": 5},
            {"type": "hit", "path": f"/api/c{client}"},
        )
    ]


def key_of(event: dict[str, Any]) -> str:
    return f"{event['type']} {event.get('stream') or event.get('key') or event['path']}"


def post(port: int, events: list[dict[str, Any]], idempotency_key: str | None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        conn.request("POST", "/events", json.dumps({"events": events}), headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def send(port: int, client: int, ledger: Ledger, until: float) -> None:
    """From the client's turn in the stall (they start spread over it), a fresh batch after each answer while the
    stall lasts, with the events refused so far; then the refused ones again (a new request each time, as the answer
    asks) until every one is acknowledged."""
    time.sleep(client * STALL_S / CLIENTS)
    pending: list[dict[str, Any]] = []
    deadline = until + 60
    while time.monotonic() < until or pending:
        assert time.monotonic() < deadline, f"client {client} still holds {len(pending)} refused events"
        batch = pending + (events_of(client) if time.monotonic() < until else [])
        refused = answer(port, batch, str(uuid.uuid4()) if client % 2 == 0 else None, ledger)
        with ledger.lock:
            ledger.acknowledged.update(key_of(e) for i, e in enumerate(batch) if i not in refused)
        pending = [e for i, e in enumerate(batch) if i in refused]
        if pending and time.monotonic() >= until:
            time.sleep(1)  # Retry-After


def answer(port: int, batch: list[dict[str, Any]], idempotency_key: str | None, ledger: Ledger) -> set[int]:
    """POST the batch; the indexes of its events refused. A keyed request whose outcome is unknown (a 5xx other
    than stream_unavailable) is sent again with its key, which sends the same ids."""
    status, body = post(port, batch, idempotency_key)
    while status >= 500 and idempotency_key is not None and body["error"]["code"] != "stream_unavailable":
        status, body = post(port, batch, idempotency_key)
    with ledger.lock:
        ledger.answers[f"{status} {body['error']['code']}" if status >= 400 else f"{status}"] += 1
    if status == 503 and body["error"]["code"] == "stream_unavailable":
        return set(range(len(batch)))  # nothing was put
    assert status == 202, body
    assert all(r["error"]["code"] == "stream_unavailable" for r in body["rejected"]), body
    with ledger.lock:
        ledger.answers["events refused"] += len(body["rejected"])
    return {r["index"] for r in body["rejected"]}


def drained(kinesis: Any, stream: str, checkpoints: Path) -> bool:
    """Whether the consumer's checkpoints have reached the last record of every shard."""
    try:
        done = next(iter(json.loads(checkpoints.read_text()).values()))
    except (FileNotFoundError, StopIteration, ValueError):
        return False
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        last = shard_tip(kinesis, stream, shard["ShardId"], done.get(shard["ShardId"], {}).get("sequence"))
        if last is not None:
            return False
    return True


def shard_tip(kinesis: Any, stream: str, shard_id: str, after: str | None) -> str | None:
    """The sequence number of a record after `after` in the shard, if any."""
    position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after} if after else {}
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, **(position or {"ShardIteratorType": "TRIM_HORIZON"})
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"]
    return str(records[0]["SequenceNumber"]) if records else None


def copies_on_stream(kinesis: Any, stream: str) -> int:
    """Records whose events another record also holds (same origin and positions): the stream's duplicates."""
    seen: Counter[tuple[str, tuple[int, ...]]] = Counter()
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            for record in page["Records"]:
                data = json.loads(record["Data"])
                seen[(data["origin"], tuple(data["positions"]))] += 1
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return sum(n - 1 for n in seen.values())


def applied(port: int, clients: int) -> Counter[str]:
    """What the service holds for each key: a stream's count, a sum / 5, a path's count."""
    found: Counter[str] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:

        def get(path: str) -> Any:
            conn.request("GET", path)
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 200, body
            return body

        for client in range(clients):
            found[f"value c{client}"] = get(f"/streams/c{client}")["count"]
            found[f"metric c{client}"] = get(f"/metric/c{client}/sum")["value"] // 5
        for entry in get("/stats?limit=100")["paths"]:
            found[f"hit {entry['path'].rstrip('/')}"] = entry["count"]
    finally:
        conn.close()
    return +found


def test_a_stalled_stream_applies_each_acknowledged_event_once_and_no_refused_one(tmp_path: Path, backend: str) -> None:
    if backend != "moto":
        pytest.skip("backend-independent (the dev server starts its own database): runs in the moto pass only")
    port = free_port()
    drop = ("DATA_DIR", "DDB_ENDPOINT_URL", "KINESIS_ENDPOINT_URL", "TABLE_NAME", "PYTHONPATH", "ADMIN_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("AWS_", "LIVESTATS_"))}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1", DATA_DIR=str(tmp_path / "data"), **SERVER_LIMITS)
    server = Server([sys.executable, "-m", "devtools.devserver"], PROJECT_DIR, env, port)
    try:
        server.wait_healthy(START_TIMEOUT_S)
        found = server.wait_for(r"kinesalite at (http://127\.0\.0\.1:\d+) \(pid (\d+)\)", 5)
        kinesis, kinesalite_pid = kinesis_client(found.group(1), timeout_s=10), int(found.group(2))
        stream = server.wait_for(r"polls stream '([^']+)'", 5).group(1)

        ledger = Ledger()
        os.kill(kinesalite_pid, signal.SIGSTOP)
        try:
            until = time.monotonic() + STALL_S
            clients = [threading.Thread(target=send, args=(port, c, ledger, until)) for c in range(CLIENTS)]
            for thread in clients:
                thread.start()
            time.sleep(STALL_S)
        finally:
            os.kill(kinesalite_pid, signal.SIGCONT)
        for thread in clients:
            thread.join(120)
            assert not thread.is_alive()

        checkpoints = tmp_path / "data" / "kinesis-checkpoints.json"
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not drained(kinesis, stream, checkpoints):
            assert time.monotonic() < deadline, f"not drained in {DRAIN_TIMEOUT_S:.0f} s:\n{server.text()[-3000:]}"
            time.sleep(0.5)

        assert applied(port, CLIENTS) == +ledger.acknowledged, ledger.answers
        # The stall did what it is for: answers were lost, so the stream holds copies, and the consumer dropped them.
        assert copies_on_stream(kinesis, stream) > 0, ledger.answers
        dropped = sum(int(n) for n in re.findall(r'"message":"copies of events[^\n]*"dropped":(\d+)', server.text()))
        assert dropped > 0, ledger.answers
    finally:
        server.kill()
