"""What listing and deleting cost, priced by AWS's rules (bench/pricing.py): the figures docs/streams.md and
docs/metrics.md give."""

from __future__ import annotations

from typing import Any

from bench.pricing import PricingMeter
from chalicelib.averages.store import AverageStore
from chalicelib.metrics.store import SumStore
from chalicelib.names.store import NameStore
from chalicelib.pure import clock
from chalicelib.streams.store import StreamStore
from tests.conftest import TABLE
from tests.test_bench_pricing_meter import reader

NOW = 1_796_600_010_000  # 10 s into a minute


def test_a_stream_write_registers_its_name_once_a_minute_per_writer_for_2_units(dynamodb: Any) -> None:
    store = StreamStore(dynamodb, TABLE)
    with PricingMeter(dynamodb, reader()) as first:
        store.add_values("s", [1.0], None, "r1", NOW, clock.iso(NOW))
    with PricingMeter(dynamodb, reader()) as second:
        store.add_values("s", [2.0], None, "r2", NOW + 1000, clock.iso(NOW + 1000))
    # The same write but for the registry entry's Put in its transaction: 2 units (under 1 KB, doubled).
    assert first.bill.write_units - second.bill.write_units == 2
    with PricingMeter(dynamodb, reader()) as next_minute:
        store.add_values("s", [3.0], None, "r3", NOW + 60_000, clock.iso(NOW + 60_000))
    assert next_minute.bill.write_units == first.bill.write_units


def test_a_listing_page_is_one_query_of_about_one_unit(dynamodb: Any) -> None:
    store = StreamStore(dynamodb, TABLE)
    for n in range(120):
        store.add_values(f"stream-{n:03d}", [1.0], None, f"r{n}", NOW, clock.iso(NOW))
    with PricingMeter(dynamodb, reader()) as meter:
        page = NameStore(dynamodb, TABLE).list_names("stream", "stream-0", 50, None)
    assert len(page.entries) == 50 and page.after == "stream-049"
    assert meter.bill.calls == {"Query": 1} and meter.bill.read_units <= 1


def test_a_metric_post_pays_2_units_for_its_incarnation_check(dynamodb: Any) -> None:
    store = SumStore(dynamodb, TABLE)
    store.post("k", 5, NOW, shard=0)  # the dirty marker and the remembered incarnation, once per writer
    with PricingMeter(dynamodb, reader()) as meter:
        store.post("k", 5, NOW + 1, shard=1)  # (another sub-total: no extremes to read)
    # Event, sub-total and sketch bin (6 units, as before) and the ConditionCheck of `gen` (2).
    assert meter.bill.write_units == 8
    assert meter.bill.calls == {"TransactWriteItems": 1}


def test_deleting_a_stream_writes_eighteen_items_whatever_it_holds(dynamodb: Any) -> None:
    store = StreamStore(dynamodb, TABLE)
    for n in range(40):
        store.add_values("big", [float(n)] * 100, None, f"r{n}", NOW + n, clock.iso(NOW + n))
    with PricingMeter(dynamodb, reader()) as meter:
        assert store.delete("big", NOW + 1000)
    assert meter.bill.calls["TransactWriteItems"] == 1
    # 16 shard updates (each under 1 KB... or its size), the purge item and the entry's delete, doubled.
    assert meter.bill.write_units <= 2 * (16 * 2 + 2)


def test_an_append_refreshes_a_window_entry_once_a_minute(dynamodb: Any) -> None:
    store = AverageStore(dynamodb, TABLE)
    moment = [NOW]
    clock.set_source(lambda: moment[0] / 1000)
    try:
        store.set_size("w", 5)  # registers the window in this minute
        moment[0] += 60_000
        with PricingMeter(dynamodb, reader()) as first:
            store.append("w", 1.0)
            store.refresh("w")
        with PricingMeter(dynamodb, reader()) as second:
            store.append("w", 2.0)
            store.refresh("w")
    finally:
        clock.set_source(None)
    assert first.bill.write_units - second.bill.write_units == 4  # ConditionCheck + Put in a transaction
