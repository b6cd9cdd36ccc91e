"""Quantiles of last-hour windows (GET /metric/{key}/quantiles): within 1% of a true quantile of the values of the
minutes the window overlaps, whoever wrote them (8 concurrent posters, the stream's consumer, late values) and
however far compaction got. Injected clock."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chalicelib.edge.contract import quantile_levels
from chalicelib.ingest.records import Delivered, MetricEvent
from chalicelib.metrics import compaction
from chalicelib.metrics import window as w
from chalicelib.metrics.store import SumStore
from chalicelib.pure import clock, sketch
from chalicelib.pure.sketch import Sketch
from chalicelib.storage import keys
from tests.conftest import BAD_QUANTILE_LEVELS, TABLE, Api, assert_error
from tests.conftest import ok as body

MINUTE = 28_333_333  # epoch minutes, mid-2023
T0 = MINUTE * w.MINUTE_MS
HOUR_MS = 3_600_000
SHARD = "shardId-000000000000"
QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)


def at(ms: int) -> None:
    clock.set_source(lambda: ms / 1000)


def exact(values: list[int], q: float) -> int:
    """The lower q-quantile (sketch.py's definition): rank floor(q (n - 1)) of the sorted values."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def assert_accurate(answer: float | None, values: list[int], q: float) -> None:
    if not values:
        assert answer is None
        return
    truth = exact(values, q)
    assert answer is not None
    assert abs(answer - truth) <= sketch.RELATIVE_ACCURACY * abs(truth) + 1e-9, (q, answer, truth)


def covered(events: list[tuple[int, int]], now: int, window_ms: int) -> list[int]:
    """The values a window covers: those of every minute overlapping (now - window, now]."""
    span = w.minutes_overlapping(now, window_ms)
    return [v for t, v in events if w.minute_of(t) in span]


def delivered(events: list[tuple[int, int]], key: str = "k", first: int = 1) -> list[Delivered]:
    return [Delivered(SHARD, str(first + i), MetricEvent(key, v, t)) for i, (t, v) in enumerate(events)]


def mixed_values(rng: random.Random, n: int) -> list[int]:
    """Lognormal latencies, heavy-tailed outliers, negatives, zeros and duplicates."""
    pool: list[Callable[[], int]] = [
        lambda: round(rng.lognormvariate(4, 1.5)),
        lambda: -round(rng.paretovariate(1.2) * 10),
        lambda: 0,
        lambda: 42,
        lambda: rng.randint(-1000, 1000),
    ]
    return [rng.choice(pool)() for _ in range(n)]


@pytest.fixture
def store(dynamodb: Any) -> SumStore:
    return SumStore(dynamodb, TABLE, random.Random(5))


# --- the HTTP contract -------------------------------------------------------------


def test_quantiles_answer_the_documented_shape(api: Api) -> None:
    at(T0 + 5_000)
    for v in (10, 20, 30, 0, -5):
        assert api.post("/metric/lat", {"value": v}).status_code == 200
    result = body(api.get("/metric/lat/quantiles?window=60&q=0.5,1,0.999,0"))
    assert set(result) == {"quantiles", "relative_accuracy", "count"}
    assert result["relative_accuracy"] == sketch.RELATIVE_ACCURACY and result["count"] == 5
    assert list(result["quantiles"]) == ["0.5", "1", "0.999", "0"]
    values = [10, 20, 30, 0, -5]
    for text, q in (("0.5", 0.5), ("1", 1.0), ("0.999", 0.999), ("0", 0.0)):
        assert_accurate(result["quantiles"][text], values, q)
    default = body(api.get("/metric/lat/quantiles"))
    assert list(default["quantiles"]) == ["0.5", "0.9", "0.95", "0.99"]


def test_quantiles_stay_inside_the_values_and_the_edges_are_exact(api: Api) -> None:
    at(T0 + 5_000)
    for v in [*range(1, 31), *range(1, 31)]:
        assert api.post("/metric/thirty", {"value": v}).status_code == 200
    for v in (1, 2, 4):
        assert api.post("/metric/three", {"value": v}).status_code == 200
    thirty = body(api.get("/metric/thirty/quantiles?window=60&q=0,0.5,0.99,1"))["quantiles"]
    assert thirty["0.99"] == 30 and thirty["0"] == 1 and thirty["1"] == 30  # unclamped p99 is 30.27
    three = body(api.get("/metric/three/quantiles?window=60&q=0,1"))["quantiles"]
    assert three == {"0": 1, "1": 4}  # unclamped, q=0 is 0.99


def test_an_empty_window_has_no_quantiles(api: Api) -> None:
    at(T0)
    assert body(api.get("/metric/nothing/quantiles?q=0.5,0.99")) == {
        "quantiles": {"0.5": None, "0.99": None},
        "relative_accuracy": sketch.RELATIVE_ACCURACY,
        "count": 0,
    }


@pytest.mark.parametrize("query", [f"q={q}" for q in BAD_QUANTILE_LEVELS] + ["window=0", "window=86401", "window=1.5"])
def test_bad_quantile_queries_are_400(api: Api, query: str) -> None:
    at(T0)
    response = api.get(f"/metric/k/quantiles?{query}")
    assert_error(response, 400, "invalid_input")


@pytest.mark.pure
def test_quantile_lists_take_1_to_20_decimals_in_0_1() -> None:
    assert [q for _, q in quantile_levels("0.5,.9,1,0,0.999")] == [0.5, 0.9, 1.0, 0.0, 0.999]
    assert [q for _, q in quantile_levels(",".join(["0.1"] * 20))] == [0.1] * 20
    for bad in ("", "2", "0.5,", "+0.5", " 0.5", "0x1", ",".join(["0.1"] * 21)):
        with pytest.raises(ValueError):
            quantile_levels(bad)


# --- accuracy end to end -------------------------------------------------------------


@pytest.mark.heavy
def test_eight_concurrent_posters_give_quantiles_within_one_percent(api: Api, store: SumStore) -> None:
    rng = random.Random(11)
    per_writer = [mixed_values(random.Random(rng.random()), 40) for _ in range(8)]
    at(T0 + 15_000)
    failures: list[int] = []

    def writer(values: list[int]) -> None:
        for v in values:
            status = api.post("/metric/lat", {"value": v}).status_code
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=writer, args=(vs,)) for vs in per_writer]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures
    values = [v for vs in per_writer for v in vs]
    subs = store.sub_sketches("lat", [MINUTE])
    assert subs[MINUTE] == Sketch.of(values)  # every post's bin, exactly once
    qs = ",".join(repr(q) for q in QS)
    for now in (T0 + 20_000, T0 + w.MINUTE_MS + w.SEAL_LAG_MS, T0 + HOUR_MS):
        at(now)
        if now > T0 + w.MINUTE_MS:
            compaction.compact(store, now)
        result = body(api.get(f"/metric/lat/quantiles?window=3600&q={qs}"))
        assert result["count"] == len(values)
        for q in QS:
            assert_accurate(result["quantiles"][repr(q)], values, q)
        assert (result["quantiles"]["0.0"], result["quantiles"]["1.0"]) == (min(values), max(values))


def test_the_window_covers_whole_minutes(store: SumStore) -> None:
    events = [(T0 + 1_000, 1), (T0 + 59_999, 2), (T0 + 60_000, 3), (T0 + 61_000, 4), (T0 + 130_000, 5)]
    for i, (t, v) in enumerate(events):
        store.post("k", v, t, event_id=f"e{i}")
    for now, window_ms in [(T0 + 61_500, 1_000), (T0 + 61_500, 2_000), (T0 + 121_000, 60_000), (T0 + 61_000, 62_000)]:
        got = store.quantile_sketch("k", now, window_ms)
        assert got == Sketch.of(covered(events, now, window_ms)), (now, window_ms)
    assert store.quantile_sketch("k", T0 + 61_500, 1_000).count == 2  # 3 and 4: the whole current minute so far


@pytest.mark.heavy
def test_stream_events_late_values_and_compaction_keep_the_answer(store: SumStore) -> None:
    rng = random.Random(4)
    events = [(T0 + rng.randrange(3 * w.MINUTE_MS), v) for v in mixed_values(rng, 600)]
    records = delivered(events)
    store.apply_delivered(records[:300], T0 + 3 * w.MINUTE_MS)
    for i, (t, v) in enumerate(events[:100]):  # direct posts of the same key too
        store.post("k", v, t, event_id=f"d{i}")
    everything = events + events[:100]
    sealed = compaction.compact(store, T0 + 4 * w.MINUTE_MS + w.SEAL_LAG_MS)
    assert {MINUTE, MINUTE + 1, MINUTE + 2} <= set(sealed.minutes)
    store.apply_delivered(records, T0 + 10 * w.MINUTE_MS)  # a replay of the first half, then late values
    store.apply_delivered(records[250:400], T0 + 10 * w.MINUTE_MS)  # a retry of applied records
    compaction.compact(store, T0 + 10 * w.MINUTE_MS)
    for now in (T0 + 30_000, T0 + 2 * w.MINUTE_MS + 5_000, T0 + 10 * w.MINUTE_MS):
        for window_ms in (1_000, 90_000, HOUR_MS):
            values = covered(everything, now, window_ms)
            got = store.quantile_sketch("k", now, window_ms)
            assert got == Sketch.of(values), (now, window_ms)
            for q in QS:
                assert_accurate(got.quantile(q), values, q)


def assert_extremes(store: SumStore, everything: list[tuple[int, int]], now: int, window_ms: int) -> None:
    values = covered(everything, now, window_ms)
    merged, extremes = store.quantile_values("k", now, window_ms)
    assert extremes == w.extremes_of(values), (now, window_ms)
    low, high = extremes.bounds()
    for q in QS:
        answer = merged.quantile_within(q, low, high)
        assert answer is not None and min(values) <= answer <= max(values), (q, answer)
    assert (merged.quantile_within(0, low, high), merged.quantile_within(1, low, high)) == (min(values), max(values))


def test_extremes_follow_posts_stream_events_late_values_and_compaction(store: SumStore) -> None:
    rng = random.Random(9)
    # Posts in rising, falling and mixed order (each shard's extremes move both ways); the stream's values on top.
    posted = [(T0 + 100 * i, v) for i, v in enumerate([*range(5, 15), *range(40, 20, -2), *mixed_values(rng, 20)])]
    streamed = [(T0 + w.MINUTE_MS + 200 * i, v) for i, v in enumerate(mixed_values(rng, 40))]
    for i, (t, v) in enumerate(posted):
        store.post("k", v, t, event_id=f"p{i}")
    records = delivered(streamed)
    store.apply_delivered(records[:20], T0 + 2 * w.MINUTE_MS)
    store.apply_delivered(records[:25], T0 + 2 * w.MINUTE_MS)  # a retry: the first 20 are skipped
    everything = posted + streamed[:25]
    assert_extremes(store, everything, T0 + 2 * w.MINUTE_MS - 1, HOUR_MS)  # before compaction: sub-totals
    compaction.compact(store, T0 + 2 * w.MINUTE_MS + w.SEAL_LAG_MS)
    assert_extremes(store, everything, T0 + 3 * w.MINUTE_MS, HOUR_MS)  # buckets
    late = [(T0 + w.MINUTE_MS + 5, -(10**9)), (T0 + 7, 10**9)]  # beyond every value, after the seal
    store.apply_delivered(records + delivered(late, first=1_000), T0 + 5 * w.MINUTE_MS)
    everything = posted + streamed + late
    for window_ms in (4 * w.MINUTE_MS, HOUR_MS):
        assert_extremes(store, everything, T0 + 5 * w.MINUTE_MS, window_ms)
    assert_extremes(store, everything, T0 + w.MINUTE_MS + 1, 1_000)  # the second minute alone
    compaction.compact(store, T0 + 6 * w.MINUTE_MS)
    assert_extremes(store, everything, T0 + 6 * w.MINUTE_MS, HOUR_MS)


def test_a_minute_holding_values_without_extremes_is_not_clamped(store: SumStore, dynamodb: Any) -> None:
    """A sub-total posted to before extremes were kept: its minute's extremes are unknown, and stay so when more is
    posted to it (extremes of only some of its values would be wrong ones)."""
    dynamodb.put_item(TableName=TABLE, Item=store.sub_total_item("k", MINUTE, 0, -50, 1, {0: -50}))
    store.post("k", 7, T0 + 1_000, event_id="new", shard=0)
    store.post("k", 3, T0 + 2_000, event_id="other", shard=1)
    _, extremes = store.quantile_values("k", T0 + 5_000, HOUR_MS)
    assert extremes == w.UNKNOWN and extremes.bounds() == (None, None)
    compaction.compact(store, T0 + w.MINUTE_MS + w.SEAL_LAG_MS)
    assert store.quantile_values("k", T0 + 2 * w.MINUTE_MS, HOUR_MS)[1] == w.UNKNOWN


def test_a_replayed_batch_adds_its_bins_once(store: SumStore, dynamodb: Any) -> None:
    events = [(T0 + 100 * i, i % 7 - 3) for i in range(50)]
    records = delivered(events)
    store.apply_delivered(records[:30], T0 + w.MINUTE_MS)
    store.apply_delivered(records, T0 + w.MINUTE_MS)  # a retried batch: the first 30 are skipped
    store.apply_delivered(records[10:40], T0 + w.MINUTE_MS)
    assert store.sub_sketches("k", [MINUTE]) == {MINUTE: Sketch.of(v for _, v in events)}


def test_compaction_writes_a_bounded_bucket_that_reads_the_same(store: SumStore, dynamodb: Any) -> None:
    values = [-(10**15), -1, 0, 1, 10**15, *range(-100, 100)]
    for i, v in enumerate(values):
        store.post("k", v, T0 + i, event_id=f"e{i}")
    before = store.quantile_sketch("k", T0 + w.MINUTE_MS - 1, HOUR_MS)
    compaction.compact(store, T0 + w.MINUTE_MS + w.SEAL_LAG_MS)
    item = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": keys.sum_sketch_pk("k")}, "sk": {"S": keys.sum_sketch_bucket_sk(MINUTE)}}
    )["Item"]
    bucket = Sketch.decode(item["sketch"]["B"])
    assert bucket == before == Sketch.of(values)  # integers |v| <= 1e15 never reach MAX_BINS: nothing collapsed
    assert max(len(bucket.positive), len(bucket.negative)) <= sketch.MAX_BINS
    assert store.quantile_sketch("k", T0 + 2 * w.MINUTE_MS, HOUR_MS) == before


def test_sums_never_read_the_sketches(store: SumStore, dynamodb: Any) -> None:
    """The bins live in their own partition: a sum's Queries never touch it."""
    for i in range(20):
        store.post("k", i * 1_000, T0 + 500 * i, event_id=f"e{i}")
    seen: list[str] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.Query",
        lambda params, **_: seen.append(params["ExpressionAttributeValues"][":pk"]["S"]),
    )
    assert store.sum("k", T0 + 30_000, HOUR_MS) == sum(i * 1_000 for i in range(20))
    assert seen and keys.sum_sketch_pk("k") not in seen


# --- pure planning ---------------------------------------------------------------------

minute_values = st.lists(st.integers(-(10**6), 10**6), max_size=8)


@pytest.mark.pure
@given(
    st.lists(st.tuples(minute_values, minute_values, st.sampled_from(["bucket", "subs", "both", "none"])), max_size=6)
)
def test_a_window_sketch_is_its_minutes_values_however_far_compaction_got(
    minutes: list[tuple[list[int], list[int], str]],
) -> None:
    """Each minute's base values are in its bucket, its sub-totals, or both (a bucket equals what it was made
    from); its late values are in neither. The merge is the sketch of every value, once."""
    span = range(100, 100 + len(minutes))
    buckets: dict[int, Sketch] = {}
    subs: dict[int, Sketch] = {}
    late: dict[int, Sketch] = {}
    for m, (base, after, where) in zip(span, minutes, strict=True):
        if where in ("bucket", "both"):
            buckets[m] = Sketch.of(base).bounded()
        if where in ("subs", "both", "none"):
            subs[m] = Sketch.of(base if where != "none" else [])
        if after:
            late[m] = Sketch.of(after)
    if minutes and minutes[0][2] == "none":
        subs.pop(span[0])  # a minute nobody wrote to has no items at all
    expected = Sketch.of(v for base, after, where in minutes for v in ([] if where == "none" else base) + after)
    assert w.window_sketch(span, buckets, subs, late) == expected
    # minutes outside the span are not counted
    assert w.window_sketch(range(0), buckets, subs, late) == sketch.EMPTY


@pytest.mark.pure
@given(st.lists(st.tuples(minute_values, minute_values, st.sampled_from(["bucket", "subs", "old"])), max_size=6))
def test_window_extremes_are_those_of_its_values_or_unknown(minutes: list[tuple[list[int], list[int], str]]) -> None:
    """A minute's base values' extremes are in its bucket (compacted) or its sub-totals, its late values' in its state
    item; "old": a bucket written before extremes were kept, which makes the window's unknown."""
    span = range(100, 100 + len(minutes))
    states: dict[int, w.MinuteState] = {}
    subs: dict[int, w.Extremes] = {}
    for m, (base, after, where) in zip(span, minutes, strict=True):
        late = w.MinuteParts(count=len(after), extremes=w.extremes_of(after))
        if where == "subs":
            subs[m] = w.extremes_of(base)
            states[m] = w.MinuteState(late=late)
        else:
            kept = w.extremes_of(base) if where == "bucket" else w.extremes_kept(len(base), None, None)
            states[m] = w.MinuteState(total=sum(base), count=len(base), late=late, extremes=kept)
            subs[m] = w.extremes_of([10**9])  # read too, but a bucket wins over the sub-totals it was made from
    got = w.window_extremes(span, states, subs)
    if any(where == "old" and base for base, _, where in minutes):
        assert got == w.UNKNOWN
    else:
        assert got == w.extremes_of(v for base, after, _ in minutes for v in base + after)


PLACES = ["compacted", "crashed", "passed", "fresh", "none"]


@pytest.mark.pure
@given(
    st.lists(st.tuples(minute_values, st.sampled_from(["compacted", "passed"])), max_size=4),
    st.lists(st.tuples(minute_values, st.sampled_from(PLACES), minute_values), max_size=6),
    st.booleans(),
)
# A minute passed by and a crashed one with as many values: only the passed minute's own flag tells them apart.
@example(before=[], minutes=[([7], "passed", []), ([5], "crashed", []), ([1], "compacted", [])], restart=False)
def test_a_window_sketch_from_prefixes_is_exact_or_declined(
    before: list[tuple[list[int], str]], minutes: list[tuple[list[int], str, list[int]]], restart: bool
) -> None:
    """Prefixes of a chain that only grows at its head: each compacted minute is in it (or was passed by, and says
    so), a crash may leave a prefix without its sum bucket, and the chain may restart (its head expired). The
    answer from two prefixes is the sketch of the span's values, or None (then the buckets are merged); never
    anything else, and None only when a minute of the span is crashed or passed by."""
    first = 100
    span = range(first, first + len(minutes))
    places: dict[int, tuple[list[int], str, list[int]]] = {
        first - len(before) + i: (values, place, []) for i, (values, place) in enumerate(before)
    }
    places.update({m: entry for m, entry in zip(span, minutes, strict=True)})
    prefixes: dict[int, w.Prefix] = {}
    head: w.Prefix | None = None
    for m in sorted(places):
        values, place, _ = places[m]
        if place not in ("compacted", "crashed"):
            continue
        if head is None or (restart and m >= first and head.minute < first):
            head = w.Prefix(m, m, 0, sketch.EMPTY)
        head = w.Prefix(m, head.chain, head.k + 1, head.sketch.merge(Sketch.of(values)))
        prefixes[m] = head
    states: dict[int, w.MinuteState] = {}
    subs: dict[int, Sketch] = {}
    late: dict[int, Sketch] = {}
    for m in span:
        values, place, after = places[m]
        late_parts = w.MinuteParts(sum(after), len(after))
        if place in ("compacted", "passed"):
            states[m] = w.MinuteState(sum(values), len(values), late_parts, chained=place == "compacted")
        elif place == "crashed" or after:
            states[m] = w.MinuteState(late=late_parts)
        if place != "none":
            subs[m] = Sketch.of(values)
        if after:
            late[m] = Sketch.of(after)
    at_end = [p for p in prefixes if p < first + len(minutes)]
    before_start = [p for p in prefixes if p < first]
    end = prefixes[max(at_end)] if at_end else None
    start = prefixes[max(before_start)] if before_start else None
    got = w.prefix_sketch(span, states, end, start, subs, late)
    expected = Sketch.of(v for values, place, after in minutes for v in ([] if place == "none" else values) + after)
    assert got is None or got == expected
    if not any(place in ("crashed", "passed") for _, place, _ in minutes):
        assert got == expected


@pytest.mark.heavy
def test_compaction_chains_prefixes_and_reads_use_them_not_the_buckets(store: SumStore, dynamodb: Any) -> None:
    rng = random.Random(7)
    events = [(T0 + rng.randrange(6 * w.MINUTE_MS), v) for v in mixed_values(rng, 300)]
    for i, (t, v) in enumerate(events):
        store.post("k", v, t, event_id=f"e{i}")
    now = T0 + 8 * w.MINUTE_MS + w.SEAL_LAG_MS
    compaction.compact(store, now)
    head = store.prefix_head("k")
    assert head is not None and (head.minute, head.chain, head.k) == (MINUTE + 5, MINUTE, 6)
    assert head.sketch == Sketch.of(v for _, v in events)
    ranges: list[str] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.Query",
        lambda params, **_: ranges.append(params["ExpressionAttributeValues"].get(":low", {}).get("S", "")),
    )
    for window_ms in (1_000, 3 * w.MINUTE_MS + 1, 5 * w.MINUTE_MS, HOUR_MS):
        for later in (0, 2 * w.MINUTE_MS):
            values = covered(events, now + later, window_ms)
            assert store.quantile_sketch("k", now + later, window_ms) == Sketch.of(values), window_ms
    assert ranges and not any(low.startswith("B") for low in ranges)  # no per-minute buckets were read


def test_a_minute_the_chain_passed_by_is_read_exactly(store: SumStore, dynamodb: Any) -> None:
    """A run that had the older minutes out of its lookback got ahead of the one that compacts them."""
    events = [(T0 + i * 7_000, i % 11 - 5) for i in range(40)]  # minutes MINUTE..MINUTE+4
    for i, (t, v) in enumerate(events):
        store.post("k", v, t, event_id=f"e{i}")
    now = T0 + 6 * w.MINUTE_MS + w.SEAL_LAG_MS  # minutes up to MINUTE + 5 may be compacted
    compaction.compact(store, now, lookback=3)  # MINUTE+3..MINUTE+5
    compaction.compact(store, now)  # MINUTE..MINUTE+2: behind the chain's head
    head = store.prefix_head("k")
    assert head is not None and (head.minute, head.k) == (MINUTE + 4, 2)
    for window_ms in (w.MINUTE_MS, 3 * w.MINUTE_MS, HOUR_MS):
        assert store.quantile_sketch("k", now, window_ms) == Sketch.of(covered(events, now, window_ms))


def test_a_crash_between_a_prefix_and_its_sum_bucket_is_read_exactly(
    store: SumStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [(T0 + i * 5_000, (i * 37) % 101 - 50) for i in range(36)]  # minutes MINUTE..MINUTE+2
    for i, (t, v) in enumerate(events):
        store.post("k", v, t, event_id=f"e{i}")
    now = T0 + 3 * w.MINUTE_MS + w.SEAL_LAG_MS
    compaction.compact(store, T0 + w.MINUTE_MS + w.SEAL_LAG_MS)  # MINUTE
    put_bucket = compaction._put_bucket

    def crash(*args: Any) -> bool:
        raise RuntimeError("crashed")

    monkeypatch.setattr(compaction, "_put_bucket", crash)
    with pytest.raises(RuntimeError):
        compaction.compact(store, now)  # MINUTE+1's prefix written, not its sum bucket
    head = store.prefix_head("k")
    assert head is not None and head.minute == MINUTE + 1
    for window_ms in (w.MINUTE_MS, 2 * w.MINUTE_MS, HOUR_MS):
        assert store.quantile_sketch("k", now, window_ms) == Sketch.of(covered(events, now, window_ms))
    monkeypatch.setattr(compaction, "_put_bucket", put_bucket)
    compaction.compact(store, now)
    head = store.prefix_head("k")
    assert head is not None and (head.minute, head.k) == (MINUTE + 2, 3)
    for window_ms in (w.MINUTE_MS, 2 * w.MINUTE_MS, HOUR_MS):
        assert store.quantile_sketch("k", now, window_ms) == Sketch.of(covered(events, now, window_ms))
