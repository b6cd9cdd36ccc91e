"""Last-hour sums against DynamoDB Local only: its own TTL sweep, and real concurrent writers."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.metrics import compaction
from chalicelib.metrics import window as w
from chalicelib.metrics.store import SumStore
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.storage.dynamo import cancellation_codes
from tests.conftest import TABLE, Api

DAY_MS = 86_400_000


def sum_of(api: Api, key: str, window: int) -> int:
    response = api.get(f"/metric/{key}/sum?window={window}")
    assert response.status_code == 200, response.body
    return int(json.loads(response.body)["value"])


def items_of(dynamodb: Any, key: str) -> list[dict[str, Any]]:
    page = dynamodb.scan(TableName=TABLE)  # small table: one page
    return [i for i in page["Items"] if f"#{key}#" in i["pk"]["S"] or i["pk"]["S"] == f"SUMB#{key}"]


@pytest.mark.real_dynamodb
def test_sum_is_unchanged_when_dynamodb_sweeps_expired_items(api: Api, dynamodb: Any) -> None:
    """Expired items deleted by DynamoDB Local's TTL sweep, waited for at most 3 s; whatever the sweeper has not
    reached by then is deleted by hand (so the test does not depend on the sweeper's timing, only its effect)."""
    store = SumStore(dynamodb, TABLE)
    now = int(time.time() * 1000)
    clock.set_source(lambda: now / 1000)
    old = [now - 2 * DAY_MS - k * 61_000 for k in range(5)]  # their TTL (time + 25 h) is long past
    for t in old:
        store.post("swept", 1000, t)
    compaction.compact(store, old[0] + 10 * w.MINUTE_MS, lookback=10)
    for k in range(10):
        store.post("swept", k + 1, now - k * 90_001)
    before = [sum_of(api, "swept", window) for window in (60, 3600, 86_400)]
    assert before == [1, 55, 55]

    def expired() -> list[dict[str, Any]]:
        return [i for i in items_of(dynamodb, "swept") if int(i["expires_at"]["N"]) < now // 1000]

    deadline = time.monotonic() + 3
    while expired() and time.monotonic() < deadline:
        time.sleep(0.5)
    # Under load DynamoDB Local's sweeper may not have come round yet: finish its work by hand.
    for item in expired():
        dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    assert not expired()
    assert items_of(dynamodb, "swept")  # the recent ones are still there
    assert [sum_of(api, "swept", window) for window in (60, 3600, 86_400)] == before


@pytest.mark.real_dynamodb
def test_sixteen_concurrent_posters_on_one_key_lose_nothing(api: Api) -> None:
    def post_all(writer: int) -> list[int]:
        return [api.post("/metric/hot/", {"value": writer + 0.5}).status_code for _ in range(25)]

    with ThreadPoolExecutor(16) as pool:
        statuses = [s for result in pool.map(post_all, range(16)) for s in result]
    assert statuses == [200] * 400
    assert sum_of(api, "hot", 3600) == 25 * sum(w.round_half_away(k + 0.5) for k in range(16))


@pytest.mark.real_dynamodb
def test_a_post_resent_with_its_token_applies_once(dynamodb: Any) -> None:
    """botocore resends a TransactWriteItems whose response was lost with the same ClientRequestToken:
    DynamoDB applies it once and answers success. Without the token the resend is cancelled whole."""
    store = SumStore(dynamodb, TABLE)
    at_ms = int(time.time() * 1000)
    event_id = uuid.uuid4().hex[:16]
    request = store.post_transaction("tok", 7, at_ms, event_id, shard=3)
    dynamodb.transact_write_items(**request)
    dynamodb.transact_write_items(**request)  # a lost response, resent by botocore: same token
    key = {"pk": {"S": keys.sum_sub_pk("tok")}, "sk": {"S": keys.sum_sub_sk(w.minute_of(at_ms), 3)}}

    def sub_total() -> tuple[int, int]:
        item = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
        return int(item["total"]["N"]), int(item["n"]["N"])

    assert sub_total() == (7, 1)
    untokened = {k: v for k, v in request.items() if k != "ClientRequestToken"}
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(**untokened)
    assert "ConditionalCheckFailed" in cancellation_codes(cancelled.value)
    store.post("tok", 7, at_ms, event_id, shard=3)  # the store's own resend: recognised as stored
    assert sub_total() == (7, 1)
