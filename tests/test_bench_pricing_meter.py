"""bench/pricing.py's meter on a real client: the consumer's writes and reads priced by AWS's rules from the items
read around them, refused writes, what a context is charged, and what is left unmetered."""

from __future__ import annotations

import base64
import os
from typing import Any

import boto3
import pytest

from bench.pricing import PricingMeter, unmetered
from chalicelib.hits.store import HitStore
from chalicelib.ingest import consumer, records
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.storage.dynamo import item_key
from tests.conftest import TABLE

SHARD = "shardId-000000000000"


def reader() -> Any:
    """A second client of the same database (moto's, inside the test's mock, or DynamoDB Local's)."""
    return boto3.client("dynamodb", endpoint_url=os.environ.get("DDB_ENDPOINT_URL"), region_name="us-east-1")


def hits(n: int, sequence: int) -> consumer.Received:
    data = records.encode([records.HitEvent("/api/a/", clock.now_ms())] * n)
    return consumer.Received(SHARD, f"49{sequence:054d}", base64.b64encode(data).decode())


def test_a_streamed_hit_batch_is_four_units_and_two_reads(dynamodb: Any) -> None:
    clock.set_source(lambda: 1_796_600_000.0)  # one minute for both batches
    apply = consumer.appliers()
    consumer.apply_records([hits(1, 1)], apply)  # the path's counter exists and was ranked this minute
    with PricingMeter(dynamodb, reader()) as meter:
        assert consumer.apply_records([hits(5, 2), hits(7, 3)], apply) == []
    bill = meter.bill
    # The counter's increment (both scopes, no index), the shard's totals item of each scope, and the path listed
    # for the sweep (its entries moved this minute already): 4 small items, no transaction, no index entry.
    assert (bill.write_units, bill.index_write_units) == (4, 0)
    assert bill.read_units == 2  # a strongly consistent read of each totals item
    assert bill.calls == {"GetItem": 2, "UpdateItem": 3, "PutItem": 1}


def test_a_refused_write_is_priced_at_the_item_as_it_stands(dynamodb: Any) -> None:
    key = item_key("P", "S")
    dynamodb.put_item(TableName=TABLE, Item={**key, "x": {"S": "a" * 1500}})
    with PricingMeter(dynamodb, reader()) as meter:
        with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
            dynamodb.put_item(TableName=TABLE, Item=key, ConditionExpression="attribute_not_exists(pk)")
        dynamodb.update_item(TableName=TABLE, Key=key, UpdateExpression="REMOVE x")  # not held up by the refusal
    bill = meter.bill
    assert (bill.failed_write_units, bill.write_units) == (2, 2 + 2)  # 1.5 KB before: 2 units, refused or not


def test_each_context_is_charged_its_own_calls_and_unmetered_ones_are_not_priced(dynamodb: Any) -> None:
    store = HitStore(dynamodb, TABLE)
    with PricingMeter(dynamodb, reader()) as meter:
        with unmetered():
            store.record("/api/b/", "2026-12-07", 0)
        with meter.charging() as first:
            store.record("/api/b/", "2026-12-07", 0)
        with meter.charging() as second:
            store.count(keys.HIT_ALL, "/api/b/")
    # The counter and two totals items in a transaction (3 x 2), then its two ranking entries (an item and a moved
    # index entry each: 2 x 3); the counter read back, and 8 overflow keys missing (eventually consistent).
    assert (first.write_units, first.read_units) == (12, 1 + 8 * 0.5)
    assert second.write_units == 0 and second.read_units == 1 + 8 * 0.5  # the counter, and 8 delta keys missing
    assert meter.bill.write_units == 12 and meter.bill.round_trips == first.round_trips + second.round_trips


def test_a_projection_does_not_lower_a_query_s_price(dynamodb: Any) -> None:
    big = {**item_key("Q", "1"), "x": {"S": "a" * 5000}}
    dynamodb.put_item(TableName=TABLE, Item=big)
    with PricingMeter(dynamodb, reader()) as meter:
        dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "Q"}},
            ProjectionExpression="sk",
            ConsistentRead=True,
        )
    assert meter.bill.read_units == 2  # 5 KB read, though only the sort key came back
