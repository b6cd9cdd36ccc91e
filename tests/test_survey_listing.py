"""The dashboard listing's pure parts: the order of rows and the ETag (no database)."""

from __future__ import annotations

import pytest

from chalicelib.survey import listing
from chalicelib.survey.store import Listed

pytestmark = pytest.mark.pure


def row(rid: str, **answers: object) -> Listed:
    return Listed(id=rid, answers=dict(answers), completed=False, step=1, created_at=0, updated_at=0)


def test_sort_puts_unanswered_last_either_way_and_ties_newest_first() -> None:
    rows = [row("a", name="bob"), row("b"), row("c", name="Ann"), row("d", name="bob")]
    assert [r.id for r in listing.sort_rows(rows, "name", False)] == ["c", "d", "a", "b"]
    assert [r.id for r in listing.sort_rows(rows, "name", True)] == ["d", "a", "c", "b"]
    colours = [row("a", colours=["blue"]), row("b", colours=["red", "white"])]
    assert [r.id for r in listing.sort_rows(colours, "colours", False)] == ["b", "a"]  # palette order


def test_etag_names_the_state_and_the_page() -> None:
    query = {"sort": "name", "order": "asc", "size": 25, "page": 1}
    tag = listing.etag("e1", 7, query)
    assert tag == listing.etag("e1", 7, dict(reversed(list(query.items()))))
    assert (
        len(
            {
                tag,
                listing.etag("e1", 8, query),
                listing.etag("e2", 7, query),
                listing.etag("e1", 7, {**query, "page": 2}),
            }
        )
        == 4
    )
    assert listing.matches(f'"x", W/{tag}', tag) and listing.matches("*", tag)
    assert not listing.matches(None, tag) and not listing.matches('"other"', tag)
