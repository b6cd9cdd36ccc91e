"""Running statistics over HTTP, on either backend."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest

from chalicelib.pure import clock
from tests.conftest import Api, assert_error
from tests.conftest import ok as body


def test_unknown_stream_is_empty(api: Api) -> None:
    snap = body(api.get("/streams/nothing-here"))
    assert snap["stream"] == "nothing-here" and snap["count"] == 0 and snap["session"] is None
    for figure in ("mean", "variance", "stddev", "sample_variance", "sample_stddev", "min", "max", "sum"):
        assert snap[figure] is None


def test_values_update_the_snapshot(api: Api) -> None:
    first = body(api.post("/streams/s1/values", {"value": 2, "user": "ann"}))
    assert first["count"] == 1 and first["mean"] == 2 and first["sample_stddev"] is None
    second = body(api.post("/streams/s1/values", {"values": [4, 4, 5, 5, 7, 9]}))
    values = [2, 4, 4, 5, 5, 7, 9]
    assert second["count"] == 7 and second["session"] == 1
    assert math.isclose(second["mean"], statistics.fmean(values))
    assert math.isclose(second["stddev"], statistics.pstdev(values))
    assert math.isclose(second["sample_stddev"], statistics.stdev(values))
    assert (second["min"], second["max"], second["sum"]) == (2, 9, 36)
    assert body(api.get("/streams/s1")) == {**second, "updated_at": second["updated_at"]}


def test_numerically_sound_over_http(api: Api) -> None:
    for x in (1e10 + 4, 1e10 + 7, 1e10 + 13, 1e10 + 16):
        api.post("/streams/big/values", {"value": x})
    snap = body(api.get("/streams/big"))
    assert snap["mean"] == 1e10 + 10
    assert math.isclose(snap["stddev"], 4.743416490252569, rel_tol=1e-9)


def test_reset_keeps_the_session_and_opens_a_new_one(api: Api) -> None:
    clock.set_source(lambda: 1_700_000_000.0)
    api.post("/streams/r/values", {"values": [1, 2, 3], "user": "ann"})
    clock.set_source(lambda: 1_700_000_060.0)
    closed = body(api.post("/streams/r/reset", {"user": "bob"}))
    assert closed["session"] == 1 and closed["count"] == 3 and closed["mean"] == 2
    assert closed["started_by"] == "ann" and closed["closed_by"] == "bob"
    assert closed["started_at"] == "2023-11-14T22:13:20.000Z"
    assert closed["closed_at"] == "2023-11-14T22:14:20.000Z"
    empty = body(api.get("/streams/r"))
    assert empty["count"] == 0 and empty["session"] is None
    reopened = body(api.post("/streams/r/values", {"value": 10}))
    assert reopened["session"] == 2 and reopened["count"] == 1 and reopened["mean"] == 10
    sessions = body(api.get("/streams/r/sessions"))
    assert [s["session"] for s in sessions["sessions"]] == [1] and sessions["cursor"] is None
    assert sessions["sessions"][0] == closed


def test_reset_without_values_is_a_conflict_and_changes_nothing(api: Api) -> None:
    assert_error(api.post("/streams/quiet/reset"), 409, "no_active_session")
    api.post("/streams/quiet/values", {"value": 1})
    api.post("/streams/quiet/reset")
    assert_error(api.post("/streams/quiet/reset"), 409, "no_active_session")
    assert len(body(api.get("/streams/quiet/sessions"))["sessions"]) == 1


def test_sessions_page_newest_first(api: Api) -> None:
    for n in range(5):
        api.post("/streams/p/values", {"value": n})
        api.post("/streams/p/reset")
    seen: list[int] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = body(api.get(f"/streams/p/sessions{query}"))
        seen += [s["session"] for s in page["sessions"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]


def test_audit_trail_pages_every_value_once_newest_first(api: Api) -> None:
    clock.set_source(lambda: 1_700_000_000.0)
    api.post("/streams/a/values", {"values": [1, 2, 3], "user": "ann"})
    clock.set_source(lambda: 1_700_000_001.0)
    api.post("/streams/a/values", {"value": 4, "user": "bob"})
    api.post("/streams/a/reset")
    clock.set_source(lambda: 1_700_000_002.0)
    api.post("/streams/a/values", {"values": [5, 6]})
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = body(api.get(f"/streams/a/values{query}"))
        assert len(page["values"]) <= 2
        entries += page["values"]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert [e["value"] for e in entries] == [6, 5, 4, 3, 2, 1]
    assert [e["session"] for e in entries] == [2, 2, 1, 1, 1, 1]
    assert [e["user"] for e in entries] == [None, None, "bob", "ann", "ann", "ann"]
    assert entries[0]["at"] == "2023-11-14T22:13:22.000Z"


BAD_BODIES = [
    "not json",
    "[1, 2]",
    '{"value": NaN}',
    '{"value": Infinity}',
    '{"value": -Infinity}',
    {"value": None},
    {"value": True},
    {"value": "3"},
    {"value": 1e51},
    {"value": 1e-60},
    {"value": 10**400},
    {},
    {"value": 1, "values": [1]},
    {"values": []},
    {"values": list(range(101))},
    {"values": [1, "x"]},
    {"values": 5},
    {"values": None},
    {"value": 1, "user": ""},
    {"value": 1, "user": "u" * 65},
    {"value": 1, "user": 7},
]


@pytest.mark.parametrize("bad", BAD_BODIES, ids=[str(b)[:40] for b in BAD_BODIES])
def test_bad_input_is_a_400_and_changes_nothing(api: Api, bad: Any) -> None:
    api.post("/streams/v/values", {"value": 1})
    before = body(api.get("/streams/v"))
    assert_error(api.post("/streams/v/values", bad), 400)
    assert body(api.get("/streams/v")) == before
    assert len(body(api.get("/streams/v/values"))["values"]) == 1


@pytest.mark.parametrize("name", ["a" * 129, "sp ace", "star*name", "%C3%A9"])
def test_bad_stream_names(api: Api, name: str) -> None:
    assert_error(api.post(f"/streams/{name}/values", {"value": 1}), 400)
    assert_error(api.get(f"/streams/{name}"), 400)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "cursor=garbage!", "cursor=eyJhIjoxfQ"])
def test_bad_paging(api: Api, query: str) -> None:
    assert_error(api.get(f"/streams/s/sessions?{query}"), 400)
    assert_error(api.get(f"/streams/s/values?{query}"), 400)


def test_largest_accepted_magnitudes_are_stored(api: Api) -> None:
    snap = body(api.post("/streams/edge/values", {"values": [1e50, -1e50, 1e-50, 0]}))
    assert snap["count"] == 4 and snap["max"] == 1e50 and snap["min"] == -1e50


@pytest.mark.real_dynamodb
@pytest.mark.parametrize(
    "values",
    [
        [1e50, 1e50, -1e50, 3.3e49],  # M2 near 1e101: within DynamoDB's 1e126
        [1e-50, 1.0000000000000002e-50, 0.0],  # M2 below DynamoDB's 1e-130: stored as 0
        [-1e-50, 1e-50],
    ],
)
def test_every_accepted_value_leaves_storable_statistics(api: Api, values: list[float]) -> None:
    # DynamoDB Local enforces the real number limits (moto does not).
    for chunk in (values, values):
        assert api.post("/streams/limits/values", {"values": chunk}).status_code == 200
    snap = body(api.get("/streams/limits"))
    assert snap["count"] == 2 * len(values)
    assert math.isclose(snap["mean"], statistics.fmean(values * 2), rel_tol=1e-9, abs_tol=1e-60)


def test_a_post_is_two_round_trips(api: Api, dynamodb: Any) -> None:
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    api.post("/streams/cheap/values", {"values": [1, 2, 3]})
    assert calls == ["BatchGetItem", "TransactWriteItems"]
    calls.clear()
    api.get("/streams/cheap")
    assert calls == ["BatchGetItem"]


def test_query_parameters_repeated_empty_and_unknown(api: Api) -> None:
    for v in (1, 2, 3):
        api.post("/streams/q/values", {"value": v})
    # A repeated name counts with its last value; a name the operation does not declare is refused, named.
    assert len(body(api.get("/streams/q/values?limit=1&limit=2"))["values"]) == 2
    assert assert_error(api.get("/streams/q/values?limit=2&colour=red"), 400, "invalid_input")["field"] == "colour"
    # An empty integer is not a number; an empty cursor is the first page.
    assert assert_error(api.get("/streams/q/values?limit="), 400, "invalid_input")["field"] == "limit"
    assert len(body(api.get("/streams/q/values?cursor="))["values"]) == 3
    for padded in ("%202", "+2", "2.0", "2_0"):
        assert assert_error(api.get(f"/streams/q/values?limit={padded}"), 400)["field"] == "limit"
