"""Data access for running statistics. Every DynamoDB expression for streams lives here.

A stream's active session is SHARDS partial Welford states, one per item, each
in its own partition (keys.stream_shard_pk). A write reads all shards in one
BatchGetItem, updates one shard (the writer's sticky choice, see `_affinity`)
under optimistic locking (`version`), and writes the audit entry in the same transaction, so an audit
entry never exists without its state change. A reset rewrites every shard and
stores the closed session in one transaction conditioned on every shard's
version, so no value can slip between the final figures and the new session.

From the events stream (`apply_delivered`), a batch's values for one stream merge into one partial state
(Chan's formula) committed to ONE shard chosen from the Kinesis shard id, in the same transaction as the
batch's audit entry (its values with each one's user and time). That shard item carries the marker of the last
record applied (chalicelib/ingest/applied.py); every Put of a shard carries the markers over, a reset's too, so a
batch redelivered after a reset is still recognised, and a batch first applied after a reset counts in the new
session.

Each shard item also carries its values' quantile sketch (chalicelib/pure/sketch.py, bounded, one Binary attribute
`sketch`), updated in the same conditional Put as its Welford state: whatever writes a shard's figures writes its
sketch, exactly once. A closed session's item keeps its merged sketch, so any quantile of it can be answered later.
"""

from __future__ import annotations

import random
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.edge.errors import Conflict
from chalicelib.ingest import applied
from chalicelib.ingest.records import Delivered, ValueEvent
from chalicelib.names.refresh import minute_start
from chalicelib.names.store import NameStore, refreshes_of
from chalicelib.process import runtime
from chalicelib.pure import clock
from chalicelib.pure.sketch import EMPTY, Sketch
from chalicelib.storage import keys
from chalicelib.storage.dynamo import (
    ITEM_IS_NEW,
    LostRace,
    batch_delete,
    batch_get,
    item_key,
    num,
    opt_string,
    partition_key_of,
    read_int,
    read_num,
    read_str,
    retry,
    sort_key_between,
    sort_key_of,
    sort_key_prefix,
)
from chalicelib.storage.table import PARTITION_KEY, SORT_KEY
from chalicelib.streams.welford import Moments, merge_all

# Items a purge Query reads at a time (then deletes, 25 per BatchWriteItem), and partitions purged at once.
PURGE_PAGE = 100
PURGE_PARALLEL = 4

# Values per audit entry (and per commit) from the events stream: an entry stays far below DynamoDB's 400 KB.
AUDIT_MAX_VALUES = 1000

# Each writer (a Lambda container, or a dev-server thread) keeps writing to the
# shard it last succeeded on, and moves to another only after losing a race:
# with no more writers than shards, concurrent writers rarely meet.
_affinity = threading.local()


@dataclass(frozen=True)
class ShardState:
    shard: int
    session: int
    version: int
    moments: Moments
    started_at: int | None = None  # epoch ms of this shard's first value in the session
    started_by: str | None = None
    updated_at: int | None = None
    # The shard item's marker attributes as stored (applied.marker_attrs), carried over by every Put.
    markers: dict[str, Any] = field(default_factory=dict)
    sketch: Sketch = EMPTY  # of the shard's values in the session, bounded
    gen: int = 0  # the stream's incarnation: how many times it was deleted


@dataclass(frozen=True)
class SessionFigures:
    """A session's merged figures: the active one (closed_at None) or a closed one."""

    stream: str
    session: int | None
    moments: Moments
    started_at: int | None
    started_by: str | None
    updated_at: int | None
    closed_at: int | None = None
    closed_by: str | None = None
    sketch: Sketch = EMPTY

    @property
    def has_quantiles(self) -> bool:
        """Whether the sketch covers every value (a session begun before sketches existed does not)."""
        return self.moments.count > 0 and self.sketch.count == self.moments.count


@dataclass(frozen=True)
class AuditEntry:
    value: float
    user: str | None
    at: int
    session: int


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_position: dict[str, Any] | None


def merge_shards(stream: str, shards: Sequence[ShardState]) -> SessionFigures:
    live = [s for s in shards if s.moments.count]
    first = min(live, key=lambda s: s.started_at or 0, default=None)
    session = shards[0].session if shards else None
    return SessionFigures(
        stream=stream,
        session=session if live else None,
        moments=merge_all(s.moments for s in live),
        started_at=first.started_at if first else None,
        started_by=first.started_by if first else None,
        updated_at=max((s.updated_at or 0 for s in live), default=None),
        sketch=EMPTY.merge(*(s.sketch for s in live)).bounded(),
    )


def _audit_entries(item: dict[str, Any]) -> list[AuditEntry]:
    """An audit item's values, newest (last submitted) first. A request's values share its user and time; a batch
    from the events stream (users, ats) has each value's own."""
    values = [float(v["N"]) for v in item["values"]["L"]]
    session = read_int(item["session"])
    if "ats" in item:
        users = [read_str(u) for u in item["users"]["L"]]
        ats = [read_int(a) for a in item["ats"]["L"]]
        entries = [AuditEntry(v, u, a, session) for v, u, a in zip(values, users, ats, strict=True)]
    else:
        user, at = read_str(item.get("user")), read_int(item["at"])
        entries = [AuditEntry(v, user, at, session) for v in values]
    return entries[::-1]


class StreamStore:
    def __init__(self, client: Any, table: str, rng: random.Random | None = None, shards: int = keys.SHARDS) -> None:
        self.client = client
        self.table = table
        self.rng = rng or random.Random()
        # How many items a stream's state is spread over: part of the data's layout, so one value for a table's
        # lifetime (keys.SHARDS; the benchmark compares it with an unsharded table).
        self.shards = shards
        self.names = NameStore(client, table)

    # --- reads --------------------------------------------------------------

    def read_shards(self, stream: str, *, consistent: bool = True) -> list[ShardState]:
        """Every shard's state, all of the same session (re-read while a reset is mid-flight)."""
        request_keys = [item_key(keys.stream_shard_pk(stream, k), keys.STATE_SK) for k in range(self.shards)]

        def attempt(n: int) -> list[ShardState]:
            items = batch_get(self.client, self.table, request_keys, consistent=consistent or n > 0)
            found = {self._shard_of(item): item for item in items}
            # A reset or a delete rewrites every shard in one transaction: shards of two sessions (or incarnations)
            # were read on both sides of one, read again.
            sessions = {(read_int(item["session"]), read_int(item.get("gen"))) for item in found.values()}
            if len(sessions) > 1:
                raise LostRace
            session, gen = sessions.pop() if sessions else (1, 0)
            return [
                self._shard_from_item(k, found[k]) if k in found else ShardState(k, session, 0, Moments(), gen=gen)
                for k in range(self.shards)
            ]

        return retry(attempt, busy="the stream is being reset; retry")

    def snapshot(self, stream: str) -> SessionFigures:
        return merge_shards(stream, self.read_shards(stream))

    def generation(self, stream: str) -> int:
        """The stream's incarnation (how many times it was deleted): every shard holds it, shard 0 says it (one
        consistent read of one item, so that nothing deleted is read once the DELETE answered)."""
        item = self.client.get_item(
            TableName=self.table,
            Key=item_key(keys.stream_shard_pk(stream, 0), keys.STATE_SK),
            ProjectionExpression="gen",
            ConsistentRead=True,
        ).get("Item", {})
        return read_int(item.get("gen"))

    def list_sessions(self, stream: str, limit: int, position: dict[str, Any] | None) -> Page:
        gen = self.generation(stream)
        request: dict[str, Any] = {
            "TableName": self.table,
            **sort_key_prefix(keys.stream_sessions_pk(stream, gen), keys.SESSION_PREFIX),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if position is not None:
            request["ExclusiveStartKey"] = item_key(
                keys.stream_sessions_pk(stream, gen), keys.session_sk(int(position["session"]))
            )
        response = self.client.query(**request)
        sessions = [self._session_from_item(stream, item) for item in response.get("Items", [])]
        more = "LastEvaluatedKey" in response and sessions
        return Page(sessions, {"session": sessions[-1].session} if more else None)

    def list_values(self, stream: str, limit: int, position: dict[str, Any] | None) -> Page:
        """The audit trail, newest first, merged across shards.

        The position names the last audit item read from and how many of its
        values were already returned, so a page may end inside one request's batch.
        """
        upper = str(position["sk"]) if position else keys.VALUE_PREFIX + "\uffff"
        skip = int(position["offset"]) if position else 0
        gen = self.generation(stream)

        def newest_of_shard(k: int) -> list[dict[str, Any]]:
            response = self.client.query(
                TableName=self.table,
                **sort_key_between(keys.stream_audit_pk(stream, gen, k), keys.VALUE_PREFIX, upper),
                ScanIndexForward=False,
                Limit=limit + 1,
            )
            return list(response.get("Items", []))

        # Every shard at once: one round trip's latency, not SHARDS'.
        items = [item for shard_items in runtime.fan_out(newest_of_shard, range(self.shards)) for item in shard_items]
        items.sort(key=sort_key_of, reverse=True)
        entries: list[AuditEntry] = []
        for item in items:
            sk = sort_key_of(item)
            batch = _audit_entries(item)
            start = skip if sk == upper else 0
            for offset in range(start, len(batch)):
                if len(entries) == limit:
                    return Page(entries, {"sk": sk, "offset": offset})
                entries.append(batch[offset])
        return Page(entries, None)

    # --- writes -------------------------------------------------------------

    def add_values(
        self, stream: str, values: Sequence[float], user: str | None, request_id: str, now_ms: int, at_iso: str
    ) -> SessionFigures:
        """Add values to the active session, atomically with their audit entry."""

        def attempt(n: int) -> SessionFigures:
            # The first read may be stale (half the cost): the version condition catches that, and retries read
            # consistently.
            shards = self.read_shards(stream, consistent=n > 0)
            preferred = getattr(_affinity, "shard", None)
            if preferred is None or preferred >= self.shards or n > 0:
                preferred = _affinity.shard = self.rng.randrange(self.shards)
            target = shards[preferred]
            updated = ShardState(
                shard=target.shard,
                session=target.session,
                version=target.version + 1,
                moments=target.moments.add_all(values),
                started_at=target.started_at if target.moments.count else now_ms,
                started_by=target.started_by if target.moments.count else user,
                updated_at=now_ms,
                markers=target.markers,
                sketch=target.sketch.merge(Sketch.of(values)).bounded(),
                gen=target.gen,
            )
            audit = {
                **item_key(keys.stream_audit_pk(stream, target.gen, target.shard), keys.value_sk(at_iso, request_id)),
                "values": {"L": [num(v) for v in values]},
                "user": opt_string(user),
                "at": num(now_ms),
                "session": num(target.session),
            }
            self._commit(
                stream,
                target.gen,
                now_ms,
                [
                    {"Put": self._shard_put(stream, updated, expected_version=target.version)},
                    {"Put": {"TableName": self.table, "Item": audit, "ConditionExpression": ITEM_IS_NEW}},
                ],
            )
            shards[target.shard] = updated
            return merge_shards(stream, shards)

        return retry(attempt, busy="too many concurrent writers on this stream; retry")

    def apply_delivered(self, delivered: Sequence[Delivered]) -> None:
        """Add value events of the events stream exactly once: per stream and Kinesis shard, one transaction per
        AUDIT_MAX_VALUES values (whole records)."""
        groups: dict[tuple[str, str], list[Delivered]] = {}
        for d in delivered:
            assert isinstance(d.event, ValueEvent)
            groups.setdefault((d.event.stream, d.shard_id), []).append(d)
        for (stream, shard_id), values in groups.items():
            for run in applied.chunks(values, AUDIT_MAX_VALUES):
                self._apply_values(stream, shard_id, run)

    def ingest_shard(self, shard_id: str) -> int:
        """The state shard that a Kinesis shard's values commit to: always the same, so it carries the marker."""
        return zlib.crc32(shard_id.encode()) % self.shards

    def _apply_values(self, stream: str, shard_id: str, delivered: Sequence[Delivered]) -> None:
        shard = self.ingest_shard(shard_id)

        def attempt(_: int) -> None:
            shards = self.read_shards(stream)
            target = shards[shard]
            todo = applied.unapplied(delivered, applied.applied_marker(target.markers, shard_id))
            if not todo:
                return
            events = [d.event for d in todo if isinstance(d.event, ValueEvent)]
            batch = Moments().add_all(e.value for e in events)
            names, values = applied.marker_condition(shard_id, todo)
            updated = ShardState(
                shard=shard,
                session=target.session,
                version=target.version + 1,
                moments=target.moments.merge(batch),
                started_at=target.started_at if target.moments.count else events[0].time_ms,
                started_by=target.started_by if target.moments.count else events[0].user,
                updated_at=max(target.updated_at or 0, *(e.time_ms for e in events)),
                markers={**applied.pruned(target.markers, shard_id), names["#applied"]: values[":last"]},
                sketch=target.sketch.merge(Sketch.of(e.value for e in events)).bounded(),
                gen=target.gen,
            )
            self._commit(
                stream,
                target.gen,
                max(e.time_ms for e in events),
                [
                    # The version condition also says that the marker read is still the stored one.
                    {"Put": self._shard_put(stream, updated, expected_version=target.version)},
                    {"Put": self._ingest_audit(stream, target, shard_id, todo, events)},
                ],
            )

        retry(attempt, busy="too many concurrent writers on this stream")

    def _ingest_audit(
        self, stream: str, target: ShardState, shard_id: str, todo: Sequence[Delivered], events: list[ValueEvent]
    ) -> dict[str, Any]:
        """The audit entry of values from the stream: its sort key names the first record, so it is written once."""
        last_at = max(e.time_ms for e in events)
        session = target.session
        item = {
            **item_key(
                keys.stream_audit_pk(stream, target.gen, target.shard),
                keys.value_sk(clock.iso(last_at), f"{shard_id}.{todo[0].sequence_number}"),
            ),
            "values": {"L": [num(e.value) for e in events]},
            "users": {"L": [opt_string(e.user) for e in events]},
            "ats": {"L": [num(e.time_ms) for e in events]},
            "user": opt_string(None),
            "at": num(last_at),
            "session": num(session),
        }
        return {"TableName": self.table, "Item": item, "ConditionExpression": ITEM_IS_NEW}

    def reset(self, stream: str, user: str | None, now_ms: int) -> SessionFigures:
        """Close the active session, keeping its final figures; the next value opens a new one."""

        def attempt(_: int) -> SessionFigures:
            shards = self.read_shards(stream)
            active = merge_shards(stream, shards)
            if active.session is None:
                raise Conflict("the stream has no active session to reset", code="no_active_session")
            closed = replace(active, closed_at=now_ms, closed_by=user)
            transaction = [
                {
                    "Put": self._shard_put(
                        stream,
                        ShardState(s.shard, s.session + 1, s.version + 1, Moments(), markers=s.markers, gen=s.gen),
                        s.version,
                    )
                }
                for s in shards
            ]
            transaction.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": self._session_item(closed, shards[0].gen),
                        "ConditionExpression": ITEM_IS_NEW,
                    }
                }
            )
            self.client.transact_write_items(TransactItems=transaction)
            return closed

        return retry(attempt, busy="the stream is too busy to reset; retry")

    def _commit(self, stream: str, gen: int, now_ms: int, transaction: list[dict[str, Any]]) -> None:
        """Commit a write's transaction, with the stream's registry entry when this writer has not registered the
        name in this minute (chalicelib/names/refresh.py): the entry is written with the values or not at all, and a
        DELETE (which bumps every shard's version) cannot fall between them."""
        refreshes = refreshes_of(self.client)
        registering = (self.table, stream, gen)
        due = refreshes.due(registering, now_ms)
        if due:
            transaction = [*transaction, {"Put": self.names.entry_put("stream", stream, minute_start(now_ms))}]
        self.client.transact_write_items(TransactItems=transaction)
        if due:
            refreshes.done(registering, now_ms)

    # --- deletion -----------------------------------------------------------

    def delete(self, stream: str, now_ms: int) -> bool:
        """End the stream's incarnation. ONE transaction: every shard updated into the next incarnation (`gen` + 1,
        session 1, no values, `version` + 1; its ingest markers untouched, so a batch applied before is still
        recognised), on condition it is still in the incarnation read; the purge of the old incarnation's audit
        entries and closed sessions recorded; the registry entry removed. From its commit no read reaches the old
        incarnation's items (reads and writes go through `gen`), and a write that raced it either committed before
        (its values are in the old incarnation: purged whole) or is refused by its version condition and retried
        into the new one. The condition is on `gen` only, so writers that keep changing the shards' versions never
        starve a delete; two deletes racing: one wins, the other finds nothing left. False (nothing written) when
        the incarnation holds nothing: the stream never existed, or was deleted and nothing came since."""

        def attempt(_: int) -> bool:
            shards = self.read_shards(stream)
            if all(s.moments.count == 0 and s.session == 1 for s in shards):
                return False  # no value and no closed session (a reset needs values): nothing in this incarnation
            gen = shards[0].gen
            transaction: list[dict[str, Any]] = [
                {"Update": self._shard_emptied(stream, k, gen)} for k in range(self.shards)
            ]
            transaction.append({"Put": self.names.purge_put("stream", stream, gen, now_ms)})
            transaction.append({"Delete": self.names.entry_delete("stream", stream)})
            self.client.transact_write_items(TransactItems=transaction)
            return True

        return retry(attempt, busy="the stream is too busy to delete; retry")

    def _shard_emptied(self, stream: str, shard: int, gen: int) -> dict[str, Any]:
        """The update of a shard into incarnation gen + 1, empty, on condition it is in incarnation `gen`."""
        return {
            "TableName": self.table,
            "Key": item_key(keys.stream_shard_pk(stream, shard), keys.STATE_SK),
            "UpdateExpression": "SET #g = :next, #s = :one, #v = if_not_exists(#v, :zero) + :one, #c = :zero, "
            "#mean = :zero, #m2 = :zero, #sum = :zero REMOVE #min, #max, started_at, updated_at, started_by, sketch",
            "ConditionExpression": "attribute_not_exists(#g)" if gen == 0 else "#g = :gen",
            "ExpressionAttributeNames": {
                "#g": "gen",
                "#s": "session",
                "#v": "version",
                "#c": "count",
                "#mean": "mean",
                "#m2": "m2",
                "#sum": "sum",
                "#min": "min",
                "#max": "max",
            },
            "ExpressionAttributeValues": {
                ":next": num(gen + 1),
                ":one": num(1),
                ":zero": num(0),
                **({":gen": num(gen)} if gen else {}),
            },
        }

    def purge(self, stream: str, gen: int, spent: Callable[[], bool]) -> tuple[int, bool]:
        """Remove the audit entries and closed sessions of the stream's incarnation `gen` (deleted), a bounded
        page at a time until `spent()`: (items removed, whether none is left). Each page is what is left, so a
        purge stopped anywhere (a crash, the budget) resumes where it was on the next call."""
        parts = [(keys.stream_audit_pk(stream, gen, k), keys.VALUE_PREFIX) for k in range(self.shards)]
        parts.append((keys.stream_sessions_pk(stream, gen), keys.SESSION_PREFIX))

        def drain(part: tuple[str, str]) -> tuple[int, bool]:
            pk, prefix = part
            removed = 0
            while not spent():
                response = self.client.query(
                    TableName=self.table,
                    **sort_key_prefix(pk, prefix),
                    ProjectionExpression=f"{PARTITION_KEY}, {SORT_KEY}",
                    Limit=PURGE_PAGE,
                )
                found = [item_key(pk, sort_key_of(item)) for item in response.get("Items", [])]
                if not found:
                    return removed, True
                batch_delete(self.client, self.table, found)
                removed += len(found)
            return removed, False

        outcomes = runtime.fan_out(drain, parts, most=PURGE_PARALLEL)
        return sum(n for n, _ in outcomes), all(done for _, done in outcomes)

    # --- item shapes --------------------------------------------------------

    def _shard_put(self, stream: str, state: ShardState, expected_version: int) -> dict[str, Any]:
        m = state.moments
        item: dict[str, Any] = {
            **item_key(keys.stream_shard_pk(stream, state.shard), keys.STATE_SK),
            "session": num(state.session),
            "version": num(state.version),
            "count": num(m.count),
            "mean": num(m.mean),
            "m2": num(m.m2),
            "sum": num(m.sum),
        }
        if state.gen:
            item["gen"] = num(state.gen)
        if m.count:
            item.update(min=num(m.min), max=num(m.max))  # type: ignore[arg-type]
            item.update(started_at=num(state.started_at or 0), updated_at=num(state.updated_at or 0))
            item["started_by"] = opt_string(state.started_by)
            item["sketch"] = {"B": state.sketch.encode()}
        item.update(state.markers)
        put: dict[str, Any] = {"TableName": self.table, "Item": item}
        if expected_version == 0:  # read_shards reports an absent shard as version 0
            put["ConditionExpression"] = ITEM_IS_NEW
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": num(expected_version)}
        return put

    def _session_item(self, closed: SessionFigures, gen: int) -> dict[str, Any]:
        m = closed.moments
        return {
            **item_key(keys.stream_sessions_pk(closed.stream, gen), keys.session_sk(closed.session or 0)),
            "session": num(closed.session or 0),
            "count": num(m.count),
            "mean": num(m.mean),
            "m2": num(m.m2),
            "sum": num(m.sum),
            "min": num(m.min or 0.0),
            "max": num(m.max or 0.0),
            "started_at": num(closed.started_at or 0),
            "started_by": opt_string(closed.started_by),
            "updated_at": num(closed.updated_at or 0),
            "closed_at": num(closed.closed_at or 0),
            "closed_by": opt_string(closed.closed_by),
            "sketch": {"B": closed.sketch.encode()},
        }

    @staticmethod
    def _shard_of(item: dict[str, Any]) -> int:
        return int(partition_key_of(item).rsplit("#", 1)[1])

    @staticmethod
    def _moments_from_item(item: dict[str, Any]) -> Moments:
        return Moments(
            count=read_int(item.get("count")),
            mean=read_num(item.get("mean")) or 0.0,
            m2=read_num(item.get("m2")) or 0.0,
            min=read_num(item.get("min")),
            max=read_num(item.get("max")),
            sum=read_num(item.get("sum")) or 0.0,
        )

    @staticmethod
    def _sketch_from_item(item: dict[str, Any]) -> Sketch:
        stored = item.get("sketch")
        return Sketch.decode(bytes(stored["B"])) if stored else EMPTY

    def _shard_from_item(self, shard: int, item: dict[str, Any]) -> ShardState:
        return ShardState(
            shard=shard,
            session=read_int(item["session"]),
            version=read_int(item["version"]),
            moments=self._moments_from_item(item),
            started_at=read_int(item.get("started_at")) or None,
            started_by=read_str(item.get("started_by")),
            updated_at=read_int(item.get("updated_at")) or None,
            markers=applied.marker_attrs(item),
            sketch=self._sketch_from_item(item),
            gen=read_int(item.get("gen")),
        )

    def _session_from_item(self, stream: str, item: dict[str, Any]) -> SessionFigures:
        return SessionFigures(
            stream=stream,
            session=read_int(item["session"]),
            moments=self._moments_from_item(item),
            started_at=read_int(item.get("started_at")) or None,
            started_by=read_str(item.get("started_by")),
            updated_at=read_int(item.get("updated_at")) or None,
            closed_at=read_int(item.get("closed_at")) or None,
            closed_by=read_str(item.get("closed_by")),
            sketch=self._sketch_from_item(item),
        )
