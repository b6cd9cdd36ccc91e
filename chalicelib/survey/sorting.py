"""The dashboard's orders: each sortable column's index sort key, and the k-way merge of sharded index pages.

Pure: no AWS, no Chalice. A response appears in each column's index (chalicelib/table.py) under

    sort_key(column, value, id) = body(value) + SEPARATOR + id

so that, as DynamoDB compares string keys (UTF-8 bytes, which is code point order), keys order by
(normalized value, id). Numbers are fixed-width digits. Text is case-folded, its line breaks and tabs
become spaces, and only its first TEXT_CHARS characters count: texts that agree there are ties, broken
by id. Every character of a text body is at least " ", so SEPARATOR ("\\x01") ends a body below any
character that could continue it ("ab" before "abc"). The key stays far below the 1,024 bytes a GSI sort
key may hold (TEXT_CHARS characters of at most 4 bytes each, plus a 28-character id).

Unanswered values are listed after every answered one in either order, newest first; they live under
another index partition (`present` False), whose sort key is the id alone.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from chalicelib.survey import rules
from chalicelib.table import SURVEY_SORT_COLUMNS

SEPARATOR = "\x01"
TEXT_CHARS = 32
ANSWER_COLUMNS: tuple[str, ...] = rules.FIELDS
STATE_COLUMNS: tuple[str, ...] = ("completed", "step", "updated_at")  # always present
# created_at needs no index: response ids start with the creation time, so the table's own order is it.
INDEXED: tuple[str, ...] = (*ANSWER_COLUMNS, *STATE_COLUMNS)
SORTABLE: tuple[str, ...] = (*INDEXED, "created_at")
assert INDEXED == SURVEY_SORT_COLUMNS, "each indexed column needs its index in chalicelib/table.py"
_TIMESTAMP_DIGITS = 15
QUERY_LIMIT = 1000  # keys asked for in one Query at most


def normalized_text(text: str) -> str:
    """What a text sorts by: case-folded, every control character a space, the first TEXT_CHARS characters."""
    folded = text.casefold()
    return "".join(" " if ch < " " else ch for ch in folded)[:TEXT_CHARS]


def body(column: str, value: Any) -> str:
    """The part of the sort key that orders by value; `value` as stored (never None)."""
    if column == "age":
        return f"{int(value):03d}"
    if column == "colours":  # a list of palette colours in palette order: compared as lists of palette indexes
        return "".join(chr(ord("a") + rules.PALETTE.index(c)) for c in value)
    if column == "completed":
        return "1" if value else "0"
    if column == "step":
        return str(int(value))
    if column in ("created_at", "updated_at"):
        return f"{int(value):0{_TIMESTAMP_DIGITS}d}"
    return normalized_text(str(value))


def sort_key(column: str, value: Any, response_id: str) -> str:
    """The index sort key of a response with `value` in `column` (None: unanswered, keyed by id alone)."""
    return response_id if value is None else body(column, value) + SEPARATOR + response_id


def response_id_of(key: str) -> str:
    """The id at the end of a sort key (ids never hold SEPARATOR)."""
    return key.rsplit(SEPARATOR, 1)[-1]


def column_value(column: str, answers: Mapping[str, Any], state: Mapping[str, Any]) -> Any:
    """The value a response sorts by in `column`: an answer (None when unanswered) or a state field."""
    return answers.get(column) if column in ANSWER_COLUMNS else state[column]


def reference_order(rows: Iterable[tuple[str, Any]], column: str, descending: bool) -> list[str]:
    """The ids of (id, value) rows in the dashboard's order, sorted in memory: answered values by
    (normalized value, id), reversed for descending; then the unanswered, newest first."""
    present = [(body(column, v), rid) for rid, v in rows if v is not None]
    absent = [rid for rid, v in rows if v is None]
    return [rid for _, rid in sorted(present, reverse=descending)] + sorted(absent, reverse=True)


# --- merging the shards of an index ------------------------------------------------------------------------

# A shard's keys after a position, in the order asked for: fetch(shard, after, descending, limit) -> keys.
Fetch = Callable[[int, str | None, bool, int], Iterator[str]]


def merged(shards: int, fetch: Fetch, after: str | None, descending: bool, limit: int) -> Iterator[str]:
    """Every shard's keys after `after`, merged in order (each shard read lazily, `limit` keys a call)."""
    streams = [fetch(shard, after, descending, limit) for shard in range(shards)]
    return heapq.merge(*streams, reverse=descending)


def chunk(shards: int, wanted: int) -> int:
    """Keys to ask each shard for when `wanted` keys are needed from the merge: twice a fair share, and a little
    more, so a page rarely needs a second call to any shard (ids hash evenly over the shards)."""
    return min(QUERY_LIMIT, 2 * -(-wanted // shards) + 4)


def take(keys: Iterator[Any], skip: int, size: int) -> tuple[list[Any], bool]:
    """The `size` keys after the first `skip`, and whether any follow."""
    window = list(itertools.islice(keys, skip, skip + size + 1))
    return window[:size], len(window) > size
