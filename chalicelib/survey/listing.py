"""The dashboard's listing of responses: one page of every response in any column's order, its cursor, and the
ETag of an answer.

The store reads one page from the column's index (chalicelib/survey/sorting.py): what it costs follows the page,
not the number of responses. A page is selected by the previous answer's signed `cursor` (reads only that page)
or by a page number (reads the index keys of the pages before it first: keys only, but more the deeper it is).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from chalicelib.survey.store import ListedPage, Position, SurveyStore

PAGE_SIZE_MAX = 200
PAGE_MAX = 2000  # a page number reads (page - 1) * size index keys before its page; a cursor reads none
ETAG_FORMAT = "s2"  # change when the body's shape changes, so cached copies are not reused
# The query parameters a cursor is bound to: it pages one order; `size` may change between pages.
CURSOR_QUERY = ("sort", "order")
CURSOR_FIELDS: dict[str, type] = {"answered": bool, "key": str}


def etag(epoch: str, version: int, query: Mapping[str, Any]) -> str:
    """The ETag of the page `query` selects while the summary is at (epoch, version)."""
    digest = hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]
    return f'"{ETAG_FORMAT}-{epoch}-{version}-{digest}"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (weak or strong) or is `*`."""
    if not if_none_match:
        return False
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return tag in candidates or "*" in candidates


def position(fields: Mapping[str, Any] | None) -> Position | None:
    """A decoded cursor's position."""
    return None if fields is None else Position(bool(fields["answered"]), str(fields["key"]))


def cursor_fields(after: Position | None) -> dict[str, Any] | None:
    """What the next page's cursor holds (None: no next page)."""
    return None if after is None else {"answered": after.answered, "key": after.key}


def read_page(store: SurveyStore, sort: str, order: str, size: int, page: int, after: Position | None) -> ListedPage:
    """The page after the cursor's position, or else page number `page`."""
    skip = 0 if after is not None else (page - 1) * size
    return store.page(sort, order == "desc", after, skip, size)
