"""Moving averages under concurrency and at the item-size limit.

Concurrency runs on both backends (the moto fixture serialises requests, as DynamoDB applies each
update atomically). The item-size test needs DynamoDB Local: moto's size accounting counts a
replaced list twice (an update of a ~230 KB list is refused as "Item size to update has exceeded
the maximum allowed size").
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from bench.common import Meter
from chalicelib.averages.moving_average import MAX_SIZE
from chalicelib.averages.store import AverageStore, capacity
from chalicelib.process import runtime
from chalicelib.storage import keys
from tests.conftest import TABLE, Api, ok

THREADS = 8
EACH = 50


def exact_mean(values: list[float]) -> float:
    return float(sum(map(Fraction, values)) / len(values))


def window_item(dynamodb: Any, key: str) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.get_item(
        TableName=TABLE,
        Key={"pk": {"S": keys.average_pk(key)}, "sk": {"S": keys.AVERAGE_WINDOW_SK}},
        ConsistentRead=True,
    )["Item"]
    return item


def post_concurrently(api: Api, key: str) -> list[list[float]]:
    batches = [[thread * 1000 + i + 0.25 for i in range(EACH)] for thread in range(THREADS)]

    def post_all(values: list[float]) -> None:
        for x in values:
            answer = ok(api.post(f"/averages/{key}", {"value": x}))
            assert answer["size"] >= answer["count"] >= 1

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(post_all, batches))
    return batches


def assert_each_thread_in_order(elements: list[float], batches: list[list[float]]) -> None:
    for batch in batches:
        mine = [x for x in elements if x in set(batch)]
        assert mine == batch[len(batch) - len(mine) :]  # the newest of this thread's values, in its order


@pytest.mark.heavy
def test_concurrent_appends_lose_nothing(api: Api) -> None:
    ok(api.put("/averages/hot", {"size": THREADS * EACH}))
    batches = post_concurrently(api, "hot")
    state = ok(api.get("/averages/hot"))
    everything = [x for batch in batches for x in batch]
    assert state["count"] == len(everything)
    assert sorted(state["elements"]) == sorted(everything)  # each exactly once
    assert_each_thread_in_order(state["elements"], batches)
    assert state["average"] == exact_mean(state["elements"])


def test_concurrent_appends_through_list_rewrites_lose_nothing(api: Api, dynamodb: Any) -> None:
    # A small window: the list reaches its cap every few dozen appends, and the appender
    # that rewrites it races the others (optimistic locking on `version`).
    size = 20
    ok(api.put("/averages/churn", {"size": size}))
    batches = post_concurrently(api, "churn")
    state = ok(api.get("/averages/churn"))
    item = window_item(dynamodb, "churn")
    # Every write bumps the version exactly once: 1 at creation + one per append, so no append was dropped.
    assert int(item["version"]["N"]) == 1 + THREADS * EACH
    assert len(item["elements"]["L"]) <= capacity(size)
    everything = {x for batch in batches for x in batch}
    assert state["count"] == size and len(set(state["elements"])) == size and set(state["elements"]) <= everything
    assert_each_thread_in_order(state["elements"], batches)
    assert state["average"] == exact_mean(state["elements"])


def worst_case_numbers(n: int, rng: random.Random) -> list[float]:
    """Numbers of 17 significant digits near the bound, the longest a double prints (like -9.8765432109876543e+49)."""
    found: list[float] = []
    while len(found) < n:
        x = -rng.uniform(1e49, 1e50)
        if len(Decimal(repr(x)).as_tuple().digits) == 17:
            found.append(x)
    return found


@pytest.mark.real_dynamodb
def test_full_window_of_worst_case_numbers_fits_and_slides(api: Api, dynamodb: Any) -> None:
    rng = random.Random(4)
    key = "widest"
    ok(api.put(f"/averages/{key}", {"size": MAX_SIZE}))
    # Fill the item to its cap (evicted elements included) directly: 10,100 appends over HTTP take minutes.
    cap = capacity(MAX_SIZE)
    values = worst_case_numbers(cap, rng)
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": keys.average_pk(key)}, "sk": {"S": keys.AVERAGE_WINDOW_SK}},
        UpdateExpression="SET elements = :e",
        ExpressionAttributeValues={":e": {"L": [{"N": repr(x)} for x in values]}},
    )
    state = ok(api.get(f"/averages/{key}"))
    assert state["elements"] == values[-MAX_SIZE:] and state["average"] == exact_mean(values[-MAX_SIZE:])

    # At the cap, the next append rewrites the list as exactly the window.
    extra = worst_case_numbers(3, rng)
    store = AverageStore(runtime.dynamodb(), runtime.table_name())
    window = store.append(key, extra[0])
    assert window.get_elements() == [*values, extra[0]][-MAX_SIZE:]
    assert len(window_item(dynamodb, key)["elements"]["L"]) == MAX_SIZE
    # The plain append (one UpdateItem) is charged by the whole item: ~118 KB -> ~118 WCU, not 1.
    with Meter(store.client) as meter:
        window = store.append(key, extra[1])
    assert 100 <= meter.write_units <= 130 and meter.round_trips == 1
    answer = ok(api.post(f"/averages/{key}", {"value": extra[2]}))
    expected = [*values, *extra][-MAX_SIZE:]
    assert answer == {"average": exact_mean(expected), "count": MAX_SIZE, "size": MAX_SIZE}
    assert ok(api.get(f"/averages/{key}"))["elements"] == expected
