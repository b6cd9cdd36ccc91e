"""Shared benchmark plumbing: a DynamoDB Local table per case and a meter of calls and capacity."""

from __future__ import annotations

import os
import secrets
import statistics
import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.process import runtime, settings
from chalicelib.storage.dynamo import batch_write
from chalicelib.storage.table import ensure_table
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
        batch_write(client, table, [{"PutRequest": {"Item": item}} for item in batch], attempts=20)

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
    # As under `make run` (chalicelib/process/devhooks.py, which also resets the clients a meter may be attached to): writes
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


# --- write units by AWS's published rules -------------------------------------------------------------------------

KB = 1024
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"})


def value_size(value: Mapping[str, Any]) -> int:
    """An attribute value's size by DynamoDB's rules: UTF-8 bytes of text, bytes of binary, numbers about 1 byte per
    2 significant digits + 1, sets the sum of their elements, lists and maps 3 bytes + 1 per element + the elements
    (and a map's names)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "B":
        return len(inner)
    if kind == "N":
        return _number_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: element}) for element in inner)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(name.encode()) + value_size(v) + 1 for name, v in inner.items())
    raise ValueError(kind)


def _number_size(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits
    return (len(digits) + 1) // 2 + 1


def item_size(item: Mapping[str, Any] | None) -> int:
    """An item's size by DynamoDB's rules: its attribute names and values (0 for no item)."""
    return 0 if item is None else sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> int:
    """Standard write units of writing one item: 1 per started KB of the larger of its images before and after."""
    return max(1, -(-max(item_size(before), item_size(after)) // KB))


class AwsWriteMeter:
    """Prices every write a client makes by AWS's published rules, from the images of each item it writes, read
    around the call on a second, unmetered client: 1 unit per started KB of the larger image, twice that inside a
    TransactWriteItems (a ConditionCheck as a transactional write of the item checked), and a write refused by its
    condition as a write of the item as it stands. Counts GSI entries written too (an entry whose key moves is a
    delete and a put; `ALL` projections are rewritten on any change). DynamoDB Local's own ConsumedCapacity
    misprices transactions and index writes, hence this. Not thread-safe for concurrent writes to one item."""

    def __init__(self, client: Any) -> None:
        from chalicelib.storage.table import GLOBAL_SECONDARY_INDEXES

        self._lock = threading.Lock()
        self._events = client.meta.events
        self._reader = _unmetered_client(client)
        self._indexes = GLOBAL_SECONDARY_INDEXES
        self.units = 0
        self.index_entries = 0
        self.refused = 0  # writes refused by their condition (priced, and counted here)
        self.calls: Counter[str] = Counter()
        self._handlers: dict[str, Any] = {
            "provide-client-params.dynamodb": self._before,
            "after-call.dynamodb": self._after,
        }
        for event, handler in self._handlers.items():
            self._events.register(event, handler)

    def __enter__(self) -> AwsWriteMeter:
        return self

    def __exit__(self, *_: object) -> None:
        for event, handler in self._handlers.items():
            self._events.unregister(event, handler)

    def reset(self) -> None:
        with self._lock:
            self.units = self.index_entries = self.refused = 0
            self.calls.clear()

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name not in WRITE_OPERATIONS:
            return
        writes = _writes_of(model.name, params)
        context["aws_meter"] = [(table, key, kind, self._image(table, key)) for table, key, kind in writes]

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        before = context.pop("aws_meter", None)
        if before is None:
            return
        failed = "Error" in parsed
        per_kb = 2 if model.name == "TransactWriteItems" else 1
        units = entries = 0
        for table, key, kind, old in before:
            new = old if failed or kind == "check" else self._image(table, key)
            units += per_kb * (write_units(old, None) if kind == "check" or failed else write_units(old, new))
            entries += 0 if failed else self._index_entries(old, new)
        with self._lock:
            self.calls[model.name] += 1
            self.units += units
            self.index_entries += entries
            self.refused += failed

    def _image(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._reader.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return found

    def _index_entries(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> int:
        entries = 0
        for index in self._indexes:
            names = [part["AttributeName"] for part in index["KeySchema"]]
            keys_of = [
                None if i is None or any(n not in i for n in names) else [i[n] for n in names] for i in (old, new)
            ]
            if keys_of[0] != keys_of[1]:
                entries += (keys_of[0] is not None) + (keys_of[1] is not None)
            elif keys_of[1] is not None and index["Projection"]["ProjectionType"] == "ALL" and old != new:
                entries += 1
        return entries


def _writes_of(operation: str, params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(table, key, kind) of each item a write call touches; kind "check" for a transaction's ConditionCheck."""
    if operation != "TransactWriteItems":
        return [(params["TableName"], _key_of(params), "write")]
    found = []
    for action in params["TransactItems"]:
        (name, body), *_ = action.items()
        found.append((body["TableName"], _key_of(body), "check" if name == "ConditionCheck" else "write"))
    return found


def _key_of(body: Mapping[str, Any]) -> dict[str, Any]:
    from chalicelib.storage.table import PARTITION_KEY, SORT_KEY

    if "Key" in body:
        return dict(body["Key"])
    return {name: body["Item"][name] for name in (PARTITION_KEY, SORT_KEY)}


def _unmetered_client(client: Any) -> Any:
    """A second client on the same endpoint and region, without the first one's hooks."""
    import botocore.session

    return botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=client.meta.endpoint_url, region_name=client.meta.region_name
    )
