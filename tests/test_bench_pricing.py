"""bench/pricing.py's rules: item sizes, write and read units, index entries, and which items a write call names.

The figures are worked by hand from AWS's published rules (../shared/notes/aws-billing-and-delivery.md)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.pricing import (
    TABLE_INDEXES,
    Index,
    ItemWrite,
    WriteCost,
    index_entry_units,
    item_size,
    item_write_cost,
    number_size,
    query_read_units,
    read_units,
    touched,
    value_size,
    write_units,
)
from chalicelib.hits import ranking
from chalicelib.hits.counts import Counter
from chalicelib.hits.store import HitStore
from chalicelib.storage import keys, table

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

RANKING = next(i for i in TABLE_INDEXES if i.name == table.RANKING_INDEX)
NAME_INDEX = next(i for i in TABLE_INDEXES if i.name == table.survey_sort_index("name"))


def padded(size: int, **extra: Any) -> dict[str, Any]:
    """An item of exactly `size` bytes: its key, its extra attributes, and a string `x` filling the rest."""
    item: dict[str, Any] = {"pk": {"S": "p"}, "sk": {"S": "s"}, **extra}
    item["x"] = {"S": ""}
    item["x"] = {"S": "a" * (size - item_size(item))}
    assert item_size(item) == size
    return item


def test_numbers_count_one_byte_per_two_significant_digits_plus_one() -> None:
    assert number_size("7") == 2
    assert number_size("12") == 2
    assert number_size("123") == 3
    assert number_size("-123.4500") == 4  # 12345: 5 significant digits, 3 bytes; trailing zeros do not count
    assert number_size("1000000") == 2
    assert number_size("0.000001") == 2


def test_item_size_counts_names_and_values() -> None:
    item = {
        "pk": {"S": "HIT#ALL#/é/"},  # é is two bytes
        "n": {"N": "42"},
        "b": {"B": b"\x00\x01\x02"},
        "flag": {"BOOL": True},
        "none": {"NULL": True},
    }
    assert item_size(item) == (2 + 12) + (1 + 2) + (1 + 3) + (4 + 1) + (4 + 1)


def test_lists_and_maps_add_three_bytes_and_one_per_element() -> None:
    assert value_size({"L": [{"N": "1"}, {"S": "ab"}]}) == 3 + (2 + 1) + (2 + 1)
    assert value_size({"M": {"a": {"S": "xyz"}}}) == 3 + (1 + 3 + 1)
    assert value_size({"L": []}) == 3


def test_a_write_costs_one_unit_per_started_kb_of_the_larger_image() -> None:
    assert write_units(0) == 1  # even an absent item
    assert write_units(1024) == 1
    assert write_units(1025) == 2
    assert write_units(300, 2100) == 3
    assert write_units(2100, 300) == 3  # a shrinking item is billed at its size before


def test_an_item_crossing_1_kb_costs_two_units() -> None:
    before, after = padded(1000), padded(1030)
    assert item_write_cost(ItemWrite(before, after)) == WriteCost(2, 0)
    assert item_write_cost(ItemWrite(None, before)) == WriteCost(1, 0)
    assert item_write_cost(ItemWrite(after, before)) == WriteCost(2, 0)


def test_a_transaction_doubles_each_item_but_not_its_index_writes() -> None:
    store = HitStore(None, "t")
    before = store.rank_item(keys.HIT_ALL, "/a/", 5)
    after = store.rank_item(keys.HIT_ALL, "/a/", 9)
    plain = item_write_cost(ItemWrite(before, after))
    transactional = item_write_cost(ItemWrite(before, after, transactional=True))
    assert plain == WriteCost(1, 2)  # the ranking entry moved: a delete and a put
    assert transactional == WriteCost(2, 2)


def test_a_direct_hit_transaction_is_six_units() -> None:
    """HitStore's direct hit: the counter's increment (no index) and the direct writer's totals of both scopes."""
    store = HitStore(None, "t")
    params = {
        "TransactItems": [
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "HIT#/a/"}, "sk": {"S": "COUNT"}}}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "HITTOTAL#ALL"}, "sk": {"S": "d03"}}}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "HITTOTAL#2026-12-07"}, "sk": {"S": "d03"}}}},
        ]
    }
    written = touched("TransactWriteItems", params)
    assert all(w.transactional for w in written)
    day = "2026-12-07"
    images = [
        (store.counter_item("/a/", Counter(5, day, 2)), store.counter_item("/a/", Counter(6, day, 2))),
        (store.totals_item(keys.HIT_ALL, "d03", 100, 3), store.totals_item(keys.HIT_ALL, "d03", 101, 3)),
        (store.totals_item(day, "d03", 10, 3), store.totals_item(day, "d03", 11, 3)),
    ]
    costs = [item_write_cost(ItemWrite(b, a, transactional=True)) for b, a in images]
    assert sum(c.total for c in costs) == 3 * 2 and sum(c.indexes for c in costs) == 0


def test_a_condition_check_costs_a_transactional_write_and_no_index_write() -> None:
    item = padded(1500, **{table.RANKING_PARTITION_KEY: {"S": "r"}, table.RANKING_SORT_KEY: {"N": "1"}})
    params = {"TransactItems": [{"ConditionCheck": {"TableName": "t", "Key": {"pk": item["pk"], "sk": item["sk"]}}}]}
    (check,) = touched("TransactWriteItems", params)
    assert check.check_only
    assert item_write_cost(ItemWrite(item, item, True, check_only=True)) == WriteCost(4, 0)


def test_index_entries_moved_appearing_disappearing_and_changed_in_place() -> None:
    def counter(score: int, **extra: Any) -> dict[str, Any]:
        return {
            "pk": {"S": "HIT#ALL#/a/"},
            "sk": {"S": "COUNT"},
            table.RANKING_PARTITION_KEY: {"S": "HITRANK#ALL#3"},
            table.RANKING_SORT_KEY: {"N": str(score)},
            **extra,
        }

    bare = {"pk": {"S": "HIT#ALL#/a/"}, "sk": {"S": "COUNT"}}
    assert index_entry_units(counter(1), counter(2), RANKING, ("pk", "sk")) == 2  # moved
    assert index_entry_units(bare, counter(1), RANKING, ("pk", "sk")) == 1  # appears
    assert index_entry_units(counter(1), None, RANKING, ("pk", "sk")) == 1  # disappears (item deleted)
    assert index_entry_units(counter(1), counter(1), RANKING, ("pk", "sk")) == 0
    # The ranking index projects every attribute: a change of any attribute rewrites its entry.
    assert index_entry_units(counter(1), counter(1, hits={"N": "3"}), RANKING, ("pk", "sk")) == 1
    # A keys-only index ignores attributes it does not project, and a sparse one items without its key.
    assert index_entry_units(counter(1), counter(1, hits={"N": "3"}), NAME_INDEX, ("pk", "sk")) == 0
    assert index_entry_units(counter(1), counter(2), NAME_INDEX, ("pk", "sk")) == 0


def test_a_moved_entry_over_1_kb_is_billed_per_kb_of_each_entry() -> None:
    old = padded(1500, **{table.RANKING_PARTITION_KEY: {"S": "r"}, table.RANKING_SORT_KEY: {"N": "1"}})
    new = {**old, table.RANKING_SORT_KEY: {"N": "2"}}
    assert index_entry_units(old, new, RANKING, ("pk", "sk")) == 2 + 2
    assert item_write_cost(ItemWrite(old, new, transactional=True)) == WriteCost(4, 4)


def test_keys_only_entries_hold_the_table_and_index_keys() -> None:
    index = Index.of(
        {
            "IndexName": "i",
            "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}, {"AttributeName": "b", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    )
    item = {"pk": {"S": "p"}, "sk": {"S": "s"}, "a": {"S": "x"}, "b": {"S": "y"}, "big": {"S": "z" * 5000}}
    assert index.entry(item, ("pk", "sk")) == {k: item[k] for k in ("pk", "sk", "a", "b")}
    assert index.entry({"pk": {"S": "p"}, "sk": {"S": "s"}, "a": {"S": "x"}}, ("pk", "sk")) is None


def test_reads_per_started_4_kb() -> None:
    assert read_units(0, consistent=True) == 1  # an absent item still costs a read
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(4097, consistent=False) == 1
    assert read_units(100, consistent=True, transactional=True) == 2
    # A Query is billed on the total of its items, not per item.
    assert query_read_units([padded(1000)] * 5, consistent=False) == 1.0
    assert query_read_units([], consistent=False) == 0.5


def test_touched_names_every_item_of_every_write_call() -> None:
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    item = {**key, "v": {"N": "1"}}
    assert [t.key for t in touched("PutItem", {"TableName": "t", "Item": item})] == [key]
    assert [t.key for t in touched("UpdateItem", {"TableName": "t", "Key": key})] == [key]
    batch = {"RequestItems": {"t": [{"PutRequest": {"Item": item}}, {"DeleteRequest": {"Key": key}}]}}
    assert [(t.key, t.transactional) for t in touched("BatchWriteItem", batch)] == [(key, False), (key, False)]
    with pytest.raises(ValueError):
        touched("Query", {})


def test_the_ranking_score_is_what_moves_a_counter() -> None:
    """A guard on the premise of the moved-entry test: a counter's score changes with every count."""
    assert ranking.score(5, "/a/") != ranking.score(6, "/a/")
