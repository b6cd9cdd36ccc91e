"""Read planning of last-hour sums (window.minute_reads and friends): which items a sum reads, and that they add
up to exactly the window whatever compaction did so far. Pure: a dictionary plays the table."""

from __future__ import annotations

import itertools
import zlib
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.metrics import window as w
from tests.test_metrics_window import clocks, events_around, windows_s

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

SHARDS = 3


def test_sub_totals_are_read_in_few_runs() -> None:
    assert w.runs([]) == []
    assert w.runs([5, 1, 2, 3, 7, 20, 21]) == [(1, 7), (20, 21)]  # gaps up to RUN_GAP joined
    many = w.runs(range(0, 1000, 10))  # at most MAX_RUNS Queries, covering every minute asked for
    assert len(many) == 4 and many[0][0] == 0 and many[-1][1] == 990
    assert all(any(a <= m <= b for a, b in many) for m in range(0, 1000, 10))
    assert w.runs([0, 100, 101, 500], most=2) == [(0, 101), (500, 500)]  # the closest runs merged first


@given(st.sets(st.integers(0, 2_000), max_size=60), st.integers(0, 10), st.integers(1, 6))
def test_runs_cover_every_minute_asked_for_in_few_ordered_ranges(minutes: set[int], gap: int, most: int) -> None:
    result = w.runs(minutes, gap=gap, most=most)
    assert len(result) <= most and (result == []) == (not minutes)
    assert all(a in minutes and b in minutes and a <= b for a, b in result)  # no range reads past what is wanted
    assert all(b + gap < c for (_, b), (c, _) in itertools.pairwise(result))  # ordered, apart
    assert all(any(a <= m <= b for a, b in result) for m in minutes)


@dataclass
class Table:
    """What the store would hold for one key: sub-totals per minute and shard, state items (bucket, late values),
    done markers, raw events. `late` are values that came after their minute was sealed."""

    events: list[tuple[int, int]]
    late: list[tuple[int, int]] = field(default_factory=list)
    buckets: dict[int, int] = field(default_factory=dict)
    state_items: set[int] = field(default_factory=set)  # minutes with a state item (sealed, or written by the stream)
    done: set[int] = field(default_factory=set)
    queries: list[tuple[int, int]] = field(default_factory=list)

    def sub_totals(self, run: tuple[int, int], seconds: frozenset[int]) -> list[w.SubTotal]:
        """Every shard's sub-total of the minutes in run, with only the per-second sums asked for."""
        self.queries.append(run)
        shards: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for t, v in self.events:
            if run[0] <= w.minute_of(t) <= run[1]:
                shards[w.minute_of(t), zlib.crc32(str(t).encode()) % SHARDS].append((t, v))
        subs = []
        for (minute, _), events in shards.items():
            per_second: dict[int, int] = defaultdict(int)
            for t, v in events:
                per_second[w.second_of(t)] += v
            subs.append(w.SubTotal(minute, sum(v for _, v in events), len(events), {s: per_second[s] for s in seconds}))
        return subs

    def states(self, span: tuple[int, int] | None) -> dict[int, w.MinuteState]:
        """The state items of the minutes in span, as the store reads them (every late per-second sum)."""
        if span is None:
            return {}
        result = {}
        for m in self.state_items | set(self.buckets):
            if span[0] <= m <= span[1]:
                late = w.MinuteParts()
                for t, v in self.late:
                    if w.minute_of(t) == m:
                        late.add(w.SubTotal(m, v, 1, {w.second_of(t): v}))
                count = sum(1 for t, _ in self.events if w.minute_of(t) == m)
                result[m] = w.MinuteState(self.buckets.get(m), count, late)
        return result

    def read(self, now: int, window_ms: int) -> int:
        """A sum as SumStore.sum reads it: the plan, round one, round two if needed, combined."""
        p = w.plan(now, window_ms)
        also = {part.minute: part.seconds for part in p.partial}
        reads = w.minute_reads(p.whole, now, also)
        assert set(also) <= reads.fresh  # the edge minutes' seconds come from sub-totals
        for minute, seconds in also.items():
            assert any(lo <= minute <= hi and set(seconds) <= wanted for (lo, hi), wanted in reads.sub_total_runs)
        assert reads.state_span is None or all(
            reads.state_span[0] <= m <= reads.state_span[1] for m in [*p.whole, *also]
        )
        in_range = range(p.whole[0], p.whole[-1] + 1) if len(p.whole) else range(0)
        states = self.states(reads.state_span)
        done = {m for m in self.done if m in in_range}
        subs = [s for run, seconds in reads.sub_total_runs for s in self.sub_totals(run, seconds)]
        parts = w.merge_sub_totals(subs, set(reads.fresh))
        raw = sum(v for t, v in self.events + self.late for lo, hi in p.raw_ranges if lo <= t <= hi)
        missing = reads.missing(states, done)
        assert not set(missing) & reads.fresh  # nothing read twice
        assert not {m for m in missing if m in states and states[m].total is not None}
        later = [s for run in w.runs(missing) for s in self.sub_totals(run, frozenset())]
        parts.update(w.merge_sub_totals(later, set(missing)))
        totals = w.minute_totals(p.whole, also, states, parts, raw)
        assert set(totals) <= set(p.whole) | set(also)
        return w.combine(
            p,
            {m: t.total for m, t in totals.items() if m in p.whole},
            {m: totals[m].seconds for m in also if m in totals},
            totals.raw,
        )


@settings(max_examples=300, deadline=None)
@given(st.data(), clocks, windows_s)
def test_planned_reads_add_up_to_exactly_the_window_however_far_compaction_got(
    data: st.DataObject, now: int, window_s: int
) -> None:
    window_ms = window_s * w.SECOND_MS
    table = Table(data.draw(events_around(now, window_ms)))
    by_minute: dict[int, int] = defaultdict(int)
    for t, v in table.events:
        by_minute[w.minute_of(t)] += v
    # Compaction may have sealed any minute that ended SEAL_LAG_MS ago: some fully (buckets and done marker),
    # some halfway (sealed, maybe a bucket, no marker: a crashed run), some not at all (behind, or the schedule
    # was off), and some after the stream's values came in past its listing (done marker, the key's state item
    # open: "missed"). Minutes without values differ only in their done marker: one state for all of them.
    # Values that came after a minute was sealed are its late values: the sum counts them too.
    sealable = range(w.minute_of(now - window_ms) - 1, w.sealable_through(now) + 1)
    states = st.sampled_from(["done", "crashed", "sealed", "behind", "missed"])
    quiet = data.draw(st.sampled_from(["done", "behind"]))
    for minute in sealable:
        state = data.draw(states) if minute in by_minute else quiet
        if state in ("done", "crashed") and minute in by_minute:
            table.buckets[minute] = by_minute[minute]
        if state in ("done", "missed"):
            table.done.add(minute)
        if state in ("done", "crashed", "sealed", "missed") and minute in by_minute:
            table.state_items.add(minute)
        if state in ("done", "crashed", "sealed") and minute in by_minute:
            offsets = st.integers(minute * w.MINUTE_MS, (minute + 1) * w.MINUTE_MS - 1)
            table.late += data.draw(st.lists(st.tuples(offsets, st.integers(-(10**15), 10**15)), max_size=3))
    expected = sum(v for t, v in table.events + table.late if now - window_ms < t <= now)
    assert table.read(now, window_ms) == expected
    assert len(table.queries) <= 2 * w.MAX_RUNS  # whatever the window and the compaction state


def test_merging_adds_every_shard_of_a_wanted_minute() -> None:
    parts = w.merge_sub_totals(
        [w.SubTotal(5, 10, 2, {0: 4, 1: 6}), w.SubTotal(5, 1, 1, {1: 1}), w.SubTotal(6, 99, 9, {})], {5}
    )
    assert parts == {5: w.MinuteParts(total=11, count=3, seconds={0: 4, 1: 7})}


def test_compaction_seals_the_lookback_up_to_the_last_sealable_minute() -> None:
    now = 1_700_000_000_000
    span = w.compaction_minutes(now, lookback=15)
    assert len(span) == 15 and span[-1] == w.sealable_through(now)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.integers(0, 20), st.sets(st.text("abcdefgh", min_size=1, max_size=3), max_size=30), max_size=6),
    st.data(),
    st.integers(1, 7),
)
def test_a_compaction_plan_holds_every_key_not_done_once_oldest_minute_first(
    listed: dict[int, set[str]], data: st.DataObject, size: int
) -> None:
    """compaction_plan: every pending minute, oldest first; each of its listed keys after the minute's progress
    exactly once, in sort order, in chunks of at most `size`; keys up to the progress (done) never."""
    pending = data.draw(st.lists(st.integers(0, 20), unique=True))
    progress: dict[int, str] = {}
    for minute, names in listed.items():
        resumed: bool = data.draw(st.booleans())
        if names and resumed:
            progress[minute] = data.draw(st.sampled_from(sorted(names)))
    plan = w.compaction_plan(pending, listed, progress, size)
    assert [minute for minute, _ in plan] == sorted(pending)
    for minute, chunks in plan:
        assert all(0 < len(chunk) <= size for chunk in chunks)
        expected = sorted(k for k in listed.get(minute, ()) if minute not in progress or k > progress[minute])
        assert [k for chunk in chunks for k in chunk] == expected


@pytest.mark.parametrize("with_run", [True, False])
def test_raw_values_count_only_where_their_run_is_committed(with_run: bool) -> None:
    """batch.raw_sum: posted values (no run) always count; a packed item counts once its run is committed, and a
    packed item of a run that never committed (a crashed or refused write) never does."""
    from chalicelib.ingest.records import Delivered, MetricEvent
    from chalicelib.metrics import batch

    run = [Delivered("s", str(i), MetricEvent("k", i, 1_000 + 7 * i)) for i in range(10)]
    stale = [Delivered("s", str(i), MetricEvent("k", 100 * i, 1_000 + 7 * i)) for i in range(5)]
    committed = {batch.run_id("s", run)} if with_run else set()
    items = [batch.RawItem(None, [(1_003, 1_000)])]
    items += [
        batch.RawItem(batch.run_id("s", r), [(p.second_ms + o, v) for p in batch.packs(r) for o, v in p.entries])
        for r in (run, stale)
    ]
    assert batch.run_id("s", run) != batch.run_id("s", run[:5]) != batch.run_id("t", run[:5])
    assert batch.raw_sum(items, committed, 1_000, 1_999) == 1_000 + (sum(range(10)) if with_run else 0)
    assert batch.raw_sum(items, committed, 1_004, 1_020) == (1 + 2 if with_run else 0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, w.MINUTE_MS - 1), st.integers(-(10**15), 10**15), st.booleans()), max_size=300),
    st.integers(1, 5),
)
def test_a_runs_packed_items_hold_exactly_its_values(drawn: list[tuple[int, int, bool]], pack_max: int) -> None:
    """batch.packs: every packed item holds at most PACK_MAX values within PACK_SPAN_MS of its first second, and
    together they hold exactly the run's values, as batch.sums and batch.sketch count them."""
    from chalicelib.ingest.records import Delivered, MetricEvent
    from chalicelib.metrics import batch
    from chalicelib.pure.sketch import Sketch

    events: list[Delivered] = []
    sequence = 0
    for offset, value, new_record in drawn:
        sequence += new_record or not events
        events.append(Delivered("s", str(sequence), MetricEvent("k", value, offset)))
    original = batch.PACK_MAX
    batch.PACK_MAX = pack_max
    try:
        packs = batch.packs(events)
        assert all(len(p.entries) <= pack_max and all(0 <= o < batch.PACK_SPAN_MS for o, _ in p.entries) for p in packs)
        assert len({(p.sequence_number, p.chunk) for p in packs}) == len(packs)  # each its own key
        unpacked = sorted(
            (p.second_ms + o, v) for p in packs for o, v in batch.decode_pack(batch.encode_pack(p.entries))
        )
        assert unpacked == sorted((batch.metric(d).time_ms, batch.metric(d).value) for d in events)
        sums = batch.sums(events)
        assert (sums.total, sums.count) == (sum(v for _, v in unpacked), len(unpacked))
        assert batch.sketch(events) == Sketch.of(v for _, v in unpacked)
    finally:
        batch.PACK_MAX = original


def test_event_items_of_every_kind_read_as_raw_values() -> None:
    """store.raw_item: a posted value, a packed item naming its run, and a packed item written as text by an older
    version (in one transaction with its sums: no run, it counts as it is)."""
    from chalicelib.metrics import batch
    from chalicelib.metrics.items import raw_item

    at = {"N": "60000"}
    assert raw_item({"at": at, "v": {"N": "-4"}}) == batch.RawItem(None, [(60_000, -4)])
    packed = {"at": at, "eb": {"B": batch.encode_pack([(7, 5), (3, -2)])}, "run": {"B": b"r1"}}
    assert raw_item(packed) == batch.RawItem(b"r1", [(60_003, -2), (60_007, 5)])
    assert raw_item({"at": at, "ev": {"S": "7:5,3:-2"}}) == batch.RawItem(None, [(60_007, 5), (60_003, -2)])
