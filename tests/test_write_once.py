"""A write is applied at most once per request, and exactly once when answered 2xx (chalicelib/storage/write_once.py):
botocore's resends carry the transaction's token, and a client's retry with the same Idempotency-Key after an error
finds the first attempt's receipt."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from chalicelib.process import runtime
from chalicelib.storage.table import TTL_ATTRIBUTE
from tests.conftest import Api, Environment, assert_error, ok
from tests.lossy_proxy import LossyProxy

ADMIN_TOKEN = "write-once-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def service(api: Api, env: Environment) -> Api:
    env.set("ADMIN_TOKEN", ADMIN_TOKEN)
    return api


def state(api: Api) -> dict[str, Any]:
    """Everything the writes below change."""
    return {
        "stream": ok(api.get("/streams/s"))["count"],
        "sessions": len(ok(api.get("/streams/s/sessions"))["sessions"]),
        "sum": ok(api.get("/metric/m/sum?window=3600"))["value"],
        "average": ok(api.get("/averages/w"))["count"],
        "responses": ok(api.get("/dashboard/data", headers=ADMIN))["total"],
    }


def start(api: Api) -> tuple[str, dict[str, str]]:
    created = ok(api.post("/survey/responses", {"name": "Ann"}), 201)
    return created["id"], {"X-Response-Token": created["token"]}


@pytest.fixture
def seeded(service: Api) -> Api:
    ok(service.post("/streams/s/values", {"values": [1, 2]}))
    ok(service.post("/metric/m", {"value": 1}))
    ok(service.put("/averages/w", {"size": 5}))
    ok(service.post("/averages/w", {"value": 1}))
    return service


class LoseAnswers:
    """The next `n` successful calls of `operation` on a client: applied by the database, then the answer is 'lost'
    (a read timeout, as a stalled connection gives after the database applied the write)."""

    def __init__(self, client: Any, operation: str) -> None:
        self.client, self.event = client, f"after-call.dynamodb.{operation}"
        self.left = 0
        client.meta.events.register(self.event, self._lose)

    def _lose(self, http_response: Any, **_: Any) -> None:
        if self.left > 0 and http_response.status_code < 300:
            self.left -= 1
            raise ReadTimeoutError(endpoint_url="http://lost")

    def close(self) -> None:
        self.client.meta.events.unregister(self.event, self._lose)


@pytest.fixture
def lose() -> Iterator[Callable[[str, int], LoseAnswers]]:
    made: list[LoseAnswers] = []

    def lose(operation: str, n: int = 1) -> LoseAnswers:
        client = runtime.dynamodb_single_attempt() if operation == "UpdateItem" else runtime.dynamodb()
        losing = LoseAnswers(client, operation)
        losing.left = n
        made.append(losing)
        return losing

    yield lose
    for losing in made:
        losing.close()


# --- a client's keyed retry after a 503 whose write had landed ----------------------------------------------------

Call = Callable[[Api, dict[str, str]], Any]
Expect = Callable[[dict[str, Any]], dict[str, Any]]
OWN_TOKEN = {"X-Response-Token": "own-token-" + "x" * 40}
KEYED: dict[str, tuple[str, Call, Expect]] = {
    "stream values": (
        "TransactWriteItems",
        lambda api, h: api.post("/streams/s/values", {"value": 9}, headers=h),
        lambda s: {**s, "stream": s["stream"] + 1},
    ),
    "stream reset": (
        "TransactWriteItems",
        lambda api, h: api.post("/streams/s/reset", {}, headers=h),
        lambda s: {**s, "stream": 0, "sessions": s["sessions"] + 1},
    ),
    "metric post": (
        "TransactWriteItems",
        lambda api, h: api.post("/metric/m", {"value": 5}, headers=h),
        lambda s: {**s, "sum": s["sum"] + 5},
    ),
    "average append": (
        "TransactWriteItems",  # keyed, it is a one-item transaction: one that carries the receipt
        lambda api, h: api.post("/averages/w", {"value": 3}, headers=h),
        lambda s: {**s, "average": s["average"] + 1},
    ),
    "survey start": (
        "TransactWriteItems",
        lambda api, h: api.post("/survey/responses", {"name": "Bo"}, headers={**h, **OWN_TOKEN}),
        lambda s: {**s, "responses": s["responses"] + 1},
    ),
}


@pytest.mark.parametrize("name", KEYED)
def test_a_keyed_retry_after_a_503_whose_write_landed_is_not_applied_again(
    seeded: Api, lose: Callable[[str, int], LoseAnswers], name: str
) -> None:
    operation, call, expect = KEYED[name]
    before = state(seeded)
    key = {"Idempotency-Key": "retry-" + name.replace(" ", "-")}
    lose(operation, 1)
    assert_error(call(seeded, key), 503, "database_unavailable")  # the write landed, the answer was lost
    landed = state(seeded)
    assert landed == expect(before)
    retried = call(seeded, key)
    assert state(seeded) == landed  # not applied again
    if name == "stream reset":  # the retry finds no session to reset: its answer says the first attempt's did
        assert_error(retried, 409, "already_applied")
        return
    assert 200 <= retried.status_code < 300, retried.body
    # Its answer is then recorded under the key, as any answer is.
    again = call(seeded, key)
    assert again.headers.get("Idempotent-Replayed") == "true" and json.loads(again.body) == json.loads(retried.body)


def test_a_keyed_start_retried_answers_the_response_it_created(seeded: Api, lose: Any) -> None:
    key = {"Idempotency-Key": "start-once", "X-Response-Token": "own-token-" + "y" * 40}
    lose("TransactWriteItems", 1)
    assert_error(seeded.post("/survey/responses", {"name": "Cy"}, headers=key), 503, "database_unavailable")
    created = ok(seeded.post("/survey/responses", {"name": "Cy"}, headers=key), 201)
    assert created["answers"]["name"] == "Cy"
    assert ok(seeded.get(f"/survey/responses/{created['id']}", headers={"X-Response-Token": key["X-Response-Token"]}))


def test_a_keyed_save_and_delete_retried_are_applied_once(seeded: Api, lose: Any) -> None:
    rid, token = start(seeded)
    save = {**token, "Idempotency-Key": "save-once"}
    lose("TransactWriteItems", 1)
    assert_error(seeded.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, save), 503)
    assert ok(seeded.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, save))["answers"]["book"] == "Dune"
    delete = {**ADMIN, "Idempotency-Key": "delete-once"}
    lose("TransactWriteItems", 1)
    assert_error(seeded.delete(f"/dashboard/responses/{rid}", headers=delete), 503)
    # The response is gone, so the retry can't delete it again: its answer says the first attempt did.
    assert_error(seeded.delete(f"/dashboard/responses/{rid}", headers=delete), 409, "already_applied")
    assert_error(seeded.delete(f"/dashboard/responses/{rid}", headers=ADMIN), 404, "not_found")


def test_unkeyed_an_append_whose_answer_is_lost_is_applied_at_most_once(seeded: Api, lose: Any) -> None:
    before = state(seeded)["average"]
    lose("UpdateItem", 1)
    assert_error(seeded.post("/averages/w", {"value": 4}), 503, "database_unavailable")
    assert state(seeded)["average"] == before + 1  # it landed once; the single-attempt client never resent it


def test_a_retry_under_another_key_or_none_is_another_request(seeded: Api) -> None:
    before = state(seeded)["stream"]
    ok(seeded.post("/streams/s/values", {"value": 1}, headers={"Idempotency-Key": "a"}))
    ok(seeded.post("/streams/s/values", {"value": 1}, headers={"Idempotency-Key": "b"}))
    ok(seeded.post("/streams/s/values", {"value": 1}))
    assert state(seeded)["stream"] == before + 3


def test_every_transaction_carries_a_token_and_receipts_only_in_keyed_requests(seeded: Api) -> None:
    sent: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)

    events = runtime.dynamodb().meta.events
    # After the app's own hook (registered when the client was made), so the token and receipt are there.
    events.register("before-parameter-build.dynamodb.TransactWriteItems", capture)
    try:
        ok(seeded.post("/streams/s/values", {"value": 1}))
        ok(seeded.post("/streams/s/values", {"value": 1}, headers={"Idempotency-Key": "k"}))
    finally:
        events.unregister("before-parameter-build.dynamodb.TransactWriteItems", capture)
    plain, keyed = sent
    # botocore's own token (the service model's idempotency token), new for each call.
    assert len(plain["ClientRequestToken"]) == 36 and plain["ClientRequestToken"] != keyed["ClientRequestToken"]
    receipts = [
        i
        for i in keyed["TransactItems"]
        if i.get("Put", {}).get("Item", {}).get("pk", {}).get("S", "").startswith("RECEIPT#")
    ]

    def written(request: dict[str, Any]) -> int:
        # Less the registry entry a stream's first write in a minute carries (chalicelib/names/store.py).
        names = [
            i
            for i in request["TransactItems"]
            if i.get("Put", {}).get("Item", {}).get("pk", {}).get("S") == "NAMES#stream"
        ]
        return len(request["TransactItems"]) - len(names)

    assert len(receipts) == 1 and written(keyed) == written(plain) + 1
    assert receipts[0]["Put"]["Item"]["sk"] == {"S": "0000"} and TTL_ATTRIBUTE in receipts[0]["Put"]["Item"]


# --- botocore's own resends, on a database that keeps the token (DynamoDB Local; moto ignores tokens) -----------
# What the app relies on here is botocore's and DynamoDB's: the token botocore puts in every transaction.


@pytest.mark.real_dynamodb
def test_a_transaction_whose_answer_is_lost_is_resent_by_botocore_and_applied_once(
    seeded: Api, env: Environment, ddblocal_endpoint: str
) -> None:
    port = int(ddblocal_endpoint.rsplit(":", 1)[1])
    with LossyProxy(port) as proxy:
        env.set("DDB_ENDPOINT_URL", proxy.endpoint_url)
        runtime.reset()
        before = state(seeded)
        proxy.lose("TransactWriteItems", 1)
        ok(seeded.post("/streams/s/values", {"value": 7}))  # botocore resent it; DynamoDB knew the token
        proxy.lose("TransactWriteItems", 1)
        ok(seeded.post("/metric/m", {"value": 5}))
        rid, token = start(seeded)
        proxy.lose("TransactWriteItems", 1)
        ok(seeded.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, token))
        assert proxy.lost == 3
        after = state(seeded)
        assert after == {
            **before,
            "stream": before["stream"] + 1,
            "sum": before["sum"] + 5,
            "responses": before["responses"] + 1,
        }


@pytest.mark.real_dynamodb
def test_dynamodb_local_keeps_transaction_tokens(dynamodb: Any) -> None:
    """What the resends rely on: the same token and parameters again are answered, not applied."""
    from tests.conftest import TABLE

    request = {
        "TransactItems": [
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": "TOKEN#t"}, "sk": {"S": "x"}},
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            }
        ],
        "ClientRequestToken": "same-token-0123456789",
    }
    dynamodb.transact_write_items(**request)
    dynamodb.transact_write_items(**request)
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "TOKEN#t"}, "sk": {"S": "x"}}, ConsistentRead=True)
    assert item["Item"]["n"] == {"N": "1"}
