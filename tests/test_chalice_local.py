"""Plain `chalice local`: the `local` stage next to a running `make run` serves every route on its data, and alone
it answers 503s that say what to start. Each server is a subprocess in a fresh copy of the repository, as in
tests/test_devserver.py; both tests are backend-independent (the dev server starts its own database)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.ddblocal import free_port
from tests.test_devserver import ONCE_PER_RUN, REPO_DIR, START_TIMEOUT_S, Server, copy_project, state_home

# The project's own chalice, as `.venv/bin/chalice local --stage local` in a terminal.
CHALICE = str(Path(sys.executable).parent / "chalice")
START_MAKE_RUN = "Start `make run` first"


@pytest.fixture
def project(tmp_path: Path, backend: str) -> Path:
    if backend != "moto":
        pytest.skip(ONCE_PER_RUN)
    copy = copy_project(tmp_path / "livestats")
    (copy / "node_modules").symlink_to(REPO_DIR / "node_modules", target_is_directory=True)
    return copy


def _environment(tmp_path: Path, port: int) -> dict[str, str]:
    """The developer's shell, without what the tests set (no AWS region or keys: the local stage brings its own)."""
    drop = ("DATA_DIR", "DDB_ENDPOINT_URL", "KINESIS_ENDPOINT_URL", "TABLE_NAME", "PYTHONPATH", "ADMIN_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("AWS_", "LIVESTATS_"))}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1", XDG_STATE_HOME=str(state_home(tmp_path)))
    return env


@pytest.fixture
def start(project: Path, tmp_path: Path) -> Iterator[Callable[[list[str]], Server]]:
    """Start a server in the copy (the dev server, or chalice local on the port it is given); all stopped after."""
    started: list[Server] = []

    def run(command: list[str]) -> Server:
        port = free_port()
        argv = [*command, "--port", str(port)] if command[0] == CHALICE else command
        server = Server(argv, project, _environment(tmp_path, port), port)
        started.append(server)
        return server

    yield run
    for server in reversed(started):
        server.kill()


def chalice_local(start: Callable[[list[str]], Server]) -> Server:
    server = start([CHALICE, "local", "--stage", "local"])
    server.wait_for(rf"Serving on http://127\.0\.0\.1:{server.port}", START_TIMEOUT_S)
    return server


def headers_of(server: Server, method: str, path: str) -> dict[str, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        response.read()
        return {name.lower(): value for name, value in response.getheaders()}
    finally:
        conn.close()


def request(
    server: Server, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, the JSON body or the raw one) of one request."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sent = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, None if body is None else json.dumps(body), {**sent, **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        is_json = (response.getheader("Content-Type") or "").startswith("application/json")
        return response.status, json.loads(raw) if is_json else raw
    finally:
        conn.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ok(answer: tuple[int, Any], status: int = 200) -> Any:
    assert answer[0] == status, answer
    return answer[1]


def eventually(read: Callable[[], Any], wanted: Callable[[Any], bool], timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if wanted(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_the_local_stage_serves_every_route_on_make_runs_data(start: Callable[[list[str]], Server]) -> None:
    dev = start([sys.executable, "-m", "devtools.devserver"])
    dev.wait_for(r"`chalice local --stage local` serves the same data", START_TIMEOUT_S)
    admin_token = dev.wait_for(r"Admin token: (\S+)", 1).group(1)
    local = chalice_local(start)

    # /health, the contract and the pages
    assert ok(request(local, "GET", "/health")) == {"status": "ok", "database": "ok"}
    assert "/api/{path}" in ok(request(local, "GET", "/openapi.json"))["paths"]
    for page in ("/", "/ui/hits", "/ui/metrics", "/survey", "/dashboard", "/docs"):
        assert b"<html" in ok(request(local, "GET", page)).lower(), page

    # running statistics: written through one server, read through the other
    ok(request(local, "POST", "/streams/s/values", {"values": [1, 2, 4]}))
    assert ok(request(dev, "GET", "/streams/s"))["count"] == 3
    ok(request(dev, "POST", "/streams/s/values", {"value": 5}))
    assert ok(request(local, "GET", "/streams/s"))["sum"] == 12.0

    # hit counters, greedy route included (Chalice's own router answers 403 for more than one segment)
    assert ok(request(local, "GET", "/api/some/deep/page"))["count"] == 1
    assert ok(request(dev, "GET", "/api/some/deep/page"))["count"] == 2
    ranking = ok(request(local, "GET", "/stats/?limit=5"))
    assert ranking["total_hits"] == 2 and ranking["paths"][0]["count"] == 2

    # last-hour sums, moving averages
    ok(request(local, "POST", "/metric/orders", {"value": 3}))
    assert ok(request(dev, "GET", "/metric/orders/sum?window=3600")) == {"value": 3}
    ok(request(local, "PUT", "/averages/temp", {"size": 3}))
    ok(request(dev, "POST", "/averages/temp", {"value": 21.5}))
    assert ok(request(local, "GET", "/averages/temp"))["average"] == 21.5

    # the survey, and the dashboard with make run's admin token
    created = ok(request(local, "POST", "/survey/responses", {"name": "Ada"}), 201)
    path = f"/survey/responses/{created['id']}"
    assert ok(request(dev, "GET", path, headers={"X-Response-Token": created["token"]}))["answers"]["name"] == "Ada"
    dashboard = ok(request(local, "GET", "/dashboard/data", headers=bearer(admin_token)))
    assert [r["id"] for r in dashboard["responses"]] == [created["id"]]
    assert request(local, "GET", "/dashboard/data", headers=bearer("not-the-token"))[0] == 401

    # events: on make run's stream, applied by make run's consumer
    events = [{"type": "value", "stream": "ev", "value": 7}, {"type": "hit", "path": "/api/from/events"}]
    assert ok(request(local, "POST", "/events", {"events": events}), 202) == {"accepted": 2, "rejected": []}
    applied = eventually(lambda: ok(request(dev, "GET", "/streams/ev")), lambda stream: stream["count"] > 0)
    assert (applied["count"], applied["sum"]) == (1, 7.0)
    assert ok(request(local, "GET", "/stats/?limit=5"))["total_hits"] == 3

    # Every write above went to DynamoDB Local's files, none under the project: chalice local never restarted.
    assert "Restarting local dev server" not in local.text(), local.text()


def test_alone_every_route_that_needs_the_database_says_to_start_make_run(
    start: Callable[[list[str]], Server],
) -> None:
    local = chalice_local(start)

    status, body = request(local, "GET", "/health")
    assert status == 503 and body["error"]["code"] == "database_unavailable", body
    assert START_MAKE_RUN in body["error"]["message"]
    assert headers_of(local, "GET", "/health")["cache-control"] == "no-store"

    needs_the_database = [
        ("GET", "/streams/s", None),
        ("POST", "/streams/s/values", {"value": 1}),
        ("GET", "/api/some/deep/page", None),  # 503, not Chalice's 403: the greedy route matched
        ("GET", "/stats/", None),
        ("POST", "/metric/orders", {"value": 1}),
        ("GET", "/metric/orders/sum", None),
        ("PUT", "/averages/temp", {"size": 3}),
        ("GET", "/averages/temp", None),
        ("POST", "/survey/responses", {"name": "Ada"}),
        ("POST", "/events", {"events": [{"type": "metric", "key": "orders", "value": 2}]}),
        ("POST", "/test/5", None),
    ]
    for method, path, body in needs_the_database:
        status, answer = request(local, method, path, body)
        assert (status, answer["error"]["code"]) == (503, "database_unavailable"), (method, path, answer)
        assert START_MAKE_RUN in answer["error"]["message"], (method, path, answer)
    # The dashboard's token is make run's: none is valid without it, so it says the same, before any token check.
    status, answer = request(local, "GET", "/dashboard/data", headers=bearer("any"))
    assert (status, answer["error"]["code"]) == (503, "unavailable") and START_MAKE_RUN in answer["error"]["message"]

    # What needs no database still answers.
    assert "/health" in ok(request(local, "GET", "/openapi.json"))["paths"]
    assert b"<html" in ok(request(local, "GET", "/")).lower()
