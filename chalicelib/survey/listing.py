"""The dashboard's listing of responses: the window of newest responses it covers, their order, the ETag of an
answer and the rows last read.

The dashboard sorts in memory over the newest WINDOW responses (one Query, paginated): exact for every survey up
to WINDOW responses; beyond, the table covers the newest WINDOW and says so ("truncated"), while the summary always
covers every response. Measured (bench/survey.py): a changed poll at 2,000 responses stays well inside the 2 s
freshness goal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from chalicelib.survey import rules
from chalicelib.survey.store import Listed, SummaryItem, SurveyStore

WINDOW = 2000
PAGE_SIZE_MAX = 200
ETAG_FORMAT = "s1"  # change when the body's shape changes, so cached copies are not reused


def sort_rows(rows: list[Listed], column: str, descending: bool) -> list[Listed]:
    """Sorted by `column`; unanswered values last in either order; ties newest first."""

    def value(row: Listed) -> Any:
        if column in rules.FIELDS:
            v = row.answers.get(column)
            if isinstance(v, str):
                return (v.casefold(), v)
            if isinstance(v, list):
                return [rules.PALETTE.index(c) for c in v]
            return v
        return getattr(row, column)

    newest_first = sorted(rows, key=lambda r: r.id, reverse=True)
    present = [r for r in newest_first if value(r) is not None]
    absent = [r for r in newest_first if value(r) is None]
    return sorted(present, key=value, reverse=descending) + absent


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


# The rows last read, per table and summary state: sorting or paging while nothing changes reads nothing
# more. Reads are strongly consistent and follow the summary's read, so rows cached for (epoch, version)
# are at least as new as that version.
_rows_cache: dict[str, tuple[tuple[str, int], list[Listed], bool]] = {}


def forget_cached_rows() -> None:
    _rows_cache.clear()


def newest_rows(store: SurveyStore, summary: SummaryItem) -> tuple[list[Listed], bool]:
    """The newest WINDOW responses as of `summary` (read again only when the summary changed), and whether there
    are more."""
    state = (summary.epoch, summary.version)
    cached = _rows_cache.get(store.table)
    if cached is not None and cached[0] == state and summary.epoch:
        return cached[1], cached[2]
    listed, truncated = store.list_newest(WINDOW)
    _rows_cache[store.table] = (state, listed, truncated)
    return listed, truncated
