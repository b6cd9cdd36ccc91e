"""Shared benchmark plumbing: a DynamoDB Local table per case and a meter of calls and capacity."""

from __future__ import annotations

import os
import secrets
import statistics
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from chalicelib import runtime, settings
from chalicelib.dynamo import LostRace, retry
from chalicelib.table import ensure_table
from devtools.ddblocal import local_aws_env

PROJECT_DIR = Path(__file__).resolve().parents[1]

READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})


def use_endpoint(endpoint_url: str) -> Any:
    """Point the app's lazily created client at DynamoDB Local and return that client."""
    for name, value in local_aws_env().items():
        os.environ.setdefault(name, value)
    os.environ["DDB_ENDPOINT_URL"] = endpoint_url
    runtime.reset()
    return runtime.dynamodb()


def set_env(name: str, value: str | None) -> None:
    """Set (or with None, remove) an environment variable the app's settings read, and have them read again."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    settings.reset()


def unmetered_client(endpoint_url: str) -> Any:
    """Another client of the same database, that no meter is attached to (bench.pricing.PricingMeter reads the
    items around each write with one)."""
    env = local_aws_env()
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(max_pool_connections=64, retries={"max_attempts": 5, "mode": "standard"}),
    )


def fresh_table(client: Any, prefix: str) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    ensure_table(client, name)
    return name


def load_items(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    """Write prepared items fast: BatchWriteItem in batches of 25, 8 at a time, retrying unprocessed items."""

    def write(batch: list[dict[str, Any]]) -> None:
        request = {table: [{"PutRequest": {"Item": item}} for item in batch]}

        def attempt(_: int) -> None:
            nonlocal request
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if request:
                raise LostRace

        retry(attempt, attempts=20, busy="BatchWriteItem left items unprocessed")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, [items[i : i + 25] for i in range(0, len(items), 25)]))


def local_gateway() -> Any:
    """The app behind Chalice's local API Gateway emulation (dev stage), as the tests and dev server use it."""
    from chalice.cli.factory import CLIFactory
    from chalice.local import LocalGateway

    from devtools import local_routes

    local_routes.install()
    config = CLIFactory(str(PROJECT_DIR)).create_config_obj(chalice_stage_name="dev")
    for name, value in config.environment_variables.items():
        os.environ.setdefault(name, value)
    # As under `make run` (chalicelib/devhooks.py, which also resets the clients a meter may be attached to): writes
    # open, as the benchmarks send no write token, and a cursor secret of the run's own instead of the stage's SSM
    # parameter, which is not reachable locally.
    os.environ.setdefault("WRITE_ACCESS", "open")
    os.environ.setdefault("CURSOR_SECRET", secrets.token_urlsafe(32))
    settings.reset()
    return LocalGateway(config.chalice_app, config)


class Meter:
    """Counts round trips and consumed capacity units of every call a boto3 client makes, from outside the code
    under test: it asks DynamoDB to report the capacity of every call that can report it, and reads each answer.
    Also a context manager, which stops metering on exit."""

    def __init__(self, client: Any, capacity: str = "TOTAL") -> None:
        self._lock = threading.Lock()
        self._events = client.meta.events
        self._capacity = capacity  # INDEXES also reports the units of each index (counted in `index_units`)
        self.calls: Counter[str] = Counter()
        self.read_units = 0.0
        self.write_units = 0.0
        self.index_units = 0.0
        self._handlers = {
            "before-parameter-build.dynamodb": self._ask_for_capacity,
            "before-call.dynamodb": self._before,
            "after-call.dynamodb": self._after,
        }
        for event, handler in self._handlers.items():
            self._events.register(event, handler)

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *_: object) -> None:
        for event, handler in self._handlers.items():
            self._events.unregister(event, handler)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.read_units = self.write_units = self.index_units = 0.0

    @property
    def round_trips(self) -> int:
        return sum(self.calls.values())

    def _ask_for_capacity(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", self._capacity)

    def _before(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[model.name] += 1

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity")
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        units = sum(float(entry.get("CapacityUnits", 0)) for entry in entries)
        indexes = [index for entry in entries for index in entry.get("GlobalSecondaryIndexes", {}).values()]
        with self._lock:
            self.index_units += sum(float(index.get("CapacityUnits", 0)) for index in indexes)
            if model.name in READ_OPERATIONS:
                self.read_units += units
            else:
                self.write_units += units


def median(values: list[float]) -> float:
    return statistics.median(values)


def table_md(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
