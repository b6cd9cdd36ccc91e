"""DELETE /metric/{key}: the fence (a new incarnation, metrics/generations.py) and the background purge of the old
incarnation's items. Every DynamoDB expression for them lives here.

The purge removes, for the old physical key p: the sub-totals and stream items (SUMSUB#p), the state items and
buckets (SUMB#p), and before each page of those the raw values of their minutes (SUMEV#p#{minute}#{k}); then the
sketches, prefix chain and head (SUMQ#p), the rollups and their sketches (SUMR#p, SUMRQ#p). Each page is what is
left, so a purge stopped anywhere resumes. The work lists (SUMDIRTY, SUMRKEYS) are shared partitions ordered by
time, kept only until their TTL; they are not purged: compaction and the rollups may still process minutes, hours
and days of the old incarnation that ended before the DELETE (under the old physical key, never read). So the
purge runs a first pass at once and a final one FINAL_SWEEP_MS after the DELETE, once every period the old
incarnation had is final and rolled up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.metrics.generations import Generations
from chalicelib.metrics.store import SumStore
from chalicelib.names.store import NameStore
from chalicelib.storage import keys
from chalicelib.storage.dynamo import batch_delete, item_key, partition_key_of, retry, sort_key_of
from chalicelib.storage.table import PARTITION_KEY, SORT_KEY

# When the final pass runs: after the old incarnation's last day is final and rolled up (a day, plus the rollups'
# own lag, with margin).
FINAL_SWEEP_MS = 26 * 3600 * 1000
PAGE = 100


class MetricDeletion:
    def __init__(self, store: SumStore) -> None:
        self.client = store.client
        self.table = store.table
        self.generations = Generations(store.client, store.table)
        self.names = NameStore(store.client, store.table)

    def delete(self, key: str, now_ms: int) -> bool:
        """End the key's incarnation if it holds anything: ONE transaction [each copy's gen + 1 on condition it is the one read,
        the purge recorded, the registry entry removed]. False (nothing written) when it holds nothing."""

        def attempt(_: int) -> bool:
            gen = self.generations.current(key)
            physical = keys.metric_physical(key, gen)
            if not self._holds_anything(physical):
                return False
            purge = self.names.purge_put("metric", key, gen, now_ms)
            purge["Item"]["final_at"] = {"N": str(now_ms + FINAL_SWEEP_MS)}
            self.client.transact_write_items(
                TransactItems=[
                    *self.generations.bump(key, gen),
                    {"Put": purge},
                    {"Delete": self.names.entry_delete("metric", key)},
                ]
            )
            self.generations.current(key)  # this writer posts under the new one at once
            return True

        return retry(attempt, busy="the key is being deleted; retry")

    def _holds_anything(self, physical: str) -> bool:
        """Whether any sub-total, state item or rollup exists under the physical key: three one-item Queries."""
        for pk in (keys.sum_sub_pk(physical), keys.sum_bucket_pk(physical), keys.sum_rollup_pk(physical)):
            response = self.client.query(
                TableName=self.table,
                KeyConditionExpression=f"{PARTITION_KEY} = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
                ProjectionExpression=PARTITION_KEY,
                Limit=1,
                ConsistentRead=True,
            )
            if response.get("Items"):
                return True
        return False

    def purge(self, key: str, gen: int, spent: Callable[[], bool]) -> tuple[int, bool]:
        physical = keys.metric_physical(key, gen)
        removed = 0
        for pk in (keys.sum_sub_pk(physical), keys.sum_bucket_pk(physical)):
            n, done = self._drain(pk, spent, before=lambda items: self._drain_minutes(physical, items, spent))
            removed += n
            if not done:
                return removed, False
        for pk in (keys.sum_sketch_pk(physical), keys.sum_rollup_pk(physical), keys.sum_rollup_sketch_pk(physical)):
            n, done = self._drain(pk, spent)
            removed += n
            if not done:
                return removed, False
        return removed, True

    def _drain_minutes(self, physical: str, items: list[dict[str, Any]], spent: Callable[[], bool]) -> tuple[int, bool]:
        """The raw values of the minutes of a page of sub-total or state items: (removed, all of them)."""
        minutes = {int(sort_key_of(item)[:10]) for item in items}
        removed = 0
        for minute in sorted(minutes):
            for shard in range(keys.SUM_EVENT_SHARDS):
                n, done = self._drain(keys.sum_event_pk(physical, minute, shard), spent)
                removed += n
                if not done:
                    return removed, False
        return removed, True

    def _drain(
        self,
        pk: str,
        spent: Callable[[], bool],
        before: Callable[[list[dict[str, Any]]], tuple[int, bool]] | None = None,
    ) -> tuple[int, bool]:
        """Delete the partition's items a page at a time until none is left or `spent()`; `before` removes what a
        page's items stand for first (a page is deleted only once it says all of it is gone)."""
        removed = 0
        while not spent():
            items = self.client.query(
                TableName=self.table,
                KeyConditionExpression=f"{PARTITION_KEY} = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
                ProjectionExpression=f"{PARTITION_KEY}, {SORT_KEY}",
                Limit=PAGE,
            ).get("Items", [])
            if not items:
                return removed, True
            if before is not None:
                n, complete = before(items)
                removed += n
                if not complete:
                    return removed, False
            batch_delete(self.client, self.table, [item_key(partition_key_of(i), sort_key_of(i)) for i in items])
            removed += len(items)
        return removed, False
