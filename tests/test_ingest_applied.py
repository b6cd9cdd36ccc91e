"""The exactly-once rule's pure parts: which events a marker skips, and how a key's events split into writes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.ingest import applied
from chalicelib.ingest.records import AverageEvent, Delivered, sequence_marker
from chalicelib.pure import clock

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
    item = {"pk": {"S": "x"}, "applied#shardId-1": {"S": "0561" + "0" * 55 + "@1795514400"}, "version": {"N": "3"}}
    assert applied.marker_attrs(item) == {"applied#shardId-1": item["applied#shardId-1"]}
    assert applied.applied_marker(item, "shardId-1") == sequence_marker(10**55)
    assert applied.applied_marker(item, "shardId-2") is None
    assert applied.applied_marker(None, "shardId-1") is None


@given(st.integers(min_value=0, max_value=10**129 - 1), st.integers(min_value=0, max_value=10**129 - 1))
def test_markers_compare_as_their_sequence_numbers_and_are_as_long_as_them(a: int, b: int) -> None:
    assert (sequence_marker(a) < sequence_marker(b)) == (a < b)
    assert len(sequence_marker(a)) == len(str(a)) + 3
    written = applied.marker_condition("shardId-000000000000", delivered_of([1]), now_s=1_795_514_400)[1][":last"]["S"]
    assert written.startswith(sequence_marker(10**30)) and written.endswith("@1795514400")


@given(st.integers(min_value=0, max_value=10**56), st.integers(min_value=0, max_value=10**56))
def test_a_marker_of_the_older_form_reads_as_the_same_sequence_number(stored: int, first: int) -> None:
    legacy = {"applied#s": {"S": str(stored).zfill(128)}}
    marker = applied.applied_marker(legacy, "s")
    assert marker == sequence_marker(stored)
    assert (marker < sequence_marker(first)) == (stored < first)


# --- pruning ------------------------------------------------------------------------------------------------------

NOW_S = 1_795_514_400
HOUR = applied.MAX_RECORD_AGE_S


def marker(shard: int, written: float | None) -> tuple[str, dict[str, str]]:
    """A marker attribute of shard `shard`, written at `written` (None: of the older form)."""
    number = 10**55 + shard
    value = str(number).zfill(128) if written is None else f"{sequence_marker(number)}@{int(written)}"
    return applied.marker_attr(f"shardId-{shard:012d}"), {"S": value}


def test_a_write_drops_the_markers_of_earlier_shards_written_over_an_hour_ago(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "_source", lambda: NOW_S)
    item = {
        "pk": {"S": "HIT#ALL#/api/x/"},
        "applied#not-a-shard-id": {"S": "0011@0"},
        **{
            name: value
            for name, value in (
                marker(1, NOW_S - HOUR - 1),  # an ancestor, written an hour and a second ago: dropped
                marker(2, NOW_S - HOUR),  # an ancestor, exactly an hour ago: kept
                marker(3, None),  # the older form: when it was written is unknown, kept
                marker(5, NOW_S - 3 * HOUR),  # the writing shard's own marker: kept (and rewritten)
                marker(7, NOW_S - 3 * HOUR),  # a later shard (a replay of an older shard is writing): kept
            )
        },
    }
    writing = "shardId-000000000005"
    dropped = marker(1, 0)[0]
    assert applied.prunable(item, writing) == [dropped]
    assert applied.prunable(item, "not-a-shard-id") == []
    assert applied.pruning(item, writing) == (" REMOVE #pruned0", {"#pruned0": dropped})
    assert applied.pruned(applied.marker_attrs(item), writing) == {
        name: value for name, value in applied.marker_attrs(item).items() if name != dropped
    }
    assert applied.pruning({"pk": {"S": "x"}}, writing) == ("", {})
    # An hour later, the marker of shard 2 goes too.
    assert applied.prunable(item, writing, now_s=NOW_S + HOUR) == [dropped, marker(2, 0)[0]]
