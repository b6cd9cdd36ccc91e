"""Data access for the survey. Every DynamoDB expression of the feature lives here.

A response is one item (keys.survey_response_sk); the summary is one item of
integer counters (rules.COUNTERS) plus `version` and `updated_at`. Every write
to a response is ONE TransactWriteItems: the response item, conditioned on the
version it was read at (two tabs never lose each other's answers; a lost race
is re-read and retried), and an UpdateItem that ADDs the counters' deltas and 1
to the summary's version. So the summary always equals the sum of the stored
responses' contributions, and its version changes with every answer change:
the dashboard's ETag.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import keys
from chalicelib.dynamo import (
    ITEM_IS_NEW,
    conflicted,
    item_key,
    num,
    query_pages,
    read_int,
    read_str,
    retry,
    sort_key_prefix,
    string,
)
from chalicelib.errors import NotFound
from chalicelib.survey import rules

QUERY_PAGE = 1000  # items per Query call while reading responses for the dashboard
_SUMMARY_KEY = item_key(keys.SURVEY_SUMMARY_PK, keys.SURVEY_SUMMARY_SK)
_BUSY_RESPONSE = "this response is being changed by many requests at once; retry"

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
        response = self.client.get_item(TableName=self.table, Key=_SUMMARY_KEY, ConsistentRead=True)
        item = response.get("Item", {})
        counters = {name: read_int(item.get(name)) for name in rules.COUNTERS}
        updated = item.get("updated_at")
        return SummaryItem(
            counters,
            read_int(item.get("version")),
            None if updated is None else read_int(updated),
            read_str(item.get("epoch")) or "",
        )

    def list_newest(self, limit: int) -> tuple[list[Listed], bool]:
        """Up to `limit` responses, newest first, and whether older ones were left out. No token hashes."""
        names = {f"#a{i}": name for i, name in enumerate((*_META, *rules.FIELDS))}
        request: dict[str, Any] = {
            "TableName": self.table,
            **sort_key_prefix(keys.SURVEY_RESPONSES_PK, keys.SURVEY_RESPONSE_PREFIX),
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        # One more than `limit`: whether it exists says if older responses were left out.
        pages = query_pages(self.client, request, max_items=limit + 1, page_size=QUERY_PAGE)
        found = [self._listed(item) for page in pages for item in page.get("Items", [])]
        return found[:limit], len(found) > limit

    # --- writes -------------------------------------------------------------

    def create(
        self, response_id: str, token_hash: str, answers: Mapping[str, Any], step: int, now_ms: int
    ) -> StoredResponse:
        created = StoredResponse(response_id, token_hash, dict(answers), step, False, 1, now_ms, now_ms)
        put = {"Put": {"TableName": self.table, "Item": self._item(created), "ConditionExpression": ITEM_IS_NEW}}
        deltas = rules.delta(None, False, created.answers, False)
        # A new id never loses a race: only a concurrent transaction on the summary is retried.
        retry(
            lambda _: self._transact(put, deltas, now_ms), lost=conflicted, busy="the survey summary is too busy; retry"
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
                put, rules.delta(current.answers, current.completed, updated.answers, updated.completed), now_ms
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
            self._transact(delete, rules.delta(current.answers, current.completed, None, False), now_ms)
            return current

        return retry(attempt, busy=_BUSY_RESPONSE)

    # --- transactions -------------------------------------------------------

    def _summary_update(self, deltas: Mapping[str, int], now_ms: int) -> dict[str, Any]:
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
                "Key": _SUMMARY_KEY,
                "UpdateExpression": "ADD "
                + ", ".join(adds)
                + " SET #updated = :now, #epoch = if_not_exists(#epoch, :epoch)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _transact(self, write: dict[str, Any], deltas: Mapping[str, int], now_ms: int) -> None:
        """The write and the summary's deltas, in one transaction."""
        self.client.transact_write_items(TransactItems=[write, self._summary_update(deltas, now_ms)])

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
        for name, value in response.answers.items():
            if name == "age":
                item[name] = num(int(value))
            elif name == "colours":
                item[name] = {"L": [string(c) for c in value]}
            else:
                item[name] = string(value)
        return item

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
