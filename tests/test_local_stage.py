"""The `local` stage's settings (what `make run` writes for it), and the 503s of a process that has no database or
no events stream to use: a plain `chalice local` (no AWS region), a local database without a local Kinesis.
tests/test_chalice_local.py runs the real servers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from chalicelib.edge.errors import DatabaseUnavailable, StreamNotConfigured
from chalicelib.process import runtime
from chalicelib.process.settings import Settings
from deploy import stages
from devtools import devserver
from devtools.ddblocal import local_aws_env
from tests.conftest import Api, Environment, assert_error

ROOT = Path(__file__).resolve().parents[1]
LOCAL = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["local"]["environment_variables"]


def written(path: Path, environment: dict[str, str], pid: int = 1) -> Path:
    path.write_text(json.dumps({"pid": pid, "url": "http://127.0.0.1:8000/", "environment": environment}))
    return path


@pytest.mark.pure
def test_without_make_run_the_local_stage_has_no_database(tmp_path: Path) -> None:
    current = Settings.from_environment({**LOCAL, "DEVSERVER_FILE": str(tmp_path / "absent.json")})
    assert current.devserver_missing and current.ddb_endpoint_url is None
    assert current.write_access == "open"  # the stage's own, so that a write says what to start, not "token"
    runtime.reset()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("chalicelib.process.settings._current", current)
            with pytest.raises(DatabaseUnavailable, match="Start `make run` first"):
                runtime.dynamodb()
            assert not runtime.has_clients()  # nothing cached: the next request looks again
    finally:
        runtime.reset()


@pytest.mark.pure
def test_make_runs_file_wins_over_the_environment(tmp_path: Path) -> None:
    shared = written(
        tmp_path / "devserver.json",
        {"DDB_ENDPOINT_URL": "http://127.0.0.1:1234", "TABLE_NAME": "livestats-dev", "WRITE_ACCESS": "token"},
    )
    current = Settings.from_environment({**LOCAL, "DEVSERVER_FILE": str(shared), "TABLE_NAME": "other"})
    assert not current.devserver_missing
    assert (current.ddb_endpoint_url, current.table_name, current.write_access) == (
        "http://127.0.0.1:1234",
        "livestats-dev",
        "token",
    )


@pytest.mark.pure
def test_a_local_database_without_a_local_kinesis_has_no_events_stream() -> None:
    assert Settings().events_stream_configured  # AWS: both the region's
    assert Settings(ddb_endpoint_url="http://h:1", kinesis_endpoint_url="http://h:2").events_stream_configured
    assert not Settings(ddb_endpoint_url="http://h:1").events_stream_configured


@pytest.mark.pure
def test_devserver_file_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDB_ENDPOINT_URL", "http://127.0.0.1:4321")
    monkeypatch.setenv("ADMIN_TOKEN", "t0k3n")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not a setting")
    path = tmp_path / "devserver.json"
    devserver.write_devserver_file(path, 8123)
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the admin token
    content = json.loads(path.read_text())
    assert content["url"] == "http://127.0.0.1:8123/" and content["pid"] == os.getpid()
    assert content["environment"]["ADMIN_TOKEN"] == "t0k3n" and "AWS_SECRET_ACCESS_KEY" not in content["environment"]
    assert Settings.from_environment({"DEVSERVER_FILE": str(path)}).ddb_endpoint_url == "http://127.0.0.1:4321"
    written(path, {}, pid=os.getpid() + 1)  # another make run's now
    devserver.remove_devserver_file(path)
    assert path.exists()
    devserver.write_devserver_file(path, 8123)
    devserver.remove_devserver_file(path)
    assert not path.exists()


@pytest.mark.pure
def test_the_dev_server_writes_where_the_local_stage_reads() -> None:
    assert devserver.devserver_file(ROOT) == ROOT / LOCAL["DEVSERVER_FILE"]
    # The stage's AWS variables are make run's: any other client fails fast on a closed port, never reaching AWS.
    assert {k: v for k, v in LOCAL.items() if k.startswith("AWS_")} == local_aws_env()


@pytest.mark.pure
def test_the_local_stage_does_not_deploy() -> None:
    assert "local" not in stages.names() and {"dev", "prod"} <= set(stages.names())
    with pytest.raises(KeyError, match="does not deploy"):
        stages.load("local")


# --- through the app -------------------------------------------------------------------------------------------


def test_events_with_a_local_database_and_no_local_kinesis_say_no_stream_is_configured(
    api: Api, env: Environment
) -> None:
    env.set("DDB_ENDPOINT_URL", "http://127.0.0.1:9")  # never reached: unkeyed events need no database
    env.unset("KINESIS_ENDPOINT_URL")
    runtime.reset()
    response = api.post("/events", {"events": [{"type": "metric", "key": "orders", "value": 2}]})
    error = assert_error(response, 503, "stream_not_configured")
    assert "KINESIS_ENDPOINT_URL is not set" in error["message"] and "retry" not in error["message"]
    assert "Retry-After" not in response.headers
    with pytest.raises(StreamNotConfigured):
        runtime.kinesis()


@pytest.fixture
def no_region(api: Api, env: Environment, tmp_path: Path) -> Api:
    """The app as a plain `chalice local` runs it: the dev stage, no AWS region anywhere."""
    env.unset("AWS_DEFAULT_REGION")
    env.unset("AWS_REGION")
    env.unset("DDB_ENDPOINT_URL")
    env.set("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    runtime.reset()
    return api


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/health", None),
        ("GET", "/streams/s", None),
        ("POST", "/streams/s/values", {"value": 1}),
        ("GET", "/api/a/b", None),
        ("POST", "/events", {"events": [{"type": "metric", "key": "orders", "value": 2}]}),
    ],
)
def test_no_region_is_a_503_that_says_what_to_start(no_region: Api, method: str, path: str, body: Any) -> None:
    response = no_region.request(method, path, body)
    error = assert_error(response, 503, "database_unavailable")
    assert "no AWS region is configured" in error["message"] and "chalice local --stage local" in error["message"]
    if path == "/health":
        assert response.headers["Cache-Control"] == "no-store"


def test_no_region_for_the_stage_secrets_is_a_503_that_says_what_to_start(no_region: Api, env: Environment) -> None:
    env.unset("ADMIN_TOKEN")  # the dev stage's SSM parameter, which cannot be read without a region
    response = no_region.get("/dashboard/data", headers={"Authorization": "Bearer any"})
    error = assert_error(response, 503, "unavailable")
    assert "no AWS region is configured" in error["message"] and "chalice local --stage local" in error["message"]
