"""The hit counters' schedule (every minute): fold hot paths' overflow into their counters, then move the ranking
entries of every path listed since the last run.

Folding: each marked overflow shard's hits of a day move into the path's counter in one transaction: the shard gives
them up (conditioned on holding exactly those), the counter takes them as any hits of that day (rollover and late
days included, chalicelib/hits/counts.py), and the path counts as distinct then if it was new. Their totals were
added when they overflowed. A shard left empty loses its marker.

Ranking: the paths the events stream's consumer did not move at once, and the paths of direct hits, are listed under
slots of ten seconds (HITSWEEP#{slot}#{p}, chalicelib/hits/slots.py: the slot by which their counts have surely
landed). A pass ranks every slot over by slots.LAG_S and not done yet, oldest first, in rounds: a round reads the lists
of slots until it holds ROUND_ENTRIES, reads their paths' counts once, and puts their entries (each conditioned on
its count growing); a HITSWEPT marker per slot then says it is done. So a path listed in several slots a pass takes
moves once: one pass a minute moves a path at most once a minute. Work per pass is bounded: it stops taking on slots when its budget runs low, and the next pass goes on from
there. Slots older than LOOKBACK_SLOTS are not looked at again. The schedule fires once a minute (EventBridge's
finest), so one run makes `hit_rank_passes` passes, evenly spaced (`passes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.edge.errors import Busy
from chalicelib.hits import slots
from chalicelib.hits.store import DELTA_DAY, HitStore, counter_of, delta_days
from chalicelib.process import request_context, runtime, settings
from chalicelib.pure import clock
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import error_code, item_key, num, query_items, retry, sort_key_between, string

LOOKBACK_SLOTS = 900 // slots.SLOT_S  # a quarter of an hour, as compaction's
RESERVE_S = 3.0  # stop taking on slots with less than this left of the pass's budget
ROUND_ENTRIES = 5_000  # a round ranks the listings of slots, oldest first, until it holds this many (bounded work)
FOLD_ATTEMPTS = 5
SCHEDULE_S = 60  # the schedule's period


@dataclass(frozen=True)
class Swept:
    folded: int = 0  # hits moved from overflow shards into counters
    slots: int = 0  # slots whose listed paths were ranked
    ranked: int = 0  # ranking entries put

    def __add__(self, other: Swept) -> Swept:
        return Swept(self.folded + other.folded, self.slots + other.slots, self.ranked + other.ranked)


def sweep(store: HitStore, now_s: float | None = None) -> Swept:
    now_s = clock.now() if now_s is None else now_s
    folded = fold(store)
    done, ranked = rank_listed(store, now_s)
    return Swept(folded, done, ranked)


def passes(
    run_pass: Callable[[], Swept],
    count: int,
    run_left_s: Callable[[], float],
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Swept:
    """`count` passes, evenly spaced over the schedule's period from now, while the run has time left for the next
    (a pass's work is bounded by its own budget)."""
    interval = SCHEDULE_S / count
    started = monotonic()
    total = run_pass()
    for k in range(1, count):
        wait = started + k * interval - monotonic()
        if run_left_s() < wait + settings.get().worst_case_s:
            break
        sleep(max(0.0, wait))
        total += run_pass()
    return total


# --- folding overflow ---------------------------------------------------------------------------------------------


def fold(store: HitStore) -> int:
    """Move every marked overflow shard's hits into its counter; the number of hits moved."""
    moved = 0
    for shard in range(keys.HIT_DELTA_SHARDS):
        for marker in store.index_items(keys.hit_fold_pk(shard)):
            moved += _fold_shard(store, marker["path"]["S"], shard, marker)
    return moved


def _fold_shard(store: HitStore, path: str, shard: int, marker: dict[str, Any]) -> int:
    delta_key = item_key(keys.hit_delta_pk(path, shard), keys.HIT_COUNT_SK)
    moved = 0
    try:
        delta = store.get_item(delta_key) or {}
        for day, hits in sorted(delta_days(delta).items()):
            moved += retry(
                lambda _, day=day, hits=hits: _fold_day(store, path, shard, day, hits),  # type: ignore[misc]
                attempts=FOLD_ATTEMPTS,
                busy="the path is too hot to fold",
            )
        _drop_marker(store, delta_key, marker)
    except Busy:
        pass  # still busy: the marker stays, the next run tries again
    return moved


def _fold_day(store: HitStore, path: str, shard: int, day: str, hits: int) -> int:
    counter_item = store.get_item(item_key(keys.hit_pk(path), keys.HIT_COUNT_SK)) or {}
    state = counter_of(counter_item)
    writer = keys.hit_direct_writer(shard)
    writes = store.change_writes(
        path, day, hits, state, began_before=counter_item.get("started", {}).get("S", "direct"), totals=(writer, 0)
    )
    give_up = {
        "Update": {
            "TableName": store.table,
            "Key": item_key(keys.hit_delta_pk(path, shard), keys.HIT_COUNT_SK),
            "UpdateExpression": "REMOVE #d ADD #pending :minus",
            "ConditionExpression": "#d = :hits",
            "ExpressionAttributeNames": {"#d": f"{DELTA_DAY}{day}", "#pending": "pending"},
            "ExpressionAttributeValues": {":hits": num(hits), ":minus": num(-hits)},
        }
    }
    store.client.transact_write_items(TransactItems=[give_up, *writes])
    store.rank_path(path, {day})
    return hits


def _drop_marker(store: HitStore, delta_key: dict[str, Any], marker: dict[str, Any]) -> None:
    """The marker goes once its shard holds nothing (an overflow since the fold keeps it)."""
    marker_key = {name: marker[name] for name in (table.PARTITION_KEY, table.SORT_KEY)}
    try:
        store.client.transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": store.table,
                        "Key": delta_key,
                        "ConditionExpression": "attribute_not_exists(#pending) OR #pending = :zero",
                        "ExpressionAttributeNames": {"#pending": "pending"},
                        "ExpressionAttributeValues": {":zero": num(0)},
                    }
                },
                {"Delete": {"TableName": store.table, "Key": marker_key}},
            ]
        )
    except ClientError as exc:
        if error_code(exc) != "TransactionCanceledException":
            raise


# --- ranking listed paths -------------------------------------------------------------------------------------------


def rank_listed(store: HitStore, now_s: float) -> tuple[int, int]:
    """Rank the paths of every slot over and not swept yet, oldest first; (slots done, entries put). A path listed
    in several of the slots a round takes moves once."""
    last = slots.newest_rankable(now_s)
    first = last - LOOKBACK_SLOTS + 1
    swept = _swept(store, first, last)
    pending = [slot for slot in range(first, last + 1) if slot not in swept]
    done = ranked = 0
    while pending and _time_left():
        round_slots: list[int] = []
        listed: set[tuple[str, str]] = set()
        while pending and len(listed) < ROUND_ENTRIES and _time_left():
            round_slots.append(pending.pop(0))
            listed |= _listed(store, round_slots[-1])
        ranked += _rank(store, listed)
        runtime.fan_out(lambda slot: _mark_swept(store, slot), round_slots)
        done += len(round_slots)
    return done, ranked


def _time_left() -> bool:
    left = request_context.remaining()
    return left is None or left >= RESERVE_S


def _mark_swept(store: HitStore, slot: int) -> None:
    store.client.put_item(
        TableName=store.table,
        Item={
            **item_key(keys.HIT_SWEPT_PK, keys.hit_swept_sk(slot)),
            table.TTL_ATTRIBUTE: num(int(slots.slot_end(slot)) + 2 * LOOKBACK_SLOTS * slots.SLOT_S),
        },
    )


def _swept(store: HitStore, first: int, last: int) -> set[int]:
    request = {
        "TableName": store.table,
        **sort_key_between(keys.HIT_SWEPT_PK, keys.hit_swept_sk(first), keys.hit_swept_sk(last)),
        "ConsistentRead": True,
    }
    return {int(item[table.SORT_KEY]["S"]) for item in query_items(store.client, request)}


def _listed(store: HitStore, slot: int) -> set[tuple[str, str]]:
    """The (day, path) entries listed under `slot`."""
    lists = runtime.fan_out(
        lambda p: query_items(
            store.client,
            {
                "TableName": store.table,
                "KeyConditionExpression": f"{table.PARTITION_KEY} = :pk",
                "ExpressionAttributeValues": {":pk": string(keys.hit_sweep_pk(slot, p))},
            },
        ),
        range(keys.HIT_SWEEP_PARTITIONS),
    )
    return {(e["L"][0]["S"], e["L"][1]["S"]) for items in lists for item in items for e in item["entries"]["L"]}


def _rank(store: HitStore, listed: set[tuple[str, str]]) -> int:
    """Put the ranking entries of the listed paths at their counts now; how many."""
    if not listed:
        return 0
    counters = store.counters(path for _, path in listed)
    moves = {(keys.HIT_ALL, path, counters[path].n) for _, path in listed if path in counters}
    moves |= {(day, path, store.day_count(path, day, counters.get(path))) for day, path in listed}
    moves = {move for move in moves if move[2] > 0}
    runtime.fan_out(lambda move: store.rank(*move), sorted(moves))
    return len(moves)
