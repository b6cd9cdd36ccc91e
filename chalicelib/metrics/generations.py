"""A metric key's incarnations: what makes DELETE /metric/{key} a fence. Every DynamoDB expression for them lives
here.

SUM_WRITE_SHARDS copies per deleted key (keys.sum_gen_pk, keys.sum_gen_sk): `gen`, absent for a key never deleted
(0), the same in every copy (a DELETE bumps them all in one transaction). The items of incarnation g
are stored under the physical key keys.metric_physical(key, g) (`key`, then `key~1`, `key~2`...), so every other
part of the sums (writes, compaction, reads, rollups) works on physical keys unchanged, and a new incarnation starts
with no item at all.

- A DELETE is ONE transaction: every copy's `gen` + 1 on condition it is still the one read, the purge of the old
  physical key recorded (chalicelib/names/store.py), the registry entry removed.
- A post's transaction carries a ConditionCheck that `gen` is the one it writes under, on the copy of the sub-total
  shard it adds to (2 write units: a condition check is charged as a transactional write of the item, under 1 KB).
  Two transactions that hold one item conflict, a ConditionCheck's item too: with one copy, every post to a key
  would conflict with every other; with a copy per shard, posts conflict no more than their sub-totals already do. So a post racing a DELETE either committed
  before it (its event, sub-total and bin are all in the old incarnation, purged whole) or is cancelled whole and
  retried under the new one. The incarnation a writer posts under is remembered per client, checked by every post:
  a stale one costs one cancelled transaction and one read.
- A read (sum, minutes, quantiles, series) reads `gen` first, strongly consistent (1 read unit): nothing of a deleted
  incarnation is read once the DELETE answered.
- The events stream's consumer reads the incarnations of a batch's keys (one BatchGetItem) before applying it: values
  applied in the moment between that read and a DELETE land in the old incarnation and are purged with it.
- Compaction registers a key (GET /metric) only under its current incarnation: a ConditionCheck of `gen` with the
  registry's update, so a minute of a deleted incarnation compacted late never lists the key again.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

from chalicelib.storage import keys
from chalicelib.storage.dynamo import batch_get, item_key, num, partition_key_of, read_int

_known: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], int]] = weakref.WeakKeyDictionary()
_known_lock = threading.Lock()
_KNOWN_MAX = 100_000


class Generations:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def _key(self, key: str, shard: int = 0) -> dict[str, Any]:
        return item_key(keys.sum_gen_pk(key), keys.sum_gen_sk(shard))

    def current(self, key: str) -> int:
        """The key's incarnation, read strongly consistent (and remembered for posts)."""
        item = self.client.get_item(
            TableName=self.table, Key=self._key(key), ProjectionExpression="gen", ConsistentRead=True
        ).get("Item", {})
        gen = read_int(item.get("gen"))
        self._remember(key, gen)
        return gen

    def physical(self, key: str) -> str:
        return keys.metric_physical(key, self.current(key))

    def remembered(self, key: str) -> int:
        """The incarnation this client last saw (read once if never): for posts, whose ConditionCheck verifies it."""
        with _known_lock:
            gen = _known.setdefault(self.client, {}).get((self.table, key))
        return self.current(key) if gen is None else gen

    def many(self, names: Iterable[str]) -> dict[str, int]:
        """The incarnations of several keys: one strongly consistent BatchGetItem per 100."""
        ordered = sorted(set(names))
        found: dict[str, int] = dict.fromkeys(ordered, 0)
        for start in range(0, len(ordered), 100):
            chunk = ordered[start : start + 100]
            for item in batch_get(self.client, self.table, [self._key(k) for k in chunk], consistent=True):
                found[partition_key_of(item).split("#", 1)[1]] = read_int(item.get("gen"))
        return found

    def check(self, key: str, gen: int, shard: int = 0) -> dict[str, Any]:
        """A ConditionCheck, for a transaction: the key is still in incarnation `gen` (by the copy `shard`)."""
        check: dict[str, Any] = {"TableName": self.table, "Key": self._key(key, shard)}
        if gen == 0:
            check["ConditionExpression"] = "attribute_not_exists(gen)"
        else:
            check["ConditionExpression"] = "gen = :gen"
            check["ExpressionAttributeValues"] = {":gen": num(gen)}
        return check

    def bump(self, key: str, gen: int) -> list[dict[str, Any]]:
        """The Updates (one per copy, for one transaction) that end incarnation `gen`, on condition it is still the
        current one."""
        updates = []
        for shard in range(keys.SUM_WRITE_SHARDS):
            check = self.check(key, gen, shard)
            update = {
                "TableName": self.table,
                "Key": check["Key"],
                "UpdateExpression": "SET gen = :next",
                "ConditionExpression": check["ConditionExpression"],
                "ExpressionAttributeValues": {**check.get("ExpressionAttributeValues", {}), ":next": num(gen + 1)},
            }
            updates.append({"Update": update})
        return updates

    def _remember(self, key: str, gen: int) -> None:
        with _known_lock:
            known = _known.setdefault(self.client, {})
            if len(known) >= _KNOWN_MAX:
                known.clear()
            known[(self.table, key)] = gen
