"""The registry of first copies (chalicelib/ingest/store.py) on both backends: a position keeps its first value,
a claim answers what each position holds, a read sees refusals, and (DynamoDB Local) a full block costs one write
unit per claim."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.ingest import dedupe
from chalicelib.ingest.store import FirstCopyStore
from chalicelib.process import runtime
from chalicelib.pure import clock
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import item_key
from tests.conftest import TABLE

A, B = dedupe.fingerprint("shardId-000000000000", "1"), dedupe.fingerprint("shardId-000000000004", "2")


def store() -> FirstCopyStore:
    return FirstCopyStore(runtime.dynamodb(), TABLE)


def test_a_position_keeps_the_first_value_written_to_it(dynamodb: Any) -> None:
    block = ("origin", 0)
    assert store().claim(block, {"0": A, "1": A}) == {"0": A, "1": A}
    assert store().claim(block, {"1": B, "2": B, "3": dedupe.REFUSED}) == {"1": A, "2": B, "3": dedupe.REFUSED}
    assert store().claim(block, {"3": A}) == {"3": dedupe.REFUSED}
    assert store().read("origin", [0, 1]) == {block: {"0": A, "1": A, "2": B, "3": dedupe.REFUSED}}
    assert store().read("origin", []) == {}
    assert store().read("other", [0]) == {}


def test_a_registry_item_expires_a_week_after_its_last_claim(dynamodb: Any) -> None:
    clock.set_source(lambda: 1_795_514_400)
    store().claim(("origin", 3), {"0": A})
    item = dynamodb.get_item(TableName=TABLE, Key=item_key(keys.origin_pk("origin"), keys.origin_block_sk(3)))["Item"]
    assert item[table.TTL_ATTRIBUTE] == {"N": str(1_795_514_400 + dedupe.TTL_S)}


@pytest.mark.real_dynamodb
def test_each_claim_of_a_block_is_one_write_unit_however_full(dynamodb: Any) -> None:
    consumed: list[float] = []

    def ask(params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "TOTAL"

    def record(parsed: dict[str, Any], **_: Any) -> None:
        consumed.append(parsed["ConsumedCapacity"]["CapacityUnits"])

    events = dynamodb.meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", ask)
    events.register("after-call.dynamodb.UpdateItem", record)
    try:
        block = (dedupe.random_origin(), 4)  # the last block of 500 events: its sort key is the longest
        fingerprint = dedupe.fingerprint("shardId-000000000123", "4" * 56)
        for positions in (range(480, 540), range(540, 600), range(480, 600)):  # half, the rest, all again
            store().claim(block, {dedupe.slot(p): fingerprint for p in positions})
    finally:
        events.unregister("provide-client-params.dynamodb.UpdateItem", ask)
        events.unregister("after-call.dynamodb.UpdateItem", record)
    assert consumed == [1.0, 1.0, 1.0]
