"""The events stream's hits: a consumer batch counted exactly once, at about one write per path it names.

Per Kinesis shard of the batch:
1. Each path's events, in runs of one day (one run, but around midnight or for late events), each run one
   conditional UpdateItem of the path's counter carrying the marker of its last record (chalicelib/ingest/
   applied.py): no read, no transaction. It assumes the counter is new or on the run's day, and ReturnValues
   ALL_OLD says what it was. A run of another day (a path's first hits of a new day, or late ones) is a
   transaction with the history item it files or adds to, after a read. A redelivered run finds its marker applied
   and changes nothing.
2. The batch's totals: per scope (all time, each day), one Update of the shard's own totals item, with the marker of
   the last event it counts. Its hits are the events after the item's marker; its new paths are those whose counter
   (or day) was begun by one of those events: the counter records who began it (`created`, `started`, and a past
   day's history item its own `started`), so a redelivered batch finds the same answer. The totals are written after
   every path is counted, and the consumer hands a batch's hits to this applier as one group, so when any path fails
   all of the batch's hit records come back: the totals are the sum of the counts once a batch is applied.
3. The ranking: a path's first change in a minute moves its entries at once (its counts came back with the update);
   later changes, and changes of another day, are listed (one item per batch) for the sweep (chalicelib/hits/
   sweep.py), which moves them within a stated bound (chalicelib/hits/slots.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.hits import counts, days, slots
from chalicelib.hits.counts import Change, Counter
from chalicelib.ingest import applied
from chalicelib.ingest.records import Delivered, HitEvent
from chalicelib.process import runtime, settings
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.storage.dynamo import (
    ITEM_IS_NEW,
    LostRace,
    condition_failed,
    item_key,
    lost_race,
    num,
    read_int,
    retry,
    string,
)

if TYPE_CHECKING:
    from chalicelib.hits.store import HitStore


@dataclass(frozen=True)
class Run:
    """Consecutive events of one path and one day, in stream order."""

    path: str
    day: str
    events: list[Delivered]


@dataclass
class Counted:
    """What counting a path's runs left: who began its counter and each day it touched (for the totals), its
    counter after, and whether its ranking entries are to move at once (else the sweep moves them)."""

    path: str
    created: str | None = None
    started: dict[str, str | None] = field(default_factory=dict)
    counter: Counter | None = None
    rank_now: bool = False


def who(d: Delivered) -> str:
    """A record of a shard that began something, comparable to others of its shard by its marker."""
    return f"{d.shard_id}#{d.marker}"


def began_in(began: str, shard_id: str, low: str, high: str) -> bool:
    """Whether `began` names a record of `shard_id` with a marker from low to high."""
    prefix = f"{shard_id}#"
    return began.startswith(prefix) and low <= began[len(prefix) :] <= high


def day_of(d: Delivered) -> str:
    assert isinstance(d.event, HitEvent)
    return days.counting_day(d.event.time_ms / 1000)[0]


def runs_by_path(delivered: Sequence[Delivered]) -> dict[str, list[Run]]:
    """Each path's events in runs of one day, in stream order."""
    runs: dict[str, list[Run]] = {}
    for d in delivered:
        assert isinstance(d.event, HitEvent)
        path_runs = runs.setdefault(d.event.path, [])
        if path_runs and path_runs[-1].day == day_of(d):
            path_runs[-1].events.append(d)
        else:
            path_runs.append(Run(d.event.path, day_of(d), [d]))
    return runs


def apply_batch(store: HitStore, delivered: Sequence[Delivered]) -> None:
    for shard_id, events in applied.by_shard(delivered).items():
        _apply_shard(store, shard_id, events)


def _apply_shard(store: HitStore, shard_id: str, events: list[Delivered]) -> None:
    now = clock.now()
    minute = int(now // 60)
    results = runtime.fan_out(
        lambda runs: _count_path(store, shard_id, runs, minute), list(runs_by_path(events).values())
    )
    _write_totals(store, shard_id, events, results)
    # Listed under the slot by which this event's writes have surely landed: no call starts after its budget.
    _rank(store, shard_id, events[0], results, slots.listing_slot(now, settings.get().worst_case_s))


# --- 1. each path ---------------------------------------------------------------------------------------------


def _count_path(store: HitStore, shard_id: str, runs: list[Run], minute: int) -> Counted:
    result = Counted(runs[0].path)
    for run in runs:
        _count_run(store, shard_id, run, minute, result)
    # Only a path counted in one same-day increment knows its counts without a read.
    result.rank_now = result.rank_now and len(runs) == 1
    return result


def _count_run(store: HitStore, shard_id: str, run: Run, minute: int, result: Counted) -> None:
    todo = list(run.events)

    def attempt(_: int) -> None:
        nonlocal todo
        try:
            old = _increment(store, shard_id, run, todo, minute)
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            item: dict[str, Any] = dict(exc.response).get("Item") or {}  # type: ignore[assignment]
            todo = applied.unapplied(todo, applied.applied_marker(item, shard_id))
            if not todo:  # applied by an earlier delivery: what it began is read back
                _read_back(store, run, item, result)
                return
            counter = _counter(item)
            if counter is None or counter.day == run.day:
                raise LostRace from None  # only the marker had moved on: count what is left
            _count_other_day(store, shard_id, run, todo, counter, item, result)
            return
        _note_increment(run, todo, old, minute, result)
        _prune(store, run.path, shard_id, old)

    # A cancelled transaction (the counter changed since it was read): read and decide again.
    retry(attempt, lost=lost_race, busy="the path is too busy to count its streamed hits")


def _counter(item: dict[str, Any]) -> Counter | None:
    from chalicelib.hits.store import counter_of

    return counter_of(item)


def _increment(store: HitStore, shard_id: str, run: Run, todo: list[Delivered], minute: int) -> dict[str, Any]:
    """The run's hits as one increment of a counter that is new or on the run's day; its attributes as they were."""
    names, values = applied.marker_condition(shard_id, todo)
    response = store.client.update_item(
        TableName=store.table,
        Key=item_key(keys.hit_pk(run.path), keys.HIT_COUNT_SK),
        UpdateExpression=(
            "SET #day = :day, #path = :path, #base = if_not_exists(#base, :zero), "
            "#created = if_not_exists(#created, :began), #started = if_not_exists(#started, :began), "
            "#ranked = :minute, #applied = :last ADD #n :k"
        ),
        ConditionExpression=f"({ITEM_IS_NEW} OR #day = :day) AND {applied.NOT_APPLIED}",
        ExpressionAttributeNames={
            **names,
            "#n": "n",
            "#day": "day",
            "#base": "day_base",
            "#path": "path",
            "#created": "created",
            "#started": "started",
            "#ranked": "ranked",
        },
        ExpressionAttributeValues={
            **values,
            ":k": num(len(todo)),
            ":day": string(run.day),
            ":path": string(run.path),
            ":zero": num(0),
            ":began": string(who(todo[0])),
            ":minute": num(minute),
        },
        # The item as it was (never charged as a read): was it new, who had begun it, when it was last ranked.
        ReturnValues="ALL_OLD",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    old: dict[str, Any] = response.get("Attributes", {})
    return old


def _prune(store: HitStore, path: str, shard_id: str, old: dict[str, Any]) -> None:
    """Drop the markers of the counter's closed ancestor shards (applied.pruning): a write of its own, since the
    increment did not read the item first; only after a reshard, once per counter."""
    remove, names = applied.pruning(old, shard_id)
    if names:
        store.client.update_item(
            TableName=store.table,
            Key=item_key(keys.hit_pk(path), keys.HIT_COUNT_SK),
            UpdateExpression=remove.strip(),
            ExpressionAttributeNames=names,
        )


def _note_increment(run: Run, todo: list[Delivered], old: dict[str, Any], minute: int, result: Counted) -> None:
    began = who(todo[0])
    result.created = old["created"]["S"] if "created" in old else began
    result.started[run.day] = old["started"]["S"] if "started" in old else began
    result.counter = Counter(read_int(old.get("n")) + len(todo), run.day, read_int(old.get("day_base")))
    # The path's first change this minute moves its ranking entries now; later ones wait for the sweep.
    result.rank_now = read_int(old.get("ranked"), default=-1) < minute


def _count_other_day(
    store: HitStore,
    shard_id: str,
    run: Run,
    todo: list[Delivered],
    counter: Counter,
    item: dict[str, Any],
    result: Counted,
) -> None:
    """A run of another day than the counter's: a rollover (the finished day filed) or late hits (added to their
    day's history), in one transaction with the marker, conditioned on the counter as read."""
    began = who(todo[0])
    before = item.get("started", {}).get("S", "")
    writes = store.change_writes(run.path, run.day, len(todo), counter, began=began, began_before=before)
    update = writes[0]["Update"]
    names, values = applied.marker_condition(shard_id, todo)
    update["UpdateExpression"] = update["UpdateExpression"].replace("SET ", "SET #applied = :last, ", 1)
    update["ConditionExpression"] += f" AND {applied.NOT_APPLIED}"
    update["ExpressionAttributeNames"].update(names)
    update["ExpressionAttributeValues"].update(values)
    store.client.transact_write_items(TransactItems=writes)
    result.created = item.get("created", {}).get("S")
    late = counts.change_of(counter, run.day) is Change.LATE
    # A late day's history keeps whoever began it first: read it back (rare: late hits of a day).
    result.started[run.day] = _history_started(store, run.path, run.day) if late else began
    result.counter = counts.after(counter, run.day, len(todo))


def _history_started(store: HitStore, path: str, day: str) -> str | None:
    key = item_key(keys.hit_day_pk(path), day)
    item = store.client.get_item(TableName=store.table, Key=key, ConsistentRead=True).get("Item", {})
    return item["started"]["S"] if "started" in item else None


def _read_back(store: HitStore, run: Run, item: dict[str, Any], result: Counted) -> None:
    """A run applied by an earlier delivery: who began the counter and the run's day, for the totals."""
    counter = _counter(item)
    result.created = item.get("created", {}).get("S")
    if counter is not None and counter.day == run.day:
        result.started[run.day] = item.get("started", {}).get("S")
    else:
        result.started[run.day] = _history_started(store, run.path, run.day)
    result.counter = counter


# --- 2. the totals --------------------------------------------------------------------------------------------


def _write_totals(store: HitStore, shard_id: str, events: list[Delivered], counted: list[Counted]) -> None:
    """Per scope, the shard's totals item gains the hits after its marker and the paths those hits began."""
    scopes: dict[str, list[Delivered]] = {keys.HIT_ALL: list(events)}
    for d in events:
        scopes.setdefault(day_of(d), []).append(d)
    runtime.fan_out(lambda scope: _add_totals(store, shard_id, scope, scopes[scope], counted), list(scopes))


def _add_totals(store: HitStore, shard_id: str, scope: str, events: list[Delivered], counted: list[Counted]) -> None:
    writer = keys.hit_stream_writer(shard_id)
    key = item_key(keys.hit_totals_pk(scope), writer)
    item = store.client.get_item(TableName=store.table, Key=key, ConsistentRead=True).get("Item")
    todo = applied.unapplied(events, applied.applied_marker(item, shard_id))
    if not todo:
        return
    low, high = todo[0].marker, todo[-1].marker
    began = [c.created if scope == keys.HIT_ALL else c.started.get(scope) for c in counted]
    distinct = sum(1 for b in began if b is not None and began_in(b, shard_id, low, high))
    update = store.totals_update(scope, writer, len(todo), distinct)
    names, values = applied.marker_condition(shard_id, todo)
    update["UpdateExpression"] += (
        ", #applied = :last" if "SET" in update["UpdateExpression"] else " SET #applied = :last"
    )
    update["ConditionExpression"] = applied.NOT_APPLIED
    update["ExpressionAttributeNames"] = {**update.get("ExpressionAttributeNames", {}), **names}
    update["ExpressionAttributeValues"].update(values)
    store.client.update_item(**update)


# --- 3. the ranking ---------------------------------------------------------------------------------------------


def _rank(store: HitStore, shard_id: str, first: Delivered, counted: list[Counted], slot: int) -> None:
    moves = [
        move
        for c in counted
        if c.rank_now and c.counter is not None
        for move in ((keys.HIT_ALL, c.path, c.counter.n), (c.counter.day, c.path, c.counter.day_count))
    ]
    runtime.fan_out(lambda move: store.rank(*move), moves)
    later = sorted((day, c.path) for c in counted if not c.rank_now for day in c.started)
    if later:
        store.put_listing(slot, keys.hit_sweep_partition(shard_id), f"b{who(first)}", later)
