"""Data access for hit counters: the items a hit changes and the reads of counts, totals and rankings. Every
DynamoDB expression for hits lives in this package (this module, `streamed.py` for the events stream's batches,
`sweep.py` for the schedule).

The items (chalicelib/storage/keys.py):
- the path's counter `HIT#{path}`: all-time count and its current day's (chalicelib/hits/counts.py), one write for
  both scopes; its past days are history items `HITDAY#{path}` / {day};
- the service totals, one item per writer and scope (`HITTOTAL#{scope}` / d{k} or s{stream shard}), read with one
  Query: each writer adds to its own item, so the totals are the sum of what every writer applied;
- the ranking entries, one item per path and scope (`HITR#{scope}#{path}`) in the `ranking` GSI, off the counts'
  write: a direct hit moves its path's entries right after counting it; the events stream's consumer moves a path's
  entries on its first change of a minute and lists the rest for the sweep (chalicelib/hits/sweep.py), which moves
  them within a stated bound (chalicelib/hits/slots.py; 57 s by default). An entry's write is conditioned on its count growing, so a late writer never
  puts an older count over a newer one.

A direct hit (`record`) is one transaction: the counter, and the direct writer's totals of both scopes, so the
totals stay the sum of the counts whatever fails when, and botocore's resend of it is recognised (its token). The
transaction assumes the counter is already on today (the common case) and is conditioned on it; when it is not
(a new path, a new day), it reads the counter and writes what that state needs, conditioned on it.

Hot paths: a counter item takes ~1,000 write units/s, so ~500 direct hits/s (a transactional write is 2 units).
When the counter's transaction is throttled (or conflicts), the hit goes to one of HIT_DELTA_SHARDS delta items
(random shard, own partition) with the same totals, and the first hit of a delta shard since its last fold writes
a marker indexed under HITFOLD#{k}; the sweep moves each marked delta into the counter. Counts read include
unfolded deltas.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.hits import counts, days, ranking, slots
from chalicelib.hits.counts import Change, Counter
from chalicelib.hits.ranking import Entry
from chalicelib.ingest.records import Delivered
from chalicelib.process import runtime, settings
from chalicelib.pure import clock
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import (
    ITEM_EXISTS,
    ITEM_IS_NEW,
    batch_get,
    cancellation_codes,
    error_code,
    item_key,
    lost_race,
    num,
    query_items,
    query_pages,
    read_int,
    retry,
    sort_key_between,
    string,
)

# Cancellation reasons and errors that mean "this item is too hot right now": overflow into the delta shards.
HOT_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict"})
HOT_ERRORS = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException"})
_COUNTER_NAMES = {
    "#n": "n",
    "#day": "day",
    "#base": "day_base",
    "#path": "path",
    "#created": "created",
    "#started": "started",
}
_LISTED_MAX = 100_000  # paths a process remembers having listed
DIRECT = "direct"  # who created (or moved into its day) a counter: a direct hit, or a stream shard's record


@dataclass(frozen=True)
class Totals:
    total_hits: int
    distinct_paths: int


@dataclass(frozen=True)
class Ranked:
    path: str
    count: int


@dataclass(frozen=True)
class RankPage:
    paths: list[Ranked]
    next_after: Entry | None  # the last entry of this page when more follow


def counter_of(item: dict[str, Any] | None) -> Counter | None:
    if not item or "n" not in item:
        return None
    return Counter(read_int(item["n"]), item["day"]["S"], read_int(item.get("day_base")))


def day_expiry(day: str) -> int:
    """When a day's items (history, ranking entries, totals) expire."""
    return days.counting_day(days.day_start(day))[1]


class HitStore:
    def __init__(self, client: Any, table_name: str, rng: random.Random | None = None) -> None:
        self.client = client
        self.table = table_name
        self.rng = rng or random.Random()

    # --- item shapes (the benchmark loads items built here) -------------------

    def counter_item(self, path: str, counter: Counter) -> dict[str, Any]:
        return {
            **item_key(keys.hit_pk(path), keys.HIT_COUNT_SK),
            "path": string(path),
            "n": num(counter.n),
            "day": string(counter.day),
            "day_base": num(counter.day_base),
        }

    def rank_item(self, scope: str, path: str, count: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            **item_key(keys.hit_rank_item_pk(scope, path), keys.HIT_RANK_SK),
            "path": string(path),
            table.RANKING_PARTITION_KEY: string(keys.hit_rank_pk(scope, keys.hit_rank_shard(path))),
            table.RANKING_SORT_KEY: num(ranking.score(count, path)),
        }
        if scope != keys.HIT_ALL:
            item[table.TTL_ATTRIBUTE] = num(day_expiry(scope))
        return item

    def totals_item(self, scope: str, writer: str, total_hits: int, distinct_paths: int) -> dict[str, Any]:
        return {
            **item_key(keys.hit_totals_pk(scope), writer),
            "total_hits": num(total_hits),
            "distinct_paths": num(distinct_paths),
        }

    # --- the writes a change of a counter needs --------------------------------

    def counter_update(
        self, path: str, day: str, k: int, state: Counter | None, change: Change, began: str
    ) -> dict[str, Any]:
        """The counter's Update for k hits of `day`, conditioned on the state it assumes (for SAME_DAY: on `day`,
        whatever the count; else exactly `state`). `began` is who makes it new or begins its day (DIRECT, or the
        stream record: the stream's totals read it back to know which paths a batch made new)."""
        values: dict[str, Any] = {":k": num(k), ":day": string(day), ":path": string(path)}
        if change is Change.NEW:
            values.update({":zero": num(0), ":began": string(began)})
            update = "SET #day = :day, #base = :zero, #path = :path, #created = :began, #started = :began ADD #n :k"
            condition = ITEM_IS_NEW
        elif change is Change.SAME_DAY:
            update, condition = "SET #path = :path ADD #n :k", "#day = :day"
        elif change is Change.ROLLOVER:
            assert state is not None
            values.update({":old_day": string(state.day), ":old_n": num(state.n), ":began": string(began)})
            update = "SET #day = :day, #base = :old_n, #path = :path, #started = :began ADD #n :k"
            condition = "#day = :old_day AND #n = :old_n"
        else:  # LATE: the counter's own day keeps its count
            assert state is not None
            values[":cday"] = string(state.day)
            del values[":day"]
            update, condition = "SET #path = :path ADD #n :k, #base :k", "#day = :cday"
        text = f"{update} {condition}"
        names = {name: attr for name, attr in _COUNTER_NAMES.items() if name in text}
        return {
            "TableName": self.table,
            "Key": item_key(keys.hit_pk(path), keys.HIT_COUNT_SK),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def history_update(self, path: str, day: str, k: int, began: str, exists: bool | None = None) -> dict[str, Any]:
        """Add k to the path's count on `day` (a past day of its counter), recording who began that day if nobody
        has; conditioned on whether it exists when that decides the day's distinct paths."""
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": item_key(keys.hit_day_pk(path), day),
            "UpdateExpression": "ADD #n :k SET #ttl = :ttl, #started = if_not_exists(#started, :began)",
            "ExpressionAttributeNames": {"#n": "n", "#ttl": table.TTL_ATTRIBUTE, "#started": "started"},
            "ExpressionAttributeValues": {":k": num(k), ":ttl": num(day_expiry(day)), ":began": string(began)},
        }
        if exists is not None:
            update["ConditionExpression"] = ITEM_EXISTS if exists else ITEM_IS_NEW
        return update

    def totals_update(self, scope: str, writer: str, hits: int, distinct: int) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": item_key(keys.hit_totals_pk(scope), writer),
            "UpdateExpression": "ADD total_hits :hits, distinct_paths :distinct",
            "ExpressionAttributeValues": {":hits": num(hits), ":distinct": num(distinct)},
        }
        if scope != keys.HIT_ALL:
            update["UpdateExpression"] += " SET #ttl = :ttl"
            update["ExpressionAttributeValues"][":ttl"] = num(day_expiry(scope))
            update["ExpressionAttributeNames"] = {"#ttl": table.TTL_ATTRIBUTE}
        return update

    def history_exists(self, path: str, day: str) -> bool:
        key = item_key(keys.hit_day_pk(path), day)
        return "Item" in self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)

    def change_writes(
        self,
        path: str,
        day: str,
        k: int,
        state: Counter | None,
        *,
        began: str = DIRECT,
        began_before: str = DIRECT,
        totals: tuple[str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """The transaction that counts k hits of `day` on a counter found in `state`: the counter, the history it
        files (a rollover: the finished day, begun by `began_before`) or adds to (late hits), and with `totals` =
        (writer, hits) the writer's totals with the distinct paths the change makes (a new path in both scopes, a
        new day for the path)."""
        change = counts.change_of(state, day)
        writes: list[dict[str, Any]] = [{"Update": self.counter_update(path, day, k, state, change, began)}]
        new_day = change in (Change.NEW, Change.ROLLOVER)
        filed = counts.history_added(state, day, k)
        if filed is not None:
            exists = None
            if change is Change.LATE:
                exists = self.history_exists(path, day)
                new_day = not exists
            writes.append(
                {
                    "Update": self.history_update(
                        path, *filed, began_before if change is Change.ROLLOVER else began, exists
                    )
                }
            )
        if totals is not None:
            writer, hits = totals
            distinct_all = 1 if change is Change.NEW else 0
            if hits or distinct_all:
                writes.append({"Update": self.totals_update(keys.HIT_ALL, writer, hits, distinct_all)})
            if hits or new_day:
                writes.append({"Update": self.totals_update(day, writer, hits, 1 if new_day else 0)})
        return writes

    # --- direct hits ------------------------------------------------------------

    def record(self, path: str, day: str, day_expires_at: int) -> int:
        """Count one hit of a normalised path now (on `day`), move its ranking entries, and answer its all-time
        count: this hit's and any counted at the same time.

        The path is listed for the sweep first, so its entries are right within the sweep's bound even if moving them
        here fails after the count."""
        del day_expires_at  # each item's expiry follows from its day
        self.list_for_sweep(path, day)
        writer = keys.hit_direct_writer(self.rng.randrange(keys.HIT_TOTAL_SHARDS))

        def attempt(n: int) -> None:
            # First as if the counter were on today already (no read); else as it is.
            item = {} if n == 0 else self.get_item(item_key(keys.hit_pk(path), keys.HIT_COUNT_SK)) or {}
            state = Counter(0, day, 0) if n == 0 else counter_of(item)
            writes = self.change_writes(
                path, day, 1, state, began_before=item.get("started", {}).get("S", DIRECT), totals=(writer, 1)
            )
            self.client.transact_write_items(TransactItems=writes)

        try:
            retry(attempt, lost=_lost_not_hot, busy="the path is too busy to count; retry")
        except ClientError as exc:
            if not _hot(exc):
                raise
            self._overflow(path, day, writer)  # ranked once the sweep folds it
            return self.count(keys.HIT_ALL, path)
        counter = self.rank_path(path, {day})
        return (counter.n if counter else 0) + self.unfolded(path, keys.HIT_ALL)

    def list_for_sweep(self, path: str, day: str) -> None:
        """List the path for the sweep, once per process, path, day and slot, under the slot by which a count
        written now has surely landed (chalicelib/hits/slots.py)."""
        slot = slots.listing_slot(clock.now(), settings.get().worst_case_s)
        listed: set[tuple[str, str, str, int]] = runtime.cached("hits_listed_for_sweep", set)
        entry = (self.table, path, day, slot)
        if entry in listed:
            return
        # A digest: a sort key holds at most 1,024 bytes, a path as many.
        self.put_listing(slot, keys.hit_sweep_partition(path), _listing_sk(day, path), [(day, path)])
        if len(listed) > _LISTED_MAX:
            listed.clear()
        listed.add(entry)

    def put_listing(self, slot: int, partition: int, sort_key: str, entries: Sequence[tuple[str, str]]) -> None:
        """List (day, path) entries for the sweep to rank once `slot` is over."""
        self.client.put_item(
            TableName=self.table,
            Item={
                **item_key(keys.hit_sweep_pk(slot, partition), sort_key),
                "entries": {"L": [{"L": [string(day), string(path)]} for day, path in entries]},
                table.TTL_ATTRIBUTE: num(int(slots.slot_end(slot)) + 86_400),
            },
        )

    def rank_path(self, path: str, days_: set[str]) -> Counter | None:
        """Move the path's ranking entries to its counts now: all time, and each of `days_`. Its counter as read."""
        counter = counter_of(self.get_item(item_key(keys.hit_pk(path), keys.HIT_COUNT_SK)))
        if counter is None:
            return None
        moves = [(keys.HIT_ALL, counter.n)] + [(d, self.day_count(path, d, counter)) for d in sorted(days_)]
        runtime.fan_out(lambda move: self.rank(move[0], path, move[1]), [m for m in moves if m[1] > 0])
        return counter

    def _overflow(self, path: str, day: str, writer: str) -> None:
        """A hit the hot counter could not take: into a delta shard, with its totals (the sweep folds it, and counts
        the path as distinct then if it is new)."""
        shard = self.rng.randrange(keys.HIT_DELTA_SHARDS)
        delta_key = item_key(keys.hit_delta_pk(path, shard), keys.HIT_COUNT_SK)
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": delta_key,
                        "UpdateExpression": "ADD #d :one, #pending :one SET #path = :path",
                        "ExpressionAttributeNames": {"#d": f"{DELTA_DAY}{day}", "#pending": "pending", "#path": "path"},
                        "ExpressionAttributeValues": {":one": num(1), ":path": string(path)},
                    }
                },
                {"Update": self.totals_update(keys.HIT_ALL, writer, 1, 0)},
                {"Update": self.totals_update(day, writer, 1, 0)},
            ]
        )
        # Make it findable by the sweep. A blind Put: at most one per shard that has unfolded hits is needed, and a
        # repeated one writes the same item.
        self.client.put_item(
            TableName=self.table,
            Item={
                **item_key(keys.hit_mark_pk(path, shard), keys.HIT_COUNT_SK),
                "path": string(path),
                "shard": num(shard),
                table.RANKING_PARTITION_KEY: string(keys.hit_fold_pk(shard)),
                table.RANKING_SORT_KEY: num(0),
            },
        )

    # --- the events stream --------------------------------------------------------

    def apply_delivered(self, delivered: Sequence[Delivered]) -> None:
        """Count the hit events of one consumer batch exactly once (chalicelib/hits/streamed.py)."""
        from chalicelib.hits.streamed import apply_batch

        apply_batch(self, delivered)

    # --- ranking entries ----------------------------------------------------------

    def rank(self, scope: str, path: str, count: int) -> None:
        """Put the path's ranking entry at `count`, unless it already shows as much (a later writer's)."""
        item = self.rank_item(scope, path, count)
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#score) OR #score < :score",
                ExpressionAttributeNames={"#score": table.RANKING_SORT_KEY},
                ExpressionAttributeValues={":score": item[table.RANKING_SORT_KEY]},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    # --- reads ----------------------------------------------------------------

    def get_item(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    def counters(self, paths: Iterable[str]) -> dict[str, Counter]:
        """The counters of these paths (strongly consistent; 100 keys per BatchGetItem)."""
        wanted = sorted(set(paths))
        found: dict[str, Counter] = {}
        for start in range(0, len(wanted), 100):
            keys_ = [item_key(keys.hit_pk(p), keys.HIT_COUNT_SK) for p in wanted[start : start + 100]]
            for item in batch_get(self.client, self.table, keys_, consistent=True):
                counter = counter_of(item)
                if counter is not None:
                    found[item["path"]["S"]] = counter
        return found

    def day_count(self, path: str, day: str, counter: Counter | None) -> int:
        """The path's count on `day`, its counter already read (the history is read only for a past day)."""
        if counter is not None and counter.day == day:
            return counter.day_count
        item = self.get_item(item_key(keys.hit_day_pk(path), day))
        return read_int((item or {}).get("n"))

    def count(self, scope: str, path: str) -> int:
        """A path's count in a scope: its counter (and history for a past day) plus any unfolded overflow."""
        counter = counter_of(self.get_item(item_key(keys.hit_pk(path), keys.HIT_COUNT_SK)))
        counted = (counter.n if counter else 0) if scope == keys.HIT_ALL else self.day_count(path, scope, counter)
        return counted + self.unfolded(path, scope)

    def unfolded(self, path: str, scope: str) -> int:
        """The path's hits in a scope that wait in overflow shards."""
        return sum(_delta_hits(d, scope) for d in self._deltas(path))

    def _deltas(self, path: str) -> list[dict[str, Any]]:
        return batch_get(
            self.client,
            self.table,
            [item_key(keys.hit_delta_pk(path, k), keys.HIT_COUNT_SK) for k in range(keys.HIT_DELTA_SHARDS)],
            consistent=False,
        )

    def day_counts(self, path: str, first: str, last: str) -> dict[str, int]:
        """The path's count on each day from `first` to `last` that has one: its counter, one Query of its day
        history, and its unfolded overflow (three requests, whatever the number of days)."""
        counter = counter_of(self.get_item(item_key(keys.hit_pk(path), keys.HIT_COUNT_SK)))
        history = {
            item[table.SORT_KEY]["S"]: read_int(item.get("n"))
            for item in query_items(
                self.client,
                {
                    "TableName": self.table,
                    **sort_key_between(keys.hit_day_pk(path), first, last),
                    "ConsistentRead": True,
                },
            )
        }
        found = dict(history)
        if counter is not None:  # its own day's count is the counter's (counts.count_of_day)
            found[counter.day] = counter.day_count
        for delta in self._deltas(path):
            for day, hits in delta_days(delta).items():
                found[day] = found.get(day, 0) + hits
        return {day: n for day, n in found.items() if first <= day <= last and n}

    def totals(self, scope: str) -> Totals:
        items = query_items(
            self.client,
            {
                "TableName": self.table,
                "KeyConditionExpression": f"{table.PARTITION_KEY} = :pk",
                "ExpressionAttributeValues": {":pk": string(keys.hit_totals_pk(scope))},
            },
        )
        return Totals(
            total_hits=sum(read_int(i.get("total_hits")) for i in items),
            distinct_paths=sum(read_int(i.get("distinct_paths")) for i in items),
        )

    def index_items(self, rank_pk: str) -> list[dict[str, Any]]:
        return query_items(
            self.client,
            {
                "TableName": self.table,
                "IndexName": table.RANKING_INDEX,
                "KeyConditionExpression": "#rpk = :rpk",
                "ExpressionAttributeNames": {"#rpk": table.RANKING_PARTITION_KEY},
                "ExpressionAttributeValues": {":rpk": string(rank_pk)},
            },
        )

    def _query_rank(
        self, scope: str, shard: int, condition: str, values: dict[str, Any], limit: int | None
    ) -> tuple[list[Entry], bool]:
        """Entries of one ranking partition, score descending; paginates past empty pages."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": table.RANKING_INDEX,
            "KeyConditionExpression": "#rpk = :rpk" + condition,
            "ExpressionAttributeNames": {
                "#rpk": table.RANKING_PARTITION_KEY,
                "#score": table.RANKING_SORT_KEY,
                "#p": "path",
            },
            "ExpressionAttributeValues": {":rpk": string(keys.hit_rank_pk(scope, shard)), **values},
            "ProjectionExpression": "#p, #score",
            "ScanIndexForward": False,
        }
        entries: list[Entry] = []
        more = False
        for response in query_pages(self.client, request, max_items=limit):
            entries.extend(
                Entry(item["path"]["S"], read_int(item[table.RANKING_SORT_KEY])) for item in response.get("Items", [])
            )
            more = "LastEvaluatedKey" in response
        return entries, more

    def _fetch(self, scope: str) -> ranking.Fetch:
        def fetch(shard: int, bound: int | None, inclusive: bool, limit: int) -> tuple[list[Entry], bool]:
            if bound is None:
                return self._query_rank(scope, shard, "", {}, limit)
            op = "<=" if inclusive else "<"
            return self._query_rank(scope, shard, f" AND #score {op} :bound", {":bound": num(bound)}, limit)

        return fetch

    def ranking(self, scope: str, limit: int, after: Entry | None) -> RankPage:
        """Paths by count descending, then path ascending; `after` continues a previous page."""
        fetch = self._fetch(scope)

        def first_round(shards: Iterable[int], bound: int | None, limit: int) -> list[tuple[list[Entry], bool]]:
            return runtime.fan_out(lambda shard: fetch(shard, bound, True, limit), shards)

        def group(shard: int, score_value: int) -> list[Entry]:
            entries, _ = self._query_rank(scope, shard, " AND #score = :s", {":s": num(score_value)}, None)
            return entries

        entries, next_after = ranking.merge_page(keys.HIT_RANK_SHARDS, limit, after, first_round, fetch, group)
        return RankPage([Ranked(e.path, e.count) for e in entries], next_after)


DELTA_DAY = "day_"  # an overflow shard's hits of a day: attribute day_{YYYY-MM-DD}


def delta_days(item: dict[str, Any]) -> dict[str, int]:
    """An overflow shard's unfolded hits, per day."""
    return {name.removeprefix(DELTA_DAY): read_int(v) for name, v in item.items() if name.startswith(DELTA_DAY)}


def _delta_hits(item: dict[str, Any], scope: str) -> int:
    """The unfolded hits an overflow shard holds for a scope (every day's for all time)."""
    per_day = delta_days(item)
    return sum(per_day.values()) if scope == keys.HIT_ALL else per_day.get(scope, 0)


def _listing_sk(day: str, path: str) -> str:
    return "p" + hashlib.sha256(f"{day}\0{path}".encode()).hexdigest()[:32]


def _hot(exc: ClientError) -> bool:
    return error_code(exc) in HOT_ERRORS or any(code in HOT_REASONS for code in cancellation_codes(exc))


def _lost_not_hot(exc: ClientError) -> bool:
    """A direct hit's transaction found the counter in another state than it assumed: read it and try again. Not
    when the counter is hot: that hit overflows."""
    return lost_race(exc) and not _hot(exc)
