"""The dashboard listing's pure parts: the order of rows and the ETag (no database)."""

from __future__ import annotations

import pytest

from chalicelib.survey import listing, sorting
from chalicelib.survey.store import Position

pytestmark = pytest.mark.pure


def test_reference_order_puts_unanswered_last_either_way_newest_first_and_breaks_ties_by_id() -> None:
    rows = [("a", "bob"), ("b", None), ("c", "Ann"), ("d", "bob"), ("e", None)]
    assert sorting.reference_order(rows, "name", False) == ["c", "a", "d", "e", "b"]
    assert sorting.reference_order(rows, "name", True) == ["d", "a", "c", "e", "b"]
    colours = [("a", ["blue"]), ("b", ["red", "white"])]
    assert sorting.reference_order(colours, "colours", False) == ["b", "a"]  # palette order


def test_a_cursor_holds_the_position_and_nothing_else() -> None:
    after = Position(False, "0123")
    assert listing.position(listing.cursor_fields(after)) == after
    assert listing.cursor_fields(None) is None and listing.position(None) is None
    assert set(listing.CURSOR_FIELDS) == set(listing.cursor_fields(after) or {})


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
