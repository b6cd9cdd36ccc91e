"""The DynamoDB toolkit every store uses: the paginator, the error classifier and the retry loop."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.edge.errors import Busy
from chalicelib.storage import dynamo
from tests.conftest import TABLE


def cancelled(*codes: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": code} for code in codes],
        },
        "TransactWriteItems",
    )


def test_query_pages_ask_only_for_the_items_still_wanted(dynamodb: Any) -> None:
    for i in range(7):
        dynamodb.put_item(TableName=TABLE, Item=dynamo.item_key("P", f"item#{i}"))
    sent: list[dict[str, Any]] = []
    dynamodb.meta.events.register("provide-client-params.dynamodb.Query", lambda params, **_: sent.append(params))
    request = {"TableName": TABLE, **dynamo.sort_key_prefix("P", "item#"), "ConsistentRead": True}

    pages = list(dynamo.query_pages(dynamodb, request, max_items=5, page_size=2))
    assert [p["Count"] for p in pages] == [2, 2, 1] and "LastEvaluatedKey" in pages[-1]
    assert [p["Limit"] for p in sent] == [2, 2, 1] and all(p["ConsistentRead"] for p in sent)
    assert "Limit" not in request  # the caller's request is left as it was

    sent.clear()
    items = dynamo.query_items(dynamodb, request)
    assert [dynamo.sort_key_of(i) for i in items] == [f"item#{i}" for i in range(7)]
    assert len(sent) == 1 and "Limit" not in sent[0]


def test_retry_runs_an_attempt_again_after_each_lost_race() -> None:
    runs: list[int] = []

    def attempt(n: int) -> str:
        runs.append(n)
        if n == 0:
            raise dynamo.LostRace
        if n == 1:
            raise cancelled("None", "TransactionConflict")
        return "applied"

    assert dynamo.retry(attempt, busy="busy") == "applied"
    assert runs == [0, 1, 2]


def test_retry_gives_up_with_busy_and_lets_other_errors_through() -> None:
    runs: list[int] = []

    def hopeless(n: int) -> None:
        runs.append(n)
        raise cancelled("ConditionalCheckFailed", "None")

    with pytest.raises(Busy, match="try later"):
        dynamo.retry(hopeless, busy="try later", attempts=3)
    assert runs == [0, 1, 2]

    runs.clear()
    with pytest.raises(ClientError) as refused:
        dynamo.retry(hopeless, busy="try later", lost=dynamo.conflicted)  # a failed condition is not a lost race
    assert runs == [0] and dynamo.cancellation_codes(refused.value) == ["ConditionalCheckFailed", "None"]


def test_classifier() -> None:
    assert dynamo.lost_race(cancelled("ConditionalCheckFailed", "None"))
    assert dynamo.lost_race(cancelled("None", "TransactionConflict"))
    assert not dynamo.lost_race(cancelled("ValidationError"))
    assert dynamo.conflicted(cancelled("None", "TransactionConflict"))
    assert not dynamo.conflicted(cancelled("ConditionalCheckFailed", "TransactionConflict"))
    assert dynamo.error_code(cancelled()) == "TransactionCanceledException"
    assert dynamo.error_code(RuntimeError()) is None and dynamo.cancellation_codes(RuntimeError()) == []


def test_a_failed_condition_is_classified(dynamodb: Any) -> None:
    put = {"TableName": TABLE, "Item": dynamo.item_key("P", "once"), "ConditionExpression": dynamo.ITEM_IS_NEW}
    dynamodb.put_item(**put)
    with pytest.raises(ClientError) as failed:
        dynamodb.put_item(**put)
    assert dynamo.condition_failed(failed.value) and not dynamo.lost_race(failed.value)
