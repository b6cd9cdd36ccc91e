"""Data access for the survey. Every DynamoDB expression of the feature lives here.

A response is one item (keys.survey_response_sk), which also carries its key in each sortable column's
keys-only index (chalicelib/survey/sorting.py): one shard attribute shared by the indexes, and per column a sort
key that starts with its segment, unanswered ("0") or answered ("1"). The summary is SURVEY_SUMMARY_SHARDS items of integer counters
(rules.COUNTERS) plus `version`, `updated_at` and `epoch`, in one partition; the survey's summary is their sum.
Every write to a response is ONE TransactWriteItems: the response item, conditioned on the version it was read
at (two tabs never lose each other's answers; a lost race is re-read and retried), and an UpdateItem that ADDs
the counters' deltas and 1 to the version of one summary shard, chosen at random (concurrent saves rarely
touch the same shard, so they rarely conflict). So the summed counters always equal the sum of the stored
responses' contributions, and the summed version grows with every answer change: the dashboard's ETag.
An email belongs to one response: the transaction that sets, changes or clears a response's email (or deletes the
response) also writes or deletes that address's claim item (keys.survey_email_sk), conditioned on no other
response holding it. Two starts with one address can't both win: the loser's transaction is cancelled whole.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.edge.errors import Conflict, NotFound
from chalicelib.storage import keys
from chalicelib.storage.dynamo import (
    ITEM_IS_NEW,
    batch_get,
    cancellation_codes,
    conflicted,
    item_key,
    num,
    query_items,
    query_pages,
    read_int,
    read_str,
    retry,
    sort_key_of,
    string,
)
from chalicelib.storage.table import PARTITION_KEY, SORT_KEY, survey_sort_attributes, survey_sort_index
from chalicelib.survey import rules, sorting

_BATCH_GET_MAX = 100  # keys per BatchGetItem
_BUSY_RESPONSE = "this response is being changed by many requests at once; retry"
EMAIL_TAKEN = "This email address has already answered the survey."
# A transaction holds the response's own write, the summary's update, then the email's claims from here on.
_CLAIM = 2

# The response item's attributes besides the answers (which are stored under their field names).
_META = ("id", "step", "completed", "version", "created_at", "updated_at", "completed_at")


@dataclass(frozen=True)
class StoredResponse:
    id: str
    token_hash: str
    answers: dict[str, Any]
    step: int
    completed: bool
    version: int
    created_at: int
    updated_at: int
    completed_at: int | None = None


@dataclass(frozen=True)
class Listed:
    """A response as the dashboard sees it (no token hash)."""

    id: str
    answers: dict[str, Any]
    step: int
    completed: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class SummaryItem:
    counters: dict[str, int]
    version: int
    updated_at: int | None
    epoch: str = ""  # random, set when the summary item is created: (epoch, version) never repeats


@dataclass(frozen=True)
class Position:
    """Where a page of a listing ended: the index segment (answered or not) and the last key in it."""

    answered: bool
    key: str


@dataclass(frozen=True)
class ListedPage:
    rows: list[Listed]
    next: Position | None  # None: this is the last page


@dataclass(frozen=True)
class Change:
    """What an update turns a response into."""

    answers: dict[str, Any]
    step: int
    completed: bool


@dataclass
class SurveyStore:
    client: Any
    table: str

    # --- reads --------------------------------------------------------------

    def get(self, response_id: str) -> StoredResponse | None:
        response = self.client.get_item(TableName=self.table, Key=self._key(response_id), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else self._from_item(item)

    def summary(self) -> SummaryItem:
        """The sum of the summary's shards, read with one Query (they share a partition and fit in 4 KB)."""
        shards = query_items(
            self.client,
            {
                "TableName": self.table,
                "KeyConditionExpression": f"{PARTITION_KEY} = :pk",
                "ExpressionAttributeValues": {":pk": string(keys.SURVEY_SUMMARY_PK)},
                "ConsistentRead": True,
            },
        )
        counters = {name: sum(read_int(item.get(name)) for item in shards) for name in rules.COUNTERS}
        updated = [read_int(item["updated_at"]) for item in shards if "updated_at" in item]
        # Each shard's epoch is random and set when the shard is created: together they name this summary's life,
        # and with the summed version (which only grows) the pair never repeats.
        epochs = sorted(f"{sort_key_of(item)}={read_str(item.get('epoch')) or ''}" for item in shards)
        epoch = hashlib.sha256("|".join(epochs).encode()).hexdigest()[:12] if shards else ""
        return SummaryItem(
            counters,
            sum(read_int(item.get("version")) for item in shards),
            max(updated, default=None),
            epoch,
        )

    def page(self, column: str, descending: bool, after: Position | None, skip: int, size: int) -> ListedPage:
        """Up to `size` responses in the dashboard's order by `column`, after `after` and `skip` more. No tokens.

        The keys come from the column's index (eventually consistent, keys only), merged over its shards; the rows
        are then read from the table (strongly consistent), so what a row shows is current. Read cost follows
        the page (and `skip`), not the number of responses.
        """
        wanted = skip + size + 1
        if column == "created_at":
            entries = self._by_creation(descending, after, min(wanted, sorting.QUERY_LIMIT))
        else:
            entries = self._by_index(column, descending, after, sorting.chunk(keys.SURVEY_SORT_SHARDS, wanted))
        window, more = sorting.take(entries, skip, size)
        found = self._rows([sorting.response_id_of(key) for _, key, item in window if item is None])
        rows = []
        for _, key, item in window:
            rid = sorting.response_id_of(key)
            listed = self._listed(item) if item is not None else found.get(rid)
            if listed is not None:  # None: deleted since the index was read
                rows.append(listed)
        last = window[-1] if window else None
        return ListedPage(rows, Position(last[0], last[1]) if more and last else None)

    def _by_creation(
        self, descending: bool, after: Position | None, limit: int
    ) -> Iterator[tuple[bool, str, dict[str, Any] | None]]:
        """The table's own order: ids start with the creation time. Items come whole (no second read)."""
        prefix = keys.SURVEY_RESPONSE_PREFIX
        bound = prefix + (after.key if after else ("~" if descending else ""))
        request = {
            "TableName": self.table,
            # The partition holds responses only, so one bound selects them.
            "KeyConditionExpression": f"{PARTITION_KEY} = :pk AND {SORT_KEY} {'<' if descending else '>'} :bound",
            "ExpressionAttributeValues": {":pk": string(keys.SURVEY_RESPONSES_PK), ":bound": string(bound)},
            "ScanIndexForward": not descending,
            "ConsistentRead": True,
        }
        for response in query_pages(self.client, request, page_size=limit):
            for item in response.get("Items", []):
                yield True, item["id"]["S"], item

    def _by_index(
        self, column: str, descending: bool, after: Position | None, limit: int
    ) -> Iterator[tuple[bool, str, dict[str, Any] | None]]:
        """Answered values in the order asked for, then the unanswered ones newest first; each merged over the
        index's shards."""
        segments = [(True, descending), (False, True)]
        if after is not None and not after.answered:
            segments = segments[1:]  # the answered ones were all listed before
        for answered, order in segments:
            start = after.key if after is not None and after.answered == answered else None
            fetch = self._index_fetch(column, answered)
            for key in sorting.merged(keys.SURVEY_SORT_SHARDS, fetch, start, order, limit):
                yield answered, key, None

    def _index_fetch(self, column: str, answered: bool) -> sorting.Fetch:
        """A shard's keys of one segment (answered or not), without the segment's first character."""
        pk_name, sk_name = survey_sort_attributes(column)
        segment = keys.survey_sort_segment(answered)
        # Every stored key of the segment is longer than `segment` and below the next character: bounds that no
        # key equals. After a position, the position itself is the inclusive bound, and is skipped.
        low, high = segment, chr(ord(segment) + 1)

        def fetch(shard: int, after: str | None, descending: bool, limit: int) -> Iterator[str]:
            start = None if after is None else segment + after
            bounds = (low, high) if start is None else ((low, start) if descending else (start, high))
            request: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": survey_sort_index(column),
                "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :low AND :high",
                "ExpressionAttributeNames": {"#pk": pk_name, "#sk": sk_name},
                "ExpressionAttributeValues": {
                    ":pk": string(keys.survey_sort_pk(shard)),
                    ":low": string(bounds[0]),
                    ":high": string(bounds[1]),
                },
                "ProjectionExpression": "#sk",
                "ScanIndexForward": not descending,
            }
            for response in query_pages(self.client, request, page_size=limit):
                for item in response.get("Items", []):
                    key = item[sk_name]["S"]
                    if key != start:
                        yield key[1:]

        return fetch

    def _rows(self, ids: list[str]) -> dict[str, Listed]:
        found: dict[str, Listed] = {}
        for i in range(0, len(ids), _BATCH_GET_MAX):
            request_keys = [self._key(rid) for rid in ids[i : i + _BATCH_GET_MAX]]
            for item in batch_get(self.client, self.table, request_keys, consistent=True):
                found[item["id"]["S"]] = self._listed(item)
        return found

    # --- writes -------------------------------------------------------------

    def create(
        self, response_id: str, token_hash: str, answers: Mapping[str, Any], step: int, now_ms: int
    ) -> StoredResponse:
        created = StoredResponse(response_id, token_hash, dict(answers), step, False, 1, now_ms, now_ms)
        put = {"Put": {"TableName": self.table, "Item": self._item(created), "ConditionExpression": ITEM_IS_NEW}}
        deltas = rules.delta(None, False, created.answers, False)
        claims = self._email_claims(response_id, None, created.answers.get("email"))
        # A new id never loses a race: only a concurrent transaction on the summary is retried.
        retry(
            lambda _: self._transact(put, deltas, now_ms, claims),
            lost=conflicted,
            busy="the survey summary is too busy; retry",
        )
        return created

    def update(self, read: StoredResponse, decide: Callable[[StoredResponse], Change], now_ms: int) -> StoredResponse:
        """Apply `decide(current)` to the response atomically with the summary; `decide` may raise to refuse.

        `read` is the response as last read; the write is conditioned on its version, and a lost race reads again.
        """

        def attempt(n: int) -> StoredResponse:
            current = self.get(read.id) if n > 0 else read
            if current is None:
                raise NotFound("no such survey response")
            change = decide(current)
            if (change.answers, change.step, change.completed) == (current.answers, current.step, current.completed):
                return current  # nothing changes: no write, and the dashboard's version stays put
            updated = StoredResponse(
                id=current.id,
                token_hash=current.token_hash,
                answers=change.answers,
                step=change.step,
                completed=change.completed,
                version=current.version + 1,
                created_at=current.created_at,
                updated_at=now_ms,
                completed_at=now_ms if change.completed and not current.completed else current.completed_at,
            )
            put = {
                "Put": {
                    "TableName": self.table,
                    "Item": self._item(updated),
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": num(current.version)},
                }
            }
            self._transact(
                put,
                rules.delta(current.answers, current.completed, updated.answers, updated.completed),
                now_ms,
                self._email_claims(current.id, current.answers.get("email"), updated.answers.get("email")),
            )
            return updated

        return retry(attempt, busy=_BUSY_RESPONSE)

    def delete(self, response_id: str, now_ms: int) -> StoredResponse:
        """Remove a response and its contribution to the summary, in one transaction."""

        def attempt(_: int) -> StoredResponse:
            current = self.get(response_id)
            if current is None:
                raise NotFound("no such survey response")
            delete = {
                "Delete": {
                    "TableName": self.table,
                    "Key": self._key(response_id),
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": num(current.version)},
                }
            }
            self._transact(
                delete,
                rules.delta(current.answers, current.completed, None, False),
                now_ms,
                self._email_claims(current.id, current.answers.get("email"), None),
            )
            return current

        return retry(attempt, busy=_BUSY_RESPONSE)

    # --- transactions -------------------------------------------------------

    def _summary_update(self, deltas: Mapping[str, int], now_ms: int) -> dict[str, Any]:
        """ADD the deltas (and 1 to the version) to one summary shard, chosen at random."""
        names = {"#version": "version", "#updated": "updated_at", "#epoch": "epoch"}
        values: dict[str, Any] = {":one": num(1), ":now": num(now_ms), ":epoch": string(secrets.token_hex(6))}
        adds = ["#version :one"]
        for i, (name, change) in enumerate(sorted(deltas.items())):
            names[f"#c{i}"] = name
            values[f":c{i}"] = num(change)
            adds.append(f"#c{i} :c{i}")
        return {
            "Update": {
                "TableName": self.table,
                "Key": item_key(
                    keys.SURVEY_SUMMARY_PK, keys.survey_summary_sk(random.randrange(keys.SURVEY_SUMMARY_SHARDS))
                ),
                "UpdateExpression": "ADD "
                + ", ".join(adds)
                + " SET #updated = :now, #epoch = if_not_exists(#epoch, :epoch)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _email_claims(self, response_id: str, old: str | None, new: str | None) -> list[dict[str, Any]]:
        """The writes that move a response's claim on its email from `old` to `new`: a Put of the new address's
        claim, if no other response holds it, first (at _CLAIM), then the release of the old one's."""
        before, after = rules.email_identity(old), rules.email_identity(new)
        if before == after:
            return []
        mine = {
            "ConditionExpression": f"attribute_not_exists({PARTITION_KEY}) OR response_id = :id",
            "ExpressionAttributeValues": {":id": string(response_id)},
        }
        claims: list[dict[str, Any]] = []
        if after is not None:
            item = {**item_key(keys.SURVEY_EMAILS_PK, keys.survey_email_sk(after)), "response_id": string(response_id)}
            claims.append({"Put": {"TableName": self.table, "Item": item, **mine}})
        if before is not None:
            key = item_key(keys.SURVEY_EMAILS_PK, keys.survey_email_sk(before))
            claims.append({"Delete": {"TableName": self.table, "Key": key, **mine}})
        return claims

    def _transact(
        self, write: dict[str, Any], deltas: Mapping[str, int], now_ms: int, claims: list[dict[str, Any]]
    ) -> None:
        """The write, the summary's deltas and the email's claims, in one transaction (a new shard is chosen on
        every attempt). 409 email_taken when only the new address's claim failed: another response holds it."""
        try:
            self.client.transact_write_items(TransactItems=[write, self._summary_update(deltas, now_ms), *claims])
        except ClientError as exc:
            failed = [i for i, code in enumerate(cancellation_codes(exc)) if code == "ConditionalCheckFailed"]
            if failed == [_CLAIM] and "Put" in claims[0]:
                raise Conflict(EMAIL_TAKEN, code="email_taken", field="email") from None
            if failed == [_CLAIM + len(claims) - 1] and "Delete" in claims[-1]:
                # The old address is claimed by another response (one saved before claims existed): not ours to
                # release. Nothing was written; write again without the release.
                self._transact(write, deltas, now_ms, claims[:-1])
                return
            raise

    # --- item shapes --------------------------------------------------------

    @staticmethod
    def _key(response_id: str) -> dict[str, Any]:
        return item_key(keys.SURVEY_RESPONSES_PK, keys.survey_response_sk(response_id))

    def _item(self, response: StoredResponse) -> dict[str, Any]:
        item: dict[str, Any] = {
            **self._key(response.id),
            "id": string(response.id),
            "token_hash": string(response.token_hash),
            "step": num(response.step),
            "completed": {"BOOL": response.completed},
            "version": num(response.version),
            "created_at": num(response.created_at),
            "updated_at": num(response.updated_at),
        }
        if response.completed_at is not None:
            item["completed_at"] = num(response.completed_at)
        item.update(self._sort_keys(response))
        for name, value in response.answers.items():
            if name == "age":
                item[name] = num(int(value))
            elif name == "colours":
                item[name] = {"L": [string(c) for c in value]}
            else:
                item[name] = string(value)
        return item

    @staticmethod
    def _sort_keys(response: StoredResponse) -> dict[str, Any]:
        """The response's key in each column's index: one shard attribute for all of them, and per column a sort
        key that starts with its segment (answered or not)."""
        state = {"completed": response.completed, "step": response.step, "updated_at": response.updated_at}
        attributes: dict[str, Any] = {}
        for column in sorting.INDEXED:
            value = sorting.column_value(column, response.answers, state)
            pk_name, sk_name = survey_sort_attributes(column)
            attributes[pk_name] = string(keys.survey_sort_pk(keys.survey_sort_shard(response.id)))
            segment = keys.survey_sort_segment(value is not None)
            attributes[sk_name] = string(segment + sorting.sort_key(column, value, response.id))
        return attributes

    @staticmethod
    def _answers(item: Mapping[str, Any]) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for name in rules.FIELDS:
            attr = item.get(name)
            if attr is None:
                continue
            if name == "age":
                answers[name] = read_int(attr)
            elif name == "colours":
                answers[name] = [c["S"] for c in attr.get("L", [])]
            else:
                answers[name] = read_str(attr)
        return answers

    def _from_item(self, item: Mapping[str, Any]) -> StoredResponse:
        completed_at = item.get("completed_at")
        return StoredResponse(
            id=item["id"]["S"],
            token_hash=item["token_hash"]["S"],
            answers=self._answers(item),
            step=read_int(item.get("step"), 1),
            completed=bool(item.get("completed", {}).get("BOOL", False)),
            version=read_int(item.get("version")),
            created_at=read_int(item.get("created_at")),
            updated_at=read_int(item.get("updated_at")),
            completed_at=None if completed_at is None else read_int(completed_at),
        )

    def _listed(self, item: Mapping[str, Any]) -> Listed:
        return Listed(
            id=item["id"]["S"],
            answers=self._answers(item),
            step=read_int(item.get("step"), 1),
            completed=bool(item.get("completed", {}).get("BOOL", False)),
            created_at=read_int(item.get("created_at")),
            updated_at=read_int(item.get("updated_at")),
        )
