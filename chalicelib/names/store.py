"""Data access for the registry of names and for deletions' purges. Every DynamoDB expression for them lives here.

The registry: one partition per kind (keys.names_pk: stream, metric, average), one item per name that exists, its
sort key the name itself, with `updated_at` (epoch ms, the start of a minute: chalicelib/names/refresh.py). A
listing page is ONE Query of that partition, `begins_with(sk, prefix)` and `Limit` = the page's size, started
after the cursor's name: it reads in proportion to its page, whatever the number of names, values or keys.

Who writes an entry, and what it costs (AWS's rules: 1 write unit per started KB, doubled in a transaction; an entry
is under 100 bytes):
  stream   a write (POST values, or a batch of the events stream) carries the entry's Put in its own transaction
           when its writer has not registered the name this minute: 2 units per name, writer and minute, none on
           the other writes; a DELETE removes the entry in the transaction that fences the name, so an entry never
           outlives its name nor misses a write that committed after the delete.
  average  PUT (create or resize) carries it in its transaction; an append refreshes it at most once per writer and
           minute with a transaction [ConditionCheck: the window exists, Put entry] (4 units), so a refresh never
           resurrects a deleted window's entry; DELETE removes window and entry in one transaction.
  metric   the scheduled compaction, which already lists each key with values per minute (SUMDIRTY): per key and
           compacted minute one transaction [ConditionCheck of the key's incarnation, Update of the entry] (4 units),
           nothing on the posting path; a key appears in the listing once its first minute is compacted (about 1.5
           minutes after its first value).

Deletions: a DELETE that ends a name's incarnation leaves an item in the PURGE partition naming what the background
purge must remove (keys.purge_sk: kind, name, incarnation). The purge (chalicelib/names/api.py, every minute) works
through them in bounded steps; each step ADDs the items it removed to `removed`, and the last SETs `done_at` and a
TTL: `GET /deletions` reads the partition, one Query a page.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from chalicelib.names.refresh import Refreshes
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import ITEM_EXISTS, item_key, num, partition, read_int, sort_key_of, sort_key_prefix

# How long a finished purge stays listed (seconds).
DONE_KEPT_S = 7 * 24 * 3600


# Per client (one per process in Lambda; a new one per test): the names this writer registered, and when.
_refreshes: weakref.WeakKeyDictionary[Any, Refreshes] = weakref.WeakKeyDictionary()
_refreshes_lock = threading.Lock()


def refreshes_of(client: Any) -> Refreshes:
    with _refreshes_lock:
        return _refreshes.setdefault(client, Refreshes())


@dataclass(frozen=True)
class Entry:
    name: str
    updated_at: int | None


@dataclass(frozen=True)
class Purge:
    kind: str
    name: str
    gen: int
    requested_at: int
    removed: int
    done_at: int | None
    final_at: int | None = None  # a kind whose purge passes again at this time (epoch ms) before it is done


@dataclass(frozen=True)
class Listing:
    entries: list[Any]
    after: str | None  # the last sort key of this page when another may follow


class NameStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table = table_name

    # --- the registry -------------------------------------------------------

    def entry_put(self, kind: str, name: str, minute_ms: int) -> dict[str, Any]:
        """A Put of the name's entry, for the transaction of the write that registers it."""
        return {
            "TableName": self.table,
            "Item": {**item_key(keys.names_pk(kind), name), "updated_at": num(minute_ms)},
        }

    def entry_delete(self, kind: str, name: str) -> dict[str, Any]:
        return {"TableName": self.table, "Key": item_key(keys.names_pk(kind), name)}

    def refresh_if_exists(self, kind: str, name: str, minute_ms: int, anchor: dict[str, Any]) -> None:
        """Put the entry, on condition that the item `anchor` (a key) still exists: never resurrects a deleted name's
        entry. Nothing happens when the anchor is gone."""
        with contextlib.suppress(self.client.exceptions.TransactionCanceledException):
            self.client.transact_write_items(
                TransactItems=[
                    {"ConditionCheck": {"TableName": self.table, "Key": anchor, "ConditionExpression": ITEM_EXISTS}},
                    {"Put": self.entry_put(kind, name, minute_ms)},
                ]
            )

    def note(self, kind: str, name: str, minute_ms: int, check: dict[str, Any]) -> None:
        """Register the name as updated in that minute, unless its entry says later, on condition of `check` (a
        ConditionCheck: the name is still in the incarnation that had the minute): one transaction, 4 write units.
        Either condition failing leaves everything as it was."""
        update = {
            "TableName": self.table,
            "Key": item_key(keys.names_pk(kind), name),
            "UpdateExpression": "SET #u = :m",
            "ConditionExpression": "attribute_not_exists(#u) OR #u < :m",
            "ExpressionAttributeNames": {"#u": "updated_at"},
            "ExpressionAttributeValues": {":m": num(minute_ms)},
        }
        with contextlib.suppress(self.client.exceptions.TransactionCanceledException):
            self.client.transact_write_items(TransactItems=[{"ConditionCheck": check}, {"Update": update}])

    def remove(self, kind: str, name: str) -> None:
        self.client.delete_item(**self.entry_delete(kind, name))

    def list_names(self, kind: str, prefix: str, limit: int, after: str | None) -> Listing:
        """One page of the kind's names that start with `prefix`, in byte order, after the name `after`."""
        items = self._page(keys.names_pk(kind), prefix, limit, after)
        entries = [Entry(sort_key_of(item), read_int(item.get("updated_at")) or None) for item in items]
        return Listing(entries[:limit], entries[limit - 1].name if len(entries) > limit else None)

    # --- purges -------------------------------------------------------------

    def purge_put(self, kind: str, name: str, gen: int, now_ms: int) -> dict[str, Any]:
        """The Put of a purge to do, for the transaction of the DELETE that fences the name."""
        return {
            "TableName": self.table,
            "Item": {
                **item_key(keys.PURGE_PK, keys.purge_sk(kind, name, gen)),
                "requested_at": num(now_ms),
                "removed": num(0),
            },
        }

    def pending(self, limit: int, now_ms: int) -> list[Purge]:
        """Purges not finished and due, by key (one Query; finished ones and those waiting for their final pass are
        skipped by a filter)."""
        condition = partition(keys.PURGE_PK)
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression=condition["KeyConditionExpression"],
            FilterExpression="attribute_not_exists(done_at) AND (attribute_not_exists(next_at) OR next_at <= :now)",
            ExpressionAttributeValues={**condition["ExpressionAttributeValues"], ":now": num(now_ms)},
            ConsistentRead=True,
        )
        return [self._purge(item) for item in response.get("Items", [])][:limit]

    @staticmethod
    def _purge_key(purge: Purge) -> dict[str, Any]:
        return item_key(keys.PURGE_PK, keys.purge_sk(purge.kind, purge.name, purge.gen))

    def progress(self, purge: Purge, removed: int) -> None:
        if removed:
            self.client.update_item(
                TableName=self.table,
                Key=self._purge_key(purge),
                UpdateExpression="ADD removed :n",
                ExpressionAttributeValues={":n": num(removed)},
            )

    def defer(self, purge: Purge, next_at: int) -> None:
        """A first pass is done: the next (final) one is due at `next_at`."""
        self.client.update_item(
            TableName=self.table,
            Key=self._purge_key(purge),
            UpdateExpression="SET next_at = :at",
            ExpressionAttributeValues={":at": num(next_at)},
        )

    def finish(self, purge: Purge, now_ms: int) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=self._purge_key(purge),
            UpdateExpression="SET done_at = :now, #exp = :exp",
            ExpressionAttributeNames={"#exp": table.TTL_ATTRIBUTE},
            ExpressionAttributeValues={":now": num(now_ms), ":exp": num(now_ms // 1000 + DONE_KEPT_S)},
        )

    def list_purges(self, prefix: str, limit: int, after: str | None) -> Listing:
        purges = [self._purge(item) for item in self._page(keys.PURGE_PK, prefix, limit, after)]
        last = purges[limit - 1] if len(purges) > limit else None
        return Listing(purges[:limit], keys.purge_sk(last.kind, last.name, last.gen) if last else None)

    # --- shared -------------------------------------------------------------

    def _page(self, pk: str, prefix: str, limit: int, after: str | None) -> list[dict[str, Any]]:
        """Up to limit + 1 items of the partition after `after` (the one more says whether a next page exists, so
        that the last page never comes with a cursor to an empty one): one Query, consistent."""
        request: dict[str, Any] = {
            "TableName": self.table,
            **(sort_key_prefix(pk, prefix) if prefix else partition(pk)),
            "Limit": limit + 1,
            "ConsistentRead": True,
        }
        if after is not None:
            request["ExclusiveStartKey"] = item_key(pk, after)
        items: list[dict[str, Any]] = self.client.query(**request).get("Items", [])
        return items

    @staticmethod
    def _purge(item: dict[str, Any]) -> Purge:
        kind, name, gen = keys.purge_entry(sort_key_of(item))
        done, final = item.get("done_at"), item.get("final_at")
        return Purge(
            kind,
            name,
            gen,
            read_int(item.get("requested_at")),
            read_int(item.get("removed")),
            read_int(done) if done else None,
            read_int(final) if final else None,
        )
