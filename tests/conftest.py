"""Test harness: the same suite on two backends.

moto (default, in-process `mock_aws`) or DynamoDB Local, the real database
engine, selected with `--backend=ddblocal` or LIVESTATS_BACKEND=ddblocal.
Tests marked `real_dynamodb` depend on behaviour moto does not reproduce
(TTL deletion, number limits, transaction tokens, consumed capacity) and run
on DynamoDB Local only.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

from devtools import local_routes

if TYPE_CHECKING:
    from devtools.kinesis_poller import KinesisPoller

ROOT = Path(__file__).resolve().parents[1]
STAGE = "dev"
# chalice.test.Client applies the stage's environment variables, so the tests
# use the table name the stage names.
TABLE = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][STAGE]["environment_variables"][
    "TABLE_NAME"
]

local_routes.install()

# No test asserts wall-clock time (docs/testing.md), hypothesis's 200 ms per example included: on a loaded machine
# it fails tests that are right.
settings.register_profile("livestats", deadline=None)
settings.load_profile("livestats")


def pytest_addoption(parser: pytest.Parser) -> None:
    # clients/python/tests/conftest.py adds the same option (for a run of the client's tests alone); whichever
    # conftest is loaded first adds it.
    with contextlib.suppress(ValueError):
        parser.addoption(
            "--backend",
            choices=["moto", "ddblocal"],
            default=os.environ.get("LIVESTATS_BACKEND", "moto"),
            help="database for the tests: moto (mock_aws) or ddblocal (AWS DynamoDB Local)",
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_dynamodb: needs DynamoDB's own behaviour; runs on DynamoDB Local only")
    config.addinivalue_line("markers", "pure: touches no database; runs once, with --backend=moto")
    config.addinivalue_line(
        "markers",
        "heavy: thousands of writes or many threads; runs once, on DynamoDB Local (the truth, and 2-5x faster at "
        "these than in-process moto), to keep `make test` in its time",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "pure" in item.keywords and "dynamodb" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid} is marked pure but uses a database fixture")
    if config.getoption("--backend") == "ddblocal":
        skip = pytest.mark.skip(reason="pure: touches no database, so it runs once, with --backend=moto")
        markers = {"pure"}
    else:
        skip = pytest.mark.skip(reason="needs DynamoDB's own behaviour, or heavy: runs with --backend=ddblocal")
        markers = {"real_dynamodb", "heavy"}
    for item in items:
        if markers & set(item.keywords):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def backend(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--backend"))


@pytest.fixture(scope="session")
def ddblocal_endpoint(backend: str) -> Iterator[str | None]:
    if backend != "ddblocal":
        yield None
        return
    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        yield database.endpoint_url


def _serialize_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make in-process moto apply one request at a time, as DynamoDB applies each request atomically.

    moto's backend has no locks: two threads' `ADD`s on one item can interleave and lose an update,
    which DynamoDB never does. Serialising requests keeps concurrency tests meaningful on moto.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    unlocked = BotocoreStubber.__call__

    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return unlocked(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", locked)


class Environment:
    """Environment variables changed for one test; the service reads its settings again after each change."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def set(self, name: str, value: str) -> None:
        from chalicelib.process import settings

        self.monkeypatch.setenv(name, value)
        settings.reset()

    def unset(self, name: str) -> None:
        from chalicelib.process import settings

        self.monkeypatch.delenv(name, raising=False)
        settings.reset()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Environment]:
    from chalicelib.process import settings

    yield Environment(monkeypatch)
    settings.reset()


@pytest.fixture
def secrets_env(env: Environment) -> Iterator[Environment]:
    """Local AWS credentials, no stage secret set or cached, no AWS client cached (for SSM under moto).

    Each secret variable is set, then unset, through `env`, so whatever a test writes to it (e.g. `make run`'s
    hook) is undone afterwards.
    """
    from chalicelib.process import runtime

    for name in (
        "ADMIN_TOKEN",
        "ADMIN_TOKEN_PARAMETER",
        "CURSOR_SECRET",
        "CURSOR_SECRET_PARAMETER",
        "WRITE_TOKEN",
        "WRITE_TOKEN_PARAMETER",
        "WRITE_ACCESS",
    ):
        env.set(name, "placeholder")
        env.unset(name)
    env.set("AWS_ACCESS_KEY_ID", "local")
    env.set("AWS_SECRET_ACCESS_KEY", "local")
    env.set("AWS_DEFAULT_REGION", "us-east-1")
    runtime.reset()
    yield env
    runtime.reset()


@pytest.fixture
def dynamodb(backend: str, ddblocal_endpoint: str | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A DynamoDB client on an empty table named TABLE, with the app's clients pointed at it."""
    from chalicelib.process import runtime
    from chalicelib.pure import clock
    from chalicelib.storage.table import ensure_table

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TABLE_NAME", TABLE)
    runtime.reset()
    clock.set_source(None)
    try:
        if backend == "moto":
            from moto import mock_aws

            monkeypatch.delenv("DDB_ENDPOINT_URL", raising=False)
            _serialize_moto(monkeypatch)
            with mock_aws():
                client = runtime.dynamodb()
                ensure_table(client, TABLE)
                yield client
        else:
            monkeypatch.setenv("DDB_ENDPOINT_URL", str(ddblocal_endpoint))
            # Any other AWS client (e.g. SSM) fails fast on a closed loopback port instead of reaching AWS.
            monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            client = runtime.dynamodb()
            with contextlib.suppress(client.exceptions.ResourceNotFoundException):
                client.delete_table(TableName=TABLE)
            ensure_table(client, TABLE)
            yield client
    finally:
        runtime.reset()
        clock.set_source(None)


# moto's Kinesis answers at AWS's own address (it intercepts botocore in-process). An explicit endpoint, because on
# DynamoDB Local AWS_ENDPOINT_URL points every other client at a closed port.
KINESIS_ENDPOINT = "https://kinesis.us-east-1.amazonaws.com"
EVENTS_SHARDS = 4  # an on-demand stream starts with 4 shards


class EventsStream:
    """The events stream of a test: its Kinesis client and name, and what has been put on it."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def shard_ids(self) -> list[str]:
        return [shard["ShardId"] for shard in self.client.list_shards(StreamName=self.name)["Shards"]]

    def records(self) -> list[dict[str, Any]]:
        """Every record on the stream, read from the start of each shard: shard by shard, each in stream order (each
        with its `ShardId`)."""
        found: list[dict[str, Any]] = []
        for shard_id in self.shard_ids():
            iterator = self.client.get_shard_iterator(
                StreamName=self.name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = self.client.get_records(ShardIterator=iterator, Limit=10_000)
                found += [{**record, "ShardId": shard_id} for record in page["Records"]]
                if not page["Records"]:
                    break
                iterator = page.get("NextShardIterator")
        return found

    def events(self) -> list[Any]:
        """The events of every record, decoded (chalicelib.ingest.records), in the order `records` reads them."""
        from chalicelib.ingest import records

        return [event for record in self.records() for event in records.decode(record["Data"]).events]


@pytest.fixture
def events_stream(backend: str, dynamodb: Any, env: Environment) -> Iterator[EventsStream]:
    """An empty on-demand events stream (EVENTS_SHARDS shards) named as the settings name it, in moto's in-process
    Kinesis on both backends (DynamoDB Local is a real server; Kinesis is always moto here), with the app's Kinesis
    client pointed at it. Ask for it after `api`, whose stage environment it must follow."""
    from chalicelib.process import runtime, settings

    env.set("KINESIS_ENDPOINT_URL", KINESIS_ENDPOINT)
    # On moto, `dynamodb` runs inside mock_aws already (a second one would reset its table).
    mocked: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if backend == "ddblocal":
        from moto import mock_aws

        mocked = mock_aws()
    with mocked:
        # moto's interception joins the botocore sessions made after moto is imported: a fresh one for the clients.
        runtime.reset()
        client = runtime.kinesis()
        name = settings.get().events_stream_name
        client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        stream = EventsStream(client, name)
        assert len(stream.shard_ids()) == EVENTS_SHARDS
        yield stream


def drain(stream: EventsStream, state: Path) -> KinesisPoller:
    """Poll the stream as the dev server does until it is drained, each batch handed to the app's consumer at once;
    the poller (its checkpoints and dead letters under `state`)."""
    import itertools

    from app import app
    from devtools.kinesis_poller import Checkpoints, KinesisPoller, registrations

    ticks = itertools.count(step=60.0)  # every poll is past the batching window: no waiting on a real clock
    registration = registrations(app)[0]
    poller = KinesisPoller(
        registration, stream.client, Checkpoints(state / "checkpoints.json"), state / "dead.jsonl", clock=ticks.__next__
    )
    idle = 0
    while idle < 3:
        read = poller.poll_once()
        pending = any(reader.pending for reader in poller.shards.values())
        idle = idle + 1 if not read and not pending else 0
    return poller


@pytest.fixture(scope="session")
def chalice_config() -> Any:
    """The dev stage's Chalice config (the app loaded as `chalice local` loads it)."""
    from chalice.cli.factory import CLIFactory

    return CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name=STAGE)


@pytest.fixture
def client(dynamodb: Any) -> Iterator[Any]:
    """chalice.test.Client, for invoking Lambda functions (scheduled events). Not thread-safe."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name=STAGE, project_dir=str(ROOT)) as test_client:
        yield test_client


class Api:
    """JSON over Chalice's local API Gateway emulation, safe to call from many threads.

    (chalice.test.Client swaps os.environ on every request, which races across threads.)
    """

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        from chalice.local import LocalGatewayException
        from chalice.test import HTTPResponse

        raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        payload = raw.encode() if isinstance(raw, str) else (raw or b"")
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            return HTTPResponse.create_from_dict(self.gateway.handle_request(method, path, all_headers, payload))
        except LocalGatewayException as exc:
            return HTTPResponse(headers=exc.headers, body=exc.body or b"", status_code=exc.CODE)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def api(dynamodb: Any, chalice_config: Any, env: Environment) -> Api:
    from chalice.local import LocalGateway

    for name, value in chalice_config.environment_variables.items():
        env.set(name, value)
    # The key itself wins over the stage's SSM parameter, so no test reaches SSM for it.
    env.set("CURSOR_SECRET", "test-cursor-secret")
    # Writes open, as under `make run`; tests of the write token switch it to `token`.
    env.set("WRITE_ACCESS", "open")
    return Api(LocalGateway(chalice_config.chalice_app, chalice_config))


def partition_items(dynamodb: Any, pk: str) -> list[dict[str, Any]]:
    """Every item of one partition of the table, read strongly consistent (page by page), as stored."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": pk}},
        "ConsistentRead": True,
    }
    while True:
        page = dynamodb.query(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def item_size(item: dict[str, Any]) -> int:
    """A stored item's size by AWS's rules, which its write units follow (1 per started KB): each attribute's name
    plus its value (a string or binary by its length, a number by one byte per two significant digits plus one)."""

    def value_size(value: dict[str, Any]) -> int:
        (kind, raw), *_ = value.items()
        if kind == "S":
            return len(raw.encode())
        if kind == "B":
            return len(bytes(raw))
        if kind == "N":
            digits = raw.lstrip("-").replace(".", "").strip("0")
            return (len(digits) + 1) // 2 + 1
        if kind == "L":
            return 3 + sum(1 + value_size(v) for v in raw)
        if kind == "M":
            return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in raw.items())
        return 1  # BOOL, NULL

    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


# `q` values every quantile route refuses (one parser: contract.quantile_levels).
BAD_QUANTILE_LEVELS = (
    "",
    "1.5",
    "-0.1",
    "abc",
    "nan",
    "inf",
    "1e-3",
    "0.5,",
    "0.5,,0.9",
    "%200.5",
    "2",
    "1.01",
    ",".join(["0.5"] * 21),
)


def ok(response: Any, status: int = 200) -> Any:
    """The response has this status (200 by default); its JSON body."""
    assert response.status_code == status, response.body
    return json.loads(response.body)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the service's JSON error shape with this status (and code)."""
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    assert "Traceback" not in response.body.decode()
    error: dict[str, Any] = body["error"]
    return error
