"""Data access for hit counters. Every DynamoDB expression for hits lives here.

A hit on a path is four independent single-item writes, no transaction and no read:

1. the path's all-time counter `HIT#ALL#{path}`: `SET rank_score = if_not_exists(rank_score, :tiebreak) + :one`
   (an atomic server-side increment; `:one` is ranking.SCALE). The item is also the path's entry
   in the `ranking` GSI, so the ranking follows each hit.
2. the same for the path's counter of the UTC day, `HIT#{day}#{path}`.
3. + 4. one random shard of the service totals for ALL and for the day: `ADD total_hits :1, distinct_paths :d`,
   d = 1 when step 1 (or 2) returned a count of 1 (the path's first hit: each path's count reaches 1 once).

A crash between the writes leaves the later ones undone for that hit (e.g. total_hits one lower than the
sum of the path counts, or a first hit not in distinct_paths); a write retried by boto3 after a timeout
that had in fact succeeded counts twice. A transaction would remove the first risk, at twice the write
cost and by serialising hot writes; the counters favour throughput.

Hot paths: one item takes ~1,000 writes/s, and each increment of an indexed number is two GSI writes
(delete + insert), so a path's counter item saturates at roughly 500 hits/s. When the counter write is
throttled (or conflicts with a fold transaction), the hit goes to one of HIT_DELTA_SHARDS delta items
(random shard, own partition) instead, and the first hit of a delta shard since its last fold writes a
marker indexed under HITFOLD#{k}. `fold()` (scheduled every minute) moves each marked delta into the
counter item in one transaction. A hot path is therefore limited by HIT_DELTA_SHARDS x ~1,000 writes/s,
not by one item; its ranking score lags by at most the unfolded deltas.

From the events stream (`apply_delivered`), hits are counted per Kinesis shard, scope and path: a batch's hits on
one path cost one transaction per scope, whatever their number: the counter's increment, with the marker of the
last record applied (chalicelib/ingest/applied.py), and the totals' increment, on one of HIT_INGEST_TOTAL_SHARDS
items of their own. Both or neither, so the totals stay the sum of the path counts under redelivery and crashes
(the direct path's crash gap is not widened). A consistent read of the counter first says which records it has
applied and whether the path is new (distinct_paths); the transaction is conditioned on both.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import keys, runtime, table
from chalicelib.dynamo import (
    ITEM_EXISTS,
    ITEM_IS_NEW,
    batch_get,
    error_code,
    item_key,
    num,
    query_items,
    query_pages,
    read_int,
    retry,
    string,
)
from chalicelib.errors import Busy
from chalicelib.hits import days, ranking
from chalicelib.hits.ranking import Entry
from chalicelib.ingest import applied
from chalicelib.ingest.records import Delivered, HitEvent

# Errors that mean "this item is too hot right now": overflow into the delta shards instead.
HOT_ERRORS = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "TransactionConflictException"}
)
FOLD_ATTEMPTS = 5


def _fold_lost(exc: ClientError) -> bool:
    """A fold transaction cancelled (the delta or the counter changed under it) or throttled: read again."""
    return error_code(exc) in ("TransactionCanceledException", *HOT_ERRORS)


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


class HitStore:
    def __init__(self, client: Any, table_name: str, rng: random.Random | None = None) -> None:
        self.client = client
        self.table = table_name
        self.rng = rng or random.Random()

    # --- item shapes (the benchmark loads items built here) -------------------

    def counter_item(self, scope: str, path: str, count: int, expires_at: int | None = None) -> dict[str, Any]:
        """A path's counter item as the writes below leave it."""
        item: dict[str, Any] = {
            **item_key(keys.hit_pk(scope, path), keys.HIT_COUNT_SK),
            "path": string(path),
            table.RANKING_PARTITION_KEY: string(keys.hit_rank_pk(scope, keys.hit_rank_shard(path))),
            table.RANKING_SORT_KEY: num(ranking.score(count, path)),
        }
        if expires_at is not None:
            item[table.TTL_ATTRIBUTE] = num(expires_at)
        return item

    def totals_item(self, scope: str, shard: int, total_hits: int, distinct_paths: int) -> dict[str, Any]:
        return {
            **item_key(keys.hit_totals_pk(scope, shard), keys.HIT_COUNT_SK),
            "total_hits": num(total_hits),
            "distinct_paths": num(distinct_paths),
        }

    # --- writes ---------------------------------------------------------------

    def record(self, path: str, day: str, day_expires_at: int) -> int:
        """Count one hit of a normalised path; the path's all-time count including this hit."""
        total = self._bump(keys.HIT_ALL, path, None)
        today = self._bump(day, path, day_expires_at)
        self._bump_totals(keys.HIT_ALL, first=total == 1, expires_at=None)
        self._bump_totals(day, first=today == 1, expires_at=day_expires_at)
        return total if total is not None else self.count(keys.HIT_ALL, path)

    def _bump(self, scope: str, path: str, expires_at: int | None) -> int | None:
        """Increment the counter item; None if it was too hot and the hit went to a delta shard."""
        try:
            response = self.client.update_item(**self._increment(scope, path, 1, expires_at))
        except ClientError as exc:
            if error_code(exc) not in HOT_ERRORS:
                raise
            self._overflow(scope, path, expires_at)
            return None
        return ranking.count_of(read_int(response["Attributes"][table.RANKING_SORT_KEY]))

    def _increment(self, scope: str, path: str, count: int, expires_at: int | None) -> dict[str, Any]:
        update = "SET #score = if_not_exists(#score, :tiebreak) + :inc, #rpk = :rpk, #path = :path"
        values = {
            ":tiebreak": num(ranking.tiebreak(path)),
            ":inc": num(count * ranking.SCALE),
            ":rpk": string(keys.hit_rank_pk(scope, keys.hit_rank_shard(path))),
            ":path": string(path),
        }
        names = {"#score": table.RANKING_SORT_KEY, "#rpk": table.RANKING_PARTITION_KEY, "#path": "path"}
        if expires_at is not None:
            update += ", #ttl = :ttl"
            values[":ttl"] = num(expires_at)
            names["#ttl"] = table.TTL_ATTRIBUTE
        return {
            "TableName": self.table,
            "Key": item_key(keys.hit_pk(scope, path), keys.HIT_COUNT_SK),
            "UpdateExpression": update,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "UPDATED_NEW",
        }

    def _overflow(self, scope: str, path: str, expires_at: int | None) -> None:
        shard = self.rng.randrange(keys.HIT_DELTA_SHARDS)
        update = "ADD hits :one"
        values: dict[str, Any] = {":one": num(1)}
        if expires_at is not None:
            update += " SET #ttl = :ttl"
            values[":ttl"] = num(expires_at)
        response = self.client.update_item(
            TableName=self.table,
            Key=item_key(keys.hit_delta_pk(scope, path, shard), keys.HIT_COUNT_SK),
            UpdateExpression=update,
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": {"#ttl": table.TTL_ATTRIBUTE}} if expires_at is not None else {}),
            ReturnValues="UPDATED_NEW",
        )
        if read_int(response["Attributes"]["hits"]) == 1:
            # First unfolded hit of this shard: make it findable by fold(). At most one such write per
            # shard and fold period, so the marker is never hot.
            self.client.put_item(
                TableName=self.table,
                Item={
                    **item_key(keys.hit_mark_pk(scope, path, shard), keys.HIT_COUNT_SK),
                    "scope": string(scope),
                    "path": string(path),
                    "shard": num(shard),
                    table.RANKING_PARTITION_KEY: string(keys.hit_fold_pk(shard)),
                    table.RANKING_SORT_KEY: num(0),
                },
            )

    def _bump_totals(self, scope: str, *, first: bool, expires_at: int | None) -> None:
        update = "ADD total_hits :one, distinct_paths :first"
        values: dict[str, Any] = {":one": num(1), ":first": num(1 if first else 0)}
        names: dict[str, str] = {}
        if expires_at is not None:
            update += " SET #ttl = :ttl"
            values[":ttl"] = num(expires_at)
            names["#ttl"] = table.TTL_ATTRIBUTE
        self.client.update_item(
            TableName=self.table,
            Key=item_key(keys.hit_totals_pk(scope, self.rng.randrange(keys.HIT_TOTAL_SHARDS)), keys.HIT_COUNT_SK),
            UpdateExpression=update,
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": names} if names else {}),
        )

    # --- from the events stream ---------------------------------------------

    def apply_delivered(self, delivered: Sequence[Delivered]) -> None:
        """Count hit events of the events stream exactly once: per Kinesis shard, scope and path, one transaction."""
        groups: dict[tuple[str, str, str], list[Delivered]] = {}
        expiry: dict[str, int | None] = {keys.HIT_ALL: None}
        for d in delivered:
            event = d.event
            assert isinstance(event, HitEvent)
            day, expiry[day] = days.counting_day(event.time_ms / 1000)
            for scope in (keys.HIT_ALL, day):
                groups.setdefault((d.shard_id, scope, event.path), []).append(d)
        for (shard_id, scope, path), hits in groups.items():
            self._apply_hits(shard_id, scope, path, expiry[scope], hits)

    def _apply_hits(
        self, shard_id: str, scope: str, path: str, expires_at: int | None, delivered: Sequence[Delivered]
    ) -> None:
        counter_key = item_key(keys.hit_pk(scope, path), keys.HIT_COUNT_SK)

        def attempt(_: int) -> None:
            counter = self._get(counter_key)
            todo = applied.unapplied(delivered, applied.applied_marker(counter, shard_id))
            if not todo:
                return
            increment = self._increment(scope, path, len(todo), expires_at)
            increment.pop("ReturnValues")
            names, values = applied.marker_condition(shard_id, todo)
            removal, pruned = applied.pruning(counter, shard_id)
            increment["UpdateExpression"] += f", #applied = :last{removal}"
            increment["ConditionExpression"] = f"{ITEM_EXISTS if counter else ITEM_IS_NEW} AND {applied.NOT_APPLIED}"
            increment["ExpressionAttributeNames"].update({**names, **pruned})
            increment["ExpressionAttributeValues"].update(values)
            totals = self._ingest_totals(scope, len(todo), first=counter is None, expires_at=expires_at)
            self.client.transact_write_items(TransactItems=[{"Update": increment}, {"Update": totals}])

        # A lost race (another writer created the counter, a concurrent transaction, a marker moved): read again.
        retry(attempt, busy="the path is too busy to count its streamed hits")

    def _ingest_totals(self, scope: str, hits: int, *, first: bool, expires_at: int | None) -> dict[str, Any]:
        shard = keys.HIT_TOTAL_SHARDS + self.rng.randrange(keys.HIT_INGEST_TOTAL_SHARDS)
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": item_key(keys.hit_totals_pk(scope, shard), keys.HIT_COUNT_SK),
            "UpdateExpression": "ADD total_hits :hits, distinct_paths :first",
            "ExpressionAttributeValues": {":hits": num(hits), ":first": num(1 if first else 0)},
        }
        if expires_at is not None:
            update["UpdateExpression"] += " SET #ttl = :ttl"
            update["ExpressionAttributeValues"][":ttl"] = num(expires_at)
            update["ExpressionAttributeNames"] = {"#ttl": table.TTL_ATTRIBUTE}
        return update

    # --- folding hot paths' overflow -----------------------------------------

    def fold(self) -> int:
        """Move every marked delta shard into its counter item; the number of hits moved."""
        moved = 0
        for shard in range(keys.HIT_DELTA_SHARDS):
            for marker in self._index_items(keys.hit_fold_pk(shard)):
                moved += self._fold_one(marker["scope"]["S"], marker["path"]["S"], shard, marker)
        return moved

    def _fold_one(self, scope: str, path: str, shard: int, marker: dict[str, Any]) -> int:
        delta_key = item_key(keys.hit_delta_pk(scope, path, shard), keys.HIT_COUNT_SK)
        counter_key = item_key(keys.hit_pk(scope, path), keys.HIT_COUNT_SK)
        marker_key = {name: marker[name] for name in (table.PARTITION_KEY, table.SORT_KEY)}
        marker_delete = {"Delete": {"TableName": self.table, "Key": marker_key}}

        def attempt(_: int) -> int:
            delta = self._get(delta_key) or {}
            counter = self._get(counter_key)
            hits = read_int(delta.get("hits"))
            if hits == 0:
                actions: list[dict[str, Any]] = [
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": delta_key,
                            "ConditionExpression": "attribute_not_exists(hits) OR hits = :zero",
                            "ExpressionAttributeValues": {":zero": num(0)},
                        }
                    },
                    marker_delete,
                ]
            else:
                increment = self._increment(scope, path, hits, read_int(delta.get(table.TTL_ATTRIBUTE)) or None)
                increment.pop("ReturnValues")
                increment["ConditionExpression"] = ITEM_EXISTS if counter else ITEM_IS_NEW
                actions = [
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": delta_key,
                            "UpdateExpression": "ADD hits :minus",
                            "ConditionExpression": "hits = :hits",
                            "ExpressionAttributeValues": {":minus": num(-hits), ":hits": num(hits)},
                        }
                    },
                    {"Update": increment},
                    marker_delete,
                ]
                if not counter:  # the path's first hits were all overflow: it becomes distinct now
                    actions.append(
                        {
                            "Update": {
                                "TableName": self.table,
                                "Key": item_key(
                                    keys.hit_totals_pk(scope, self.rng.randrange(keys.HIT_TOTAL_SHARDS)),
                                    keys.HIT_COUNT_SK,
                                ),
                                "UpdateExpression": "ADD distinct_paths :one",
                                "ExpressionAttributeValues": {":one": num(1)},
                            }
                        }
                    )
            self.client.transact_write_items(TransactItems=actions)
            return hits

        try:
            return retry(attempt, lost=_fold_lost, attempts=FOLD_ATTEMPTS, busy="the path is too hot to fold")
        except Busy:
            return 0  # still busy: the marker stays, the next fold tries again

    # --- reads ----------------------------------------------------------------

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    def count(self, scope: str, path: str) -> int:
        """A path's count: its counter item plus any unfolded overflow."""
        item = self._get(item_key(keys.hit_pk(scope, path), keys.HIT_COUNT_SK))
        counted = ranking.count_of(read_int(item[table.RANKING_SORT_KEY])) if item else 0
        deltas = self._batch_get(
            [item_key(keys.hit_delta_pk(scope, path, k), keys.HIT_COUNT_SK) for k in range(keys.HIT_DELTA_SHARDS)]
        )
        return counted + sum(read_int(d.get("hits")) for d in deltas)

    def _batch_get(self, request_keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return batch_get(self.client, self.table, request_keys, consistent=False)

    def totals(self, scope: str) -> Totals:
        items = self._batch_get(
            [
                item_key(keys.hit_totals_pk(scope, k), keys.HIT_COUNT_SK)
                for k in range(keys.HIT_TOTAL_SHARDS + keys.HIT_INGEST_TOTAL_SHARDS)
            ]
        )
        return Totals(
            total_hits=sum(read_int(i.get("total_hits")) for i in items),
            distinct_paths=sum(read_int(i.get("distinct_paths")) for i in items),
        )

    def _index_items(self, rank_pk: str) -> list[dict[str, Any]]:
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
