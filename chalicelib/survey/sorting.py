"""The dashboard's orders: each sortable column's index sort key, and the k-way merge of sharded index pages.

Pure: no AWS, no Chalice. A response appears in each column's index (chalicelib/storage/table.py) under

    sort_key(column, value, id) = body(value) + SEPARATOR + packed_id(id)

so that, as DynamoDB compares string keys (UTF-8 bytes, which is code point order), keys order by
(normalized value, id). Numbers are fixed-width digits; `updated_at` counts whole minutes (UPDATED_RESOLUTION_MS),
so saves within one minute leave its index entry where it is. Text is case-folded, its line breaks and tabs
become spaces, and only its first TEXT_CHARS characters count: texts that agree there are ties, broken
by id. Every character of a text body is at least " ", so SEPARATOR ("\\x01") ends a body below any
character that could continue it ("ab" before "abc"). The id is packed into 19 characters of an
order-preserving alphabet (every response carries 11 keys, and an item's size is what a save costs). The key
stays far below the 1,024 bytes a GSI sort key may hold (TEXT_CHARS characters of at most 4 bytes each).

Unanswered values are listed after every answered one in either order, newest first; they live under
another index partition (`present` False), whose sort key is the id alone.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from chalicelib.storage.table import SURVEY_SORT_COLUMNS
from chalicelib.survey import rules

SEPARATOR = "\x01"
TEXT_CHARS = 32
ANSWER_COLUMNS: tuple[str, ...] = rules.FIELDS
STATE_COLUMNS: tuple[str, ...] = ("completed", "step", "updated_at")  # always present
# created_at needs no index: response ids start with the creation time, so the table's own order is it.
INDEXED: tuple[str, ...] = (*ANSWER_COLUMNS, *STATE_COLUMNS)
SORTABLE: tuple[str, ...] = (*INDEXED, "created_at")
assert INDEXED == SURVEY_SORT_COLUMNS, "each indexed column needs its index in chalicelib/storage/table.py"
_TIMESTAMP_DIGITS = 15
# The updated_at index orders by the minute of the last change (then by id): a save in the same minute as the
# previous one moves no index entry. 10 digits of minutes last until the year 20995.
UPDATED_RESOLUTION_MS = 60_000
_MINUTE_DIGITS = 10
# Response ids are 28 hex digits (12 of creation time, 16 random): 112 bits, 19 characters of 6 bits each.
_ID_HEX = 28
_PACKED_CHARS = 19
# An alphabet in ASCII order, so packed ids order as the ids do; none of its characters is SEPARATOR.
_ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
assert list(_ALPHABET) == sorted(_ALPHABET) and len(_ALPHABET) == 64
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
    if column == "updated_at":
        return f"{int(value) // UPDATED_RESOLUTION_MS:0{_MINUTE_DIGITS}d}"
    if column == "created_at":
        return f"{int(value):0{_TIMESTAMP_DIGITS}d}"
    return normalized_text(str(value))


def packed_id(response_id: str) -> str:
    """A response id (28 hex digits) as 19 characters that order as the ids do."""
    if len(response_id) != _ID_HEX:
        raise ValueError(f"a response id has {_ID_HEX} hex digits")
    value = int(response_id, 16)
    out = []
    for _ in range(_PACKED_CHARS):
        value, digit = divmod(value, 64)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def unpacked_id(packed: str) -> str:
    value = 0
    for ch in packed:
        value = value * 64 + _ALPHABET.index(ch)
    return f"{value:0{_ID_HEX}x}"


def sort_key(column: str, value: Any, response_id: str) -> str:
    """The index sort key of a response with `value` in `column` (None: unanswered, keyed by id alone)."""
    tiebreak = packed_id(response_id)
    return tiebreak if value is None else body(column, value) + SEPARATOR + tiebreak


def response_id_of(key: str) -> str:
    """The id at the end of a sort key (packed ids never hold SEPARATOR)."""
    return unpacked_id(key.rsplit(SEPARATOR, 1)[-1])


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
