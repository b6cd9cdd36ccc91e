"""The first-copy rule (chalicelib/ingest/dedupe.py), pure: event ids, the registry's slots and item size, and
every event kept exactly once however its copies are spread over shards, batches, redeliveries and refusals."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.ingest import dedupe
from chalicelib.ingest.records import Delivered, EventId, HitEvent
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import item_key, num
from tests.conftest import item_size

pytestmark = pytest.mark.pure


def test_origins_are_random_per_request_and_the_same_for_a_keyed_retry() -> None:
    assert len({dedupe.random_origin() for _ in range(1000)}) == 1000
    assert dedupe.keyed_origin("write:abc POST /events k1\nbody") == dedupe.keyed_origin(
        "write:abc POST /events k1\nbody"
    )
    others = {dedupe.keyed_origin(f"write:abc POST /events k{n}\nbody") for n in range(100)}
    assert len(others) == 100 and all(len(origin) == 16 for origin in others)


def test_a_position_has_one_slot_of_one_or_two_characters_in_its_block() -> None:
    for block in range(5):
        positions = range(block * dedupe.BLOCK, (block + 1) * dedupe.BLOCK)
        slots = [dedupe.slot(p) for p in positions]
        assert len(set(slots)) == dedupe.BLOCK and all(1 <= len(s) <= 2 for s in slots)
        assert {dedupe.block_of(EventId("o", p)) for p in positions} == {("o", block)}
        assert not {table.PARTITION_KEY, table.SORT_KEY, table.TTL_ATTRIBUTE} & set(slots)


def test_a_full_block_is_one_write_unit() -> None:
    item: dict[str, Any] = {
        **item_key(keys.origin_pk(dedupe.random_origin()), keys.origin_block_sk(4)),  # the last block of 500 events
        table.TTL_ATTRIBUTE: num(1_795_514_400 + dedupe.TTL_S),
    }
    item.update({dedupe.slot(p): {"B": dedupe.fingerprint(SHARDS[2], "4" * 56)} for p in range(dedupe.BLOCK)})
    assert item_size(item) == 973  # of 1,024: one write unit


# --- every event once ----------------------------------------------------------------------------------------------

SHARDS = ("shardId-000000000000", "shardId-000000000001", "shardId-000000000004")


@st.composite
def copies_on_a_stream(draw: st.DrawFn) -> list[Delivered]:
    """Records of a few requests on a few shards, in the order a consumer reads them (a shard after its parent):
    each record holding events of one request, some records sent more than once (the copies landing on any shard,
    e.g. a child after a reshard)."""
    events = [EventId(f"o{n}", p) for n in range(draw(st.integers(1, 3))) for p in range(draw(st.integers(1, 250)))]
    sent: list[list[EventId]] = []
    for _, ids in itertools.groupby(events, key=lambda i: i.origin):
        group = list(ids)
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(group) - 1)), max_size=4)))
        sent += [group[a:b] for a, b in itertools.pairwise([0, *cuts, len(group)]) if group[a:b]]
    copies = [(draw(st.sampled_from(SHARDS)), record) for record in sent for _ in range(draw(st.integers(1, 3)))]
    ordered = sorted(enumerate(copies), key=lambda c: (SHARDS.index(c[1][0]), c[0]))
    return [
        Delivered(shard, str(1000 + n), HitEvent("/api/x/", 0), event_id)
        for n, (_, (shard, record)) in enumerate(ordered)
        for event_id in record
    ]


class Registry:
    """The registry's semantics: a position keeps the first value written to it."""

    def __init__(self) -> None:
        self.items: dict[dedupe.Block, dict[str, bytes]] = {}

    def claim(self, wanted: Mapping[dedupe.Block, Mapping[str, bytes]]) -> dict[dedupe.Block, dict[str, bytes]]:
        for block, slots in wanted.items():
            stored = self.items.setdefault(block, {})
            for name, value in slots.items():
                stored.setdefault(name, value)
        return {block: {name: self.items[block][name] for name in slots} for block, slots in wanted.items()}


def deliver(registry: Registry, batch: Sequence[Delivered]) -> list[Delivered]:
    return dedupe.first_copies(batch, registry.claim(dedupe.claims(batch)))


@settings(max_examples=200, deadline=None)
@given(copies_on_a_stream(), st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_each_event_is_kept_once_whatever_the_batches_and_redeliveries(
    stream: list[Delivered], sizes: list[int]
) -> None:
    registry = Registry()
    kept: dict[EventId, set[tuple[str, str]]] = {}
    decided: dict[tuple[str, str, EventId | None], bool] = {}
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(stream):
            break
        batch = stream[start : start + size]
        # A batch may be delivered again whole, or as its halves (bisection), before it is done.
        for part in (batch, batch[: len(batch) // 2], batch[len(batch) // 2 :], batch):
            applied = deliver(registry, part)
            for d in part:
                verdict = d in applied
                assert decided.setdefault((d.shard_id, d.sequence_number, d.id), verdict) == verdict
            for d in applied:
                assert d.id is not None
                kept.setdefault(d.id, set()).add((d.shard_id, d.sequence_number))
        start += size
    ids = {d.id for d in stream}
    assert set(kept) == ids  # every event kept...
    assert all(len(copies) == 1 for copies in kept.values())  # ...from one copy only
    # ...the first one on the stream (the stream is in the order the consumer reads it).
    for event_id, copies in kept.items():
        first = next(d for d in stream if d.id == event_id)
        assert copies == {(first.shard_id, first.sequence_number)}


@given(copies_on_a_stream(), st.data())
def test_a_refusal_written_first_keeps_every_copy_out_and_one_written_late_changes_nothing(
    stream: list[Delivered], data: st.DataObject
) -> None:
    ids = sorted({d.id for d in stream if d.id is not None}, key=lambda i: (i.origin, i.position))
    refusing = data.draw(st.lists(st.sampled_from(ids), unique=True))
    registry = Registry()
    early = set(refusing[: len(refusing) // 2])
    assert set(dedupe.refused(early, registry.claim(dedupe.refusals(early)))) == early
    kept = deliver(registry, stream)
    late = refusing[len(refusing) // 2 :]
    assert dedupe.refused(late, registry.claim(dedupe.refusals(late))) == []  # a copy claimed each of them first
    assert {d.id for d in kept} == set(ids) - early
    assert len(kept) == len(set(ids) - early)


def test_events_without_an_id_are_all_kept() -> None:
    batch = [Delivered(SHARDS[0], str(n), HitEvent("/api/x/", 0)) for n in range(3)] * 2
    assert deliver(Registry(), batch) == batch
    assert dedupe.claims(batch) == {}


def test_fingerprints_tell_copies_apart() -> None:
    prints = {dedupe.fingerprint(shard, str(49 * 10**54 + n)) for shard in SHARDS for n in range(10_000)}
    assert len(prints) == 3 * 10_000
    assert all(len(p) == dedupe.FINGERPRINT_BYTES for p in prints) and dedupe.REFUSED not in prints
    assert dedupe.fingerprint(SHARDS[0], "0049") == dedupe.fingerprint(SHARDS[0], "49")
