"""The exactly-once rule's pure parts: which events a marker skips, and how a key's events split into writes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.ingest import applied
from chalicelib.ingest.records import AverageEvent, Delivered, sequence_marker

pytestmark = pytest.mark.pure

# Events per record, for records with increasing sequence numbers.
record_sizes = st.lists(st.integers(min_value=1, max_value=7), max_size=30)


def delivered_of(sizes: list[int]) -> list[Delivered]:
    return [
        Delivered("shardId-000000000000", str(10**30 + 7 * n), AverageEvent("k", float(i)))
        for n, size in enumerate(sizes)
        for i in range(size)
    ]


@given(record_sizes, st.integers(min_value=1, max_value=12))
def test_chunks_are_whole_records_in_order_and_small_enough(sizes: list[int], most: int) -> None:
    delivered = delivered_of(sizes)
    runs = applied.chunks(delivered, most)
    assert [d for run in runs for d in run] == delivered
    for run in runs:
        records = {d.sequence_number for d in run}
        assert len(run) <= most or len(records) == 1
        for other in runs:
            if other is not run:
                assert records.isdisjoint(d.sequence_number for d in other)


@given(record_sizes, st.integers(min_value=0, max_value=40))
def test_unapplied_keeps_exactly_the_records_after_the_marker(sizes: list[int], cut: int) -> None:
    delivered = delivered_of(sizes)
    seqs = sorted({int(d.sequence_number) for d in delivered})
    marker = sequence_marker(seqs[cut]) if cut < len(seqs) else None
    kept = applied.unapplied(delivered, marker)
    if marker is None:
        assert kept == delivered
    else:
        assert kept == [d for d in delivered if int(d.sequence_number) > seqs[cut]]


def test_markers_of_an_item_are_its_applied_attributes_only() -> None:
    item = {"pk": {"S": "x"}, "applied#shardId-1": {"S": "0" * 128}, "version": {"N": "3"}}
    assert applied.marker_attrs(item) == {"applied#shardId-1": {"S": "0" * 128}}
    assert applied.applied_marker(item, "shardId-1") == "0" * 128
    assert applied.applied_marker(item, "shardId-2") is None
    assert applied.applied_marker(None, "shardId-1") is None
