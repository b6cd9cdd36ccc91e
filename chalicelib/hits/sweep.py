"""The hit counters' schedule (every minute): fold hot paths' overflow into their counters, then move the ranking
entries of every path listed since the last run.

Folding: each marked overflow shard's hits of a day move into the path's counter in one transaction: the shard gives
them up (conditioned on holding exactly those), the counter takes them as any hits of that day (rollover and late
days included, chalicelib/hits/counts.py), and the path counts as distinct then if it was new. Their totals were
added when they overflowed. A shard left empty loses its marker.

Ranking: a minute's lists (HITSWEEP#{minute}#{p}: the paths the events stream's consumer did not move at once, and
the paths of direct hits, under the minute their count has surely landed by) are read once the minute is over by
SWEEP_LAG_S, their paths' counts are read, and their entries put (each conditioned on its count growing). A HITSWEPT marker then says
the minute is done. Work per run is bounded: minutes oldest first, stopping when the run's budget runs low; the
next run goes on from there. Minutes older than LOOKBACK_MINUTES are not looked at again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.edge.errors import Busy
from chalicelib.hits.store import DELTA_DAY, HitStore, counter_of, delta_days
from chalicelib.process import request_context, runtime
from chalicelib.pure import clock
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import error_code, item_key, num, query_items, retry, sort_key_between, string

LOOKBACK_MINUTES = 60
SWEEP_LAG_S = 15  # a list written just before its minute ended has arrived by then
RESERVE_S = 3.0  # stop taking on minutes with less than this left of the run's budget
FOLD_ATTEMPTS = 5


@dataclass(frozen=True)
class Swept:
    folded: int  # hits moved from overflow shards into counters
    minutes: int  # minutes whose listed paths were ranked
    ranked: int  # ranking entries put


def sweep(store: HitStore, now_s: float | None = None) -> Swept:
    now_s = clock.now() if now_s is None else now_s
    folded = fold(store)
    minutes, ranked = rank_listed(store, now_s)
    return Swept(folded, minutes, ranked)


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
    """Rank the paths of every finished minute not swept yet, oldest first; (minutes done, entries put)."""
    last = int((now_s - SWEEP_LAG_S) // 60) - 1  # the newest minute over by SWEEP_LAG_S
    first = last - LOOKBACK_MINUTES + 1
    swept = _swept(store, first, last)
    minutes = ranked = 0
    for minute in range(first, last + 1):
        if minute in swept:
            continue
        left = request_context.remaining()
        if left is not None and left < RESERVE_S:
            break
        ranked += _rank_minute(store, minute)
        store.client.put_item(
            TableName=store.table,
            Item={
                **item_key(keys.HIT_SWEPT_PK, keys.minute_sk(minute)),
                table.TTL_ATTRIBUTE: num(minute * 60 + 2 * LOOKBACK_MINUTES * 60),
            },
        )
        minutes += 1
    return minutes, ranked


def _swept(store: HitStore, first: int, last: int) -> set[int]:
    request = {
        "TableName": store.table,
        **sort_key_between(keys.HIT_SWEPT_PK, keys.minute_sk(first), keys.minute_sk(last)),
        "ConsistentRead": True,
    }
    return {int(item[table.SORT_KEY]["S"]) for item in query_items(store.client, request)}


def _rank_minute(store: HitStore, minute: int) -> int:
    """Put the ranking entries of every path listed under `minute`; how many."""
    lists = runtime.fan_out(
        lambda p: query_items(
            store.client,
            {
                "TableName": store.table,
                "KeyConditionExpression": f"{table.PARTITION_KEY} = :pk",
                "ExpressionAttributeValues": {":pk": string(keys.hit_sweep_pk(minute, p))},
            },
        ),
        range(keys.HIT_SWEEP_PARTITIONS),
    )
    listed = {(e["L"][0]["S"], e["L"][1]["S"]) for items in lists for item in items for e in item["entries"]["L"]}
    if not listed:
        return 0
    counters = store.counters(path for _, path in listed)
    moves = {(keys.HIT_ALL, path, counters[path].n) for _, path in listed if path in counters}
    moves |= {(day, path, store.day_count(path, day, counters.get(path))) for day, path in listed}
    moves = {move for move in moves if move[2] > 0}
    runtime.fan_out(lambda move: store.rank(*move), sorted(moves))
    return len(moves)
