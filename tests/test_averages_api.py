"""Moving averages over HTTP, on either backend."""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

import pytest

from chalicelib.averages.store import capacity
from chalicelib.storage import keys
from tests.conftest import TABLE, Api, assert_error, ok


def body(response: Any) -> Any:
    assert response.headers["Content-Type"] == "application/json", response.body
    return ok(response)


def exact_mean(values: list[float]) -> float:
    return float(sum(map(Fraction, values)) / len(values))


def stored_elements(dynamodb: Any, key: str) -> list[float]:
    item = dynamodb.get_item(
        TableName=TABLE,
        Key={"pk": {"S": keys.average_pk(key)}, "sk": {"S": keys.AVERAGE_WINDOW_SK}},
        ConsistentRead=True,
    )["Item"]
    return [float(e["N"]) for e in item["elements"]["L"]]


def test_create_append_get(api: Api) -> None:
    assert body(api.put("/averages/temp", {"size": 3})) == {"size": 3, "count": 0, "average": None, "elements": []}
    assert body(api.get("/averages/temp")) == {"size": 3, "count": 0, "average": None, "elements": []}
    assert body(api.post("/averages/temp", {"value": 1})) == {"average": 1.0, "count": 1, "size": 3}
    assert body(api.post("/averages/temp", {"value": 2.5})) == {"average": 1.75, "count": 2, "size": 3}
    assert body(api.post("/averages/temp", {"value": -0.5})) == {"average": 1.0, "count": 3, "size": 3}
    assert body(api.post("/averages/temp", {"value": 10})) == {"average": 4.0, "count": 3, "size": 3}
    assert body(api.get("/averages/temp")) == {"size": 3, "count": 3, "average": 4.0, "elements": [2.5, -0.5, 10]}


def test_keys_are_independent_and_may_use_dots_colons_dashes(api: Api) -> None:
    body(api.put("/averages/a.b:c-d_1", {"size": 2}))
    body(api.put("/averages/other", {"size": 2}))
    body(api.post("/averages/a.b:c-d_1", {"value": 5}))
    assert body(api.get("/averages/a.b:c-d_1"))["elements"] == [5]
    assert body(api.get("/averages/other"))["elements"] == []
    long_key = "k" * 128
    assert body(api.put(f"/averages/{long_key}", {"size": 1}))["size"] == 1


def test_resize_shrink_keeps_newest_and_grow_keeps_all(api: Api) -> None:
    body(api.put("/averages/r", {"size": 5}))
    for x in (1, 2, 3, 4, 5):
        body(api.post("/averages/r", {"value": x}))
    assert body(api.put("/averages/r", {"size": 2})) == {"size": 2, "count": 2, "average": 4.5, "elements": [4, 5]}
    assert body(api.put("/averages/r", {"size": 4})) == {"size": 4, "count": 2, "average": 4.5, "elements": [4, 5]}
    for x in (6, 7, 8):
        body(api.post("/averages/r", {"value": x}))
    assert body(api.get("/averages/r"))["elements"] == [5, 6, 7, 8]
    # Same size again: nothing changes.
    assert body(api.put("/averages/r", {"size": 4}))["elements"] == [5, 6, 7, 8]


def test_growing_never_brings_back_evicted_elements(api: Api, dynamodb: Any) -> None:
    # The item keeps evicted elements until the list reaches its cap; a resize must not revive them.
    body(api.put("/averages/g", {"size": 2}))
    for x in range(10):
        body(api.post("/averages/g", {"value": x}))
    assert len(stored_elements(dynamodb, "g")) == 10  # lazily trimmed
    assert body(api.put("/averages/g", {"size": 6}))["elements"] == [8, 9]
    assert stored_elements(dynamodb, "g") == [8, 9]


def test_long_runs_rewrite_the_list_at_its_cap(api: Api, dynamodb: Any) -> None:
    rng = random.Random(4)
    size = 5
    body(api.put("/averages/long", {"size": size}))
    values: list[float] = []
    for _ in range(3 * capacity(size) + 2):
        x = rng.uniform(-1e6, 1e6)
        values.append(x)
        answer = body(api.post("/averages/long", {"value": x}))
        assert answer == {"average": exact_mean(values[-size:]), "count": min(size, len(values)), "size": size}
        assert len(stored_elements(dynamodb, "long")) <= capacity(size)
    state = body(api.get("/averages/long"))
    assert state["elements"] == values[-size:] and state["average"] == exact_mean(values[-size:])


def test_average_is_exact_over_http(api: Api) -> None:
    body(api.put("/averages/exact", {"size": 3}))
    for x in (1e16, 1, 1, 1):
        answer = body(api.post("/averages/exact", {"value": x}))
    assert answer["average"] == 1.0
    for x in (0.1, 0.2, 0.3):
        body(api.post("/averages/exact", {"value": x}))
    state = body(api.get("/averages/exact"))
    assert state["elements"] == [0.1, 0.2, 0.3] and state["average"] == exact_mean([0.1, 0.2, 0.3])


def test_never_created_key_is_a_json_404(api: Api) -> None:
    assert_error(api.post("/averages/ghost", {"value": 1}), 404, "window_not_found")
    assert_error(api.get("/averages/ghost"), 404, "window_not_found")


BAD_SIZES = [0, -1, 10_001, 3.5, 1e4 + 0.5, True, False, None, "3", [3], {"n": 3}]


@pytest.mark.parametrize("size", BAD_SIZES)
def test_bad_sizes_are_rejected_and_change_nothing(api: Api, size: Any) -> None:
    body(api.put("/averages/s", {"size": 2}))
    body(api.post("/averages/s", {"value": 7}))
    before = body(api.get("/averages/s"))
    assert assert_error(api.put("/averages/s", {"size": size}), 400)["field"] == "size"
    assert body(api.get("/averages/s")) == before
    # ...and never create a window either.
    assert_error(api.put("/averages/fresh", {"size": size}), 400)
    assert_error(api.get("/averages/fresh"), 404)


def test_a_size_with_no_fraction_is_that_integer(api: Api) -> None:
    # JSON has one number type, and JSON Schema's `integer` (the document's) is any number with no fraction.
    assert body(api.put("/averages/f", {"size": 60.0}))["size"] == 60
    assert body(api.put("/averages/f", {"size": 1e4}))["size"] == 10_000
    assert assert_error(api.put("/averages/f", {"size": 1e4 + 1.0}), 400)["field"] == "size"


def test_a_percent_encoded_key_is_decoded_as_api_gateway_decodes_it(api: Api) -> None:
    body(api.put("/averages/I%3A%3AR", {"size": 2}))
    body(api.post("/averages/I::R", {"value": 4}))
    assert body(api.get("/averages/I%3a%3aR"))["elements"] == [4]


def test_size_bounds_are_inclusive(api: Api) -> None:
    assert body(api.put("/averages/one", {"size": 1}))["size"] == 1
    assert body(api.put("/averages/most", {"size": 10_000}))["size"] == 10_000


@pytest.mark.parametrize(
    "raw",
    [
        {"value": "1"},
        {"value": True},
        {"value": None},
        {"value": [1]},
        {"value": {"x": 1}},
        {},
        {"value": 1e51},
        {"value": -1e51},
        {"value": 1e-51},
        '{"value": NaN}',
        '{"value": Infinity}',
        '{"value": -Infinity}',
        '{"value": 1e400}',
        "not json",
        "[1]",
        "",
    ],
)
def test_bad_values_are_rejected_and_store_nothing(api: Api, raw: Any) -> None:
    body(api.put("/averages/v", {"size": 3}))
    body(api.post("/averages/v", {"value": 2}))
    assert_error(api.post("/averages/v", raw), 400)
    assert body(api.get("/averages/v")) == {"size": 3, "count": 1, "average": 2.0, "elements": [2]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1e51, "value: input should be less than or equal to 1e+50"),
        (-1e51, "value: input should be greater than or equal to -1e+50"),
    ],
)
def test_a_value_out_of_range_is_told_its_bound_readably(api: Api, value: float, message: str) -> None:
    body(api.put("/averages/v", {"size": 3}))
    assert assert_error(api.post("/averages/v", {"value": value}), 400)["message"] == message


def test_value_bounds_are_inclusive(api: Api) -> None:
    body(api.put("/averages/b", {"size": 4}))
    for x in (1e50, -1e50, 1e-50, 0):
        body(api.post("/averages/b", {"value": x}))
    state = body(api.get("/averages/b"))
    assert state["elements"] == [1e50, -1e50, 1e-50, 0] and state["average"] == exact_mean([1e50, -1e50, 1e-50, 0])


@pytest.mark.parametrize("path", ["/averages/" + "k" * 129, "/averages/a%20b", "/averages/a%23b", "/averages/%C3%A9"])
def test_bad_keys_are_rejected(api: Api, path: str) -> None:
    assert assert_error(api.put(path, {"size": 2}), 400)["field"] == "key"
    assert assert_error(api.post(path, {"value": 1}), 400)["field"] == "key"
    assert assert_error(api.get(path), 400)["field"] == "key"
