"""What DynamoDB bills for the calls a boto3 client makes, priced by AWS's published rules from the items' sizes,
next to what DynamoDB Local reports (its ConsumedCapacity misprices transactions and index writes, so it is only
the second figure; see ../shared/notes/aws-billing-and-delivery.md).

The rules, as the pure functions below apply them:
- An item's size is the sum of its attribute names' and values' lengths: strings their UTF-8 bytes, binary its
  bytes, a number 1 byte per 2 significant digits plus 1, a map or list 3 bytes plus 1 per element plus its
  elements, booleans and nulls 1.
- A write costs 1 unit per started KB of the item, the larger of its size before and after (at least 1); inside
  TransactWriteItems twice that. A ConditionCheck costs like a transactional write of the checked item.
- Each GSI entry written costs 1 unit per started KB of the projected entry: an entry whose index key changes is a
  delete and a put, one that appears or disappears is one write, one whose projected attributes change is one
  write, an unchanged one nothing. Index writes are not doubled by a transaction.
- A strongly consistent read costs 1 unit per started 4 KB (at least 1, also for an item that is not there), an
  eventually consistent one half, a transactional one twice: per item for GetItem, BatchGetItem and
  TransactGetItems, per 4 KB of all the items read for a Query or Scan.

`PricingMeter` attaches to a client through botocore's events, as bench.common.Meter does, so the code under test
carries no metering. Around every write call it reads each item the call touches (before and after, strongly
consistent, with its own client that is not metered) and prices the call from those images. Writes to the same
item are serialised while the meter is attached, so that the images around a call are that call's own.

Besides its total, the meter charges each call to the bill of the context it runs in (`charging`): work run in
parallel can be priced per task, including what a task hands to the app's executor (whose tasks run in the
submitter's context). Calls made inside `unmetered()` are not priced (their writes are still serialised).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from chalicelib.storage import table

KB = 1024
READ_BLOCK = 4 * KB
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
# Request parameters that shrink what a read returns but not what it is billed for: the meter reads again without.
_NARROWING = ("ProjectionExpression", "FilterExpression", "Select", "AttributesToGet")

Item = Mapping[str, Any]

# --- sizes ---------------------------------------------------------------------------------------------------------


def number_size(text: str) -> int:
    """A number's size: 1 byte per 2 significant digits (leading and trailing zeros do not count), plus 1."""
    digits = len(Decimal(text).normalize().as_tuple().digits)
    return (digits + 1) // 2 + 1


def value_size(value: Mapping[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "B":
        return len(inner)
    if kind == "N":
        return number_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(name.encode()) + value_size(v) + 1 for name, v in inner.items())
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Item | None) -> int:
    return 0 if item is None else sum(len(name.encode()) + value_size(value) for name, value in item.items())


# --- units ---------------------------------------------------------------------------------------------------------


def _blocks(size: int, block: int) -> int:
    return max(1, -(-size // block))


def write_units(*sizes: int, transactional: bool = False) -> int:
    """A write of an item whose images have these sizes: per started KB of the larger, doubled in a transaction."""
    return _blocks(max(sizes, default=0), KB) * (2 if transactional else 1)


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    """A read of `size` bytes (one item, or all of a Query's items together)."""
    units = float(_blocks(size, READ_BLOCK))
    if transactional:
        return units * 2
    return units if consistent else units / 2


@dataclass(frozen=True)
class Index:
    """A global secondary index as the table defines it: its key attributes and what it projects."""

    name: str
    key: tuple[str, ...]
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: frozenset[str] = frozenset()

    @classmethod
    def of(cls, definition: Mapping[str, Any]) -> Index:
        projection = definition.get("Projection", {})
        return cls(
            definition["IndexName"],
            tuple(part["AttributeName"] for part in definition["KeySchema"]),
            projection.get("ProjectionType", "ALL"),
            frozenset(projection.get("NonKeyAttributes", ())),
        )

    def entry(self, item: Item | None, table_key: Sequence[str]) -> dict[str, Any] | None:
        """The item's entry in this index (None: the item is not in it, a sparse index)."""
        if item is None or any(name not in item for name in self.key):
            return None
        if self.projection == "ALL":
            return dict(item)
        kept = {*table_key, *self.key, *self.included}
        return {name: value for name, value in item.items() if name in kept}


TABLE_KEY: tuple[str, ...] = tuple(part["AttributeName"] for part in table.KEY_SCHEMA)
TABLE_INDEXES: tuple[Index, ...] = tuple(Index.of(d) for d in table.GLOBAL_SECONDARY_INDEXES)


def index_entry_units(before: Item | None, after: Item | None, index: Index, table_key: Sequence[str]) -> int:
    """The index writes of an item going from `before` to `after`."""
    old, new = index.entry(before, table_key), index.entry(after, table_key)
    if old == new:
        return 0
    if old is None or new is None:  # appears or disappears: one write
        return write_units(item_size(old or new))
    if any(old[name] != new[name] for name in index.key):  # moved: a delete and a put
        return write_units(item_size(old)) + write_units(item_size(new))
    return write_units(item_size(old), item_size(new))  # projected attributes changed in place


@dataclass(frozen=True)
class ItemWrite:
    """One item a write call touched, as read before and after it."""

    before: Item | None
    after: Item | None
    transactional: bool = False
    check_only: bool = False  # a ConditionCheck: billed as a transactional write, changes nothing


@dataclass(frozen=True)
class WriteCost:
    table: int
    indexes: int

    @property
    def total(self) -> int:
        return self.table + self.indexes


def item_write_cost(
    write: ItemWrite, indexes: Sequence[Index] = TABLE_INDEXES, table_key: Sequence[str] = TABLE_KEY
) -> WriteCost:
    units = write_units(item_size(write.before), item_size(write.after), transactional=write.transactional)
    if write.check_only:
        return WriteCost(units, 0)
    return WriteCost(units, sum(index_entry_units(write.before, write.after, i, table_key) for i in indexes))


def query_read_units(items: Iterable[Item], *, consistent: bool) -> float:
    """A Query or Scan page: by the total size of the items it read."""
    return read_units(sum(item_size(i) for i in items), consistent=consistent)


# --- which items a write call touches ------------------------------------------------------------------------------

ItemRef = tuple[str, tuple[tuple[str, str], ...]]  # table name, key as sorted (attribute, value) pairs


def item_ref(table_name: str, key: Mapping[str, Any], table_key: Sequence[str] = TABLE_KEY) -> ItemRef:
    return table_name, tuple(sorted((name, repr(key[name])) for name in table_key))


@dataclass(frozen=True)
class Touch:
    """An item a write call names: its table, its key, and how the call bills it."""

    table: str
    key: dict[str, Any]
    transactional: bool = False
    check_only: bool = False

    @property
    def ref(self) -> ItemRef:
        return item_ref(self.table, self.key)


def _key_of(item: Mapping[str, Any], table_key: Sequence[str]) -> dict[str, Any]:
    return {name: item[name] for name in table_key}


def _transact_touch(action: Mapping[str, Any], table_key: Sequence[str]) -> Touch:
    (kind, body), *_ = action.items()
    key = _key_of(body["Item"], table_key) if kind == "Put" else body["Key"]
    return Touch(body["TableName"], key, transactional=True, check_only=kind == "ConditionCheck")


def touched(operation: str, params: Mapping[str, Any], table_key: Sequence[str] = TABLE_KEY) -> list[Touch]:
    """The items a write call names, in its order."""
    if operation == "PutItem":
        return [Touch(params["TableName"], _key_of(params["Item"], table_key))]
    if operation in ("UpdateItem", "DeleteItem"):
        return [Touch(params["TableName"], params["Key"])]
    if operation == "TransactWriteItems":
        return [_transact_touch(action, table_key) for action in params["TransactItems"]]
    if operation == "BatchWriteItem":
        return [
            Touch(name, _batch_write_key(request, table_key))
            for name, requests in params["RequestItems"].items()
            for request in requests
        ]
    raise ValueError(f"not a write: {operation}")


def _batch_write_key(request: Mapping[str, Any], table_key: Sequence[str]) -> dict[str, Any]:
    if "PutRequest" in request:
        return _key_of(request["PutRequest"]["Item"], table_key)
    return dict(request["DeleteRequest"]["Key"])


# --- the meter -----------------------------------------------------------------------------------------------------


@dataclass
class Bill:
    """Units of the calls metered so far: by AWS's rules, and as DynamoDB Local reported them."""

    write_units: float = 0.0  # AWS's rules: table and index writes
    index_write_units: float = 0.0  # of write_units, the GSI entries
    read_units: float = 0.0
    local_write_units: float = 0.0  # DynamoDB Local's ConsumedCapacity
    local_read_units: float = 0.0
    failed_write_units: float = 0.0  # of write_units, writes that were refused (a failed condition, a conflict)
    calls: dict[str, float] = field(default_factory=dict)  # round trips per operation

    @property
    def round_trips(self) -> float:
        return sum(self.calls.values())

    def charge(self, other: Bill, factor: float = 1.0) -> None:
        """Add `other` (times `factor`) to this bill, in place."""
        for name in _UNITS:
            setattr(self, name, getattr(self, name) + getattr(other, name) * factor)
        for operation, n in other.calls.items():
            self.calls[operation] = self.calls.get(operation, 0) + n * factor

    def scaled(self, factor: float) -> Bill:
        """This bill times `factor` (a sample's bill weighted to the whole it stands for)."""
        scaled = Bill()
        scaled.charge(self, factor)
        return scaled

    def __add__(self, other: Bill) -> Bill:
        total = self.scaled(1.0)
        total.charge(other)
        return total


_UNITS = tuple(f.name for f in fields(Bill) if f.name != "calls")


def local_units(parsed: Mapping[str, Any]) -> float:
    """DynamoDB Local's figure for one answer (its ConsumedCapacity, one entry or one per table)."""
    consumed = parsed.get("ConsumedCapacity")
    entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
    return sum(float(entry.get("CapacityUnits", 0)) for entry in entries)


# The bill the current context's calls are charged to (besides the meter's total), or _UNMETERED.
_UNMETERED = Bill()
_account: contextvars.ContextVar[Bill | None] = contextvars.ContextVar("pricing_account", default=None)


@contextlib.contextmanager
def unmetered() -> Iterator[None]:
    """Calls made in this context (and in the tasks it hands to the app's executor) are not priced."""
    token = _account.set(_UNMETERED)
    try:
        yield
    finally:
        _account.reset(token)


class _ItemLocks:
    """Items with a metered write in flight: a call waits until none of its items is taken, then takes them all
    at once (so two calls never wait on each other)."""

    def __init__(self) -> None:
        self._busy: set[ItemRef] = set()
        self._changed = threading.Condition()

    def take(self, refs: set[ItemRef]) -> None:
        with self._changed:
            self._changed.wait_for(lambda: not (refs & self._busy))
            self._busy |= refs

    def give_back(self, refs: set[ItemRef]) -> None:
        with self._changed:
            self._busy -= refs
            self._changed.notify_all()


class PricingMeter:
    """Prices every call `client` makes, by AWS's rules from item sizes, next to DynamoDB Local's figures.

    `reader` is a client of the same database that is not metered: the meter reads the items around each write
    with it, and reads again without a projection or filter when a read narrowed what it returned. A context
    manager: metering stops on exit. `bill` is what was metered so far.

    With `remember_items`, an item's image after a metered write stands for its image before the next one, which
    saves a read per write: only where every write to the metered tables goes through `client` (an unmetered
    write through it forgets the items it touches) and no item expires meanwhile."""

    def __init__(
        self,
        client: Any,
        reader: Any,
        indexes: Sequence[Index] = TABLE_INDEXES,
        table_key: Sequence[str] = TABLE_KEY,
        *,
        remember_items: bool = False,
    ) -> None:
        self._client, self._reader = client, reader
        self._remembered: dict[ItemRef, dict[str, Any] | None] | None = {} if remember_items else None
        self._indexes, self._table_key = tuple(indexes), tuple(table_key)
        self._lock = threading.Lock()
        self._items = _ItemLocks()
        self._bill = Bill()
        self._handlers = {
            "before-parameter-build.dynamodb": self._keep_params,
            "before-call.dynamodb": self._before,
            "after-call.dynamodb": self._after,
            "after-call-error.dynamodb": self._after_error,
        }
        for event, handler in self._handlers.items():
            client.meta.events.register(event, handler)

    def __enter__(self) -> PricingMeter:
        return self

    def __exit__(self, *_: object) -> None:
        for event, handler in self._handlers.items():
            self._client.meta.events.unregister(event, handler)

    @property
    def bill(self) -> Bill:
        with self._lock:
            return self._bill + Bill()

    def reset(self) -> None:
        with self._lock:
            self._bill = Bill()

    @contextlib.contextmanager
    def charging(self) -> Iterator[Bill]:
        """A bill of the calls made in this context from here on (and in the tasks it hands to the app's executor);
        complete when the block ends."""
        bill = Bill()
        token = _account.set(bill)
        try:
            yield bill
        finally:
            _account.reset(token)

    def _charge(self, bill: Bill) -> None:
        account = _account.get()
        with self._lock:
            self._bill.charge(bill)
            if account is not None:
                account.charge(bill)

    @staticmethod
    def _metered() -> bool:
        return _account.get() is not _UNMETERED

    # --- botocore's events ----------------------------------------------------------------------------------

    def _keep_params(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        context["pricing_params"] = copy.deepcopy(params)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name not in WRITE_OPERATIONS or "pricing_params" not in context:
            return
        touches = touched(model.name, context["pricing_params"], self._table_key)
        refs = {t.ref for t in touches}
        self._items.take(refs)
        context["pricing_touches"] = touches
        try:
            context["pricing_before"] = None
            if self._metered():
                context["pricing_before"] = self._before_images(touches)
            else:
                self._forget(refs)
        except BaseException:
            self._items.give_back(refs)
            del context["pricing_touches"]
            raise

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if "pricing_params" not in context:
            return  # the call began before the meter was attached
        failed = http_response.status_code >= 300
        bill = Bill(calls={model.name: 1})
        if model.name in WRITE_OPERATIONS:
            touches: list[Touch] = context.pop("pricing_touches")
            before = context.pop("pricing_before")
            try:
                if before is not None:
                    bill = self._price_write(touches, before, parsed, failed)
                    bill.calls = {model.name: 1}
                    bill.local_write_units = local_units(parsed)
            finally:
                self._items.give_back({t.ref for t in touches})
        elif model.name in READ_OPERATIONS and self._metered():
            bill.read_units = 0.0 if failed else self._price_read(model.name, context["pricing_params"], parsed)
            bill.local_read_units = local_units(parsed)
        if self._metered():
            self._charge(bill)

    def _after_error(self, context: dict[str, Any], **_: Any) -> None:
        """The call never got an answer (a connection error, a spent budget): nothing to price, items released."""
        touches: list[Touch] | None = context.pop("pricing_touches", None)
        if touches is not None:
            self._items.give_back({t.ref for t in touches})

    # --- writes ---------------------------------------------------------------------------------------------

    def _before_images(self, touches: Sequence[Touch]) -> dict[ItemRef, dict[str, Any] | None]:
        remembered = self._remembered or {}
        known = {t.ref: remembered[t.ref] for t in touches if t.ref in remembered}
        return known | self._images([t for t in touches if t.ref not in known])

    def _forget(self, refs: set[ItemRef]) -> None:
        """An unmetered write changes these items unseen: their remembered images are stale."""
        if self._remembered is not None:
            with self._lock:
                for ref in refs:
                    self._remembered.pop(ref, None)

    def _remember(self, images: Mapping[ItemRef, dict[str, Any] | None]) -> None:
        if self._remembered is not None:
            with self._lock:
                self._remembered.update(images)

    def _images(self, touches: Sequence[Touch]) -> dict[ItemRef, dict[str, Any] | None]:
        """Each touched item as stored now (None: absent), by strongly consistent BatchGetItem."""
        found: dict[ItemRef, dict[str, Any] | None] = {t.ref: None for t in touches}
        by_table: dict[str, list[dict[str, Any]]] = {}
        for t in {t.ref: t for t in touches}.values():
            by_table.setdefault(t.table, []).append(t.key)
        for name, keys in by_table.items():
            for start in range(0, len(keys), 100):
                for item in self._batch_get(name, keys[start : start + 100]):
                    found[item_ref(name, item, self._table_key)] = item
        return found

    def _batch_get(self, table_name: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {table_name: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = self._reader.batch_get_item(RequestItems=request)
            items.extend(response.get("Responses", {}).get(table_name, []))
            request = response.get("UnprocessedKeys") or {}
        return items

    def _price_write(
        self,
        touches: list[Touch],
        before: dict[ItemRef, dict[str, Any] | None],
        parsed: Mapping[str, Any],
        failed: bool,
    ) -> Bill:
        # A refused write changed nothing: priced at its items' sizes as they stand (conditions are checked on them).
        unprocessed = self._unprocessed(parsed)
        applied = [t for t in touches if t.ref not in unprocessed]
        after = before if failed else self._images(applied)
        self._forget(unprocessed)
        self._remember({t.ref: after[t.ref] for t in applied})
        table_units = index_units = 0
        for t in applied:
            cost = item_write_cost(
                ItemWrite(before[t.ref], after[t.ref], t.transactional, t.check_only), self._indexes, self._table_key
            )
            table_units += cost.table
            index_units += cost.indexes
        total = float(table_units + index_units)
        return Bill(
            write_units=total,
            index_write_units=float(index_units),
            failed_write_units=total if failed else 0.0,
        )

    def _unprocessed(self, parsed: Mapping[str, Any]) -> set[ItemRef]:
        """BatchWriteItem's requests left unprocessed: not written."""
        refs = set()
        for name, requests in (parsed.get("UnprocessedItems") or {}).items():
            for request in requests:
                body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
                refs.add(item_ref(name, body, self._table_key))
        return refs

    # --- reads ----------------------------------------------------------------------------------------------

    def _price_read(self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> float:
        if operation in ("Query", "Scan"):
            return self._page_units(operation, params, parsed)
        if operation == "GetItem":
            return self._get_units(params, parsed)
        if operation == "BatchGetItem":
            return self._batch_get_units(params, parsed)
        # TransactGetItems: each item at twice a strongly consistent read
        return sum(
            read_units(item_size(r.get("Item")), consistent=True, transactional=True)
            for r in parsed.get("Responses", [])
        )

    def _page_units(self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> float:
        items = parsed.get("Items", [])
        if any(name in params for name in _NARROWING):
            # Billed for every item the page evaluated, whole: the same page without projection or filter.
            request = {k: v for k, v in params.items() if k not in (*_NARROWING, "ReturnConsumedCapacity")}
            request = _without_unused_names(request)
            call = self._reader.query if operation == "Query" else self._reader.scan
            items = call(**request).get("Items", [])
        return query_read_units(items, consistent=bool(params.get("ConsistentRead")))

    def _get_units(self, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> float:
        item = parsed.get("Item")
        if item is not None and any(name in params for name in _NARROWING):
            item = self._reader.get_item(TableName=params["TableName"], Key=params["Key"], ConsistentRead=True).get(
                "Item"
            )
        return read_units(item_size(item), consistent=bool(params.get("ConsistentRead")))

    def _batch_get_units(self, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> float:
        units = 0.0
        for name, request in params["RequestItems"].items():
            left = {item_ref(name, k, self._table_key) for k in self._unprocessed_keys(parsed, name)}
            processed = [k for k in request["Keys"] if item_ref(name, k, self._table_key) not in left]
            items = parsed.get("Responses", {}).get(name, [])
            if any(narrow in request for narrow in _NARROWING):
                items = self._batch_get(name, processed)  # billed for whole items
            consistent = bool(request.get("ConsistentRead"))
            missing = len(processed) - len(items)  # a key with no item still costs a read
            units += sum(read_units(item_size(i), consistent=consistent) for i in items)
            units += missing * read_units(0, consistent=consistent)
        return units

    @staticmethod
    def _unprocessed_keys(parsed: Mapping[str, Any], table_name: str) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = (parsed.get("UnprocessedKeys") or {}).get(table_name, {}).get("Keys", [])
        return keys


def _without_unused_names(request: dict[str, Any]) -> dict[str, Any]:
    """A Query/Scan request with only the expression names and values its remaining expressions use (DynamoDB
    refuses unused ones)."""
    used_tokens = set(re.findall(r"[#:][A-Za-z0-9_]+", str(request.get("KeyConditionExpression", ""))))
    for part in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        if part in request:
            used = {k: v for k, v in request[part].items() if k in used_tokens}
            if used:
                request[part] = used
            else:
                del request[part]
    return request
