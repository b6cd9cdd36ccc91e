"""The pure DDSketch against exact quantiles of the sorted values."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.edge import web
from chalicelib.pure.sketch import GAMMA, MAX_BINS, RELATIVE_ACCURACY, Sketch, bin_index, bin_key

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

QS = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)
# A value on a bin boundary may land in the neighbour bin by a rounding of log(); that costs float epsilon, not 1%.
TOLERANCE = RELATIVE_ACCURACY * (1 + 1e-9)


def exact(values: list[float], q: float) -> float:
    """The lower q-quantile: rank floor(q * (n - 1)) of the sorted values."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def within(estimate: float | None, true: float) -> bool:
    assert estimate is not None
    return abs(estimate - true) <= TOLERANCE * abs(true)


def seeded(draw_values: str) -> st.SearchStrategy[list[float]]:
    """Samples from one of Python's distributions, the seed and size drawn by hypothesis."""

    def sample(args: tuple[int, int]) -> list[float]:
        seed, n = args
        rng = random.Random(seed)
        if draw_values == "lognormal":
            return [rng.lognormvariate(0, 3) for _ in range(n)]
        if draw_values == "pareto":  # heavy tail: no finite mean
            return [rng.paretovariate(0.7) for _ in range(n)]
        return [rng.choice((-1, 1)) * rng.lognormvariate(2, 4) for _ in range(n)]

    return st.tuples(st.integers(0, 2**32), st.integers(1, 2000)).map(sample)


uniform = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False), min_size=1)
bounded_magnitudes = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-50, max_value=1e50),
    st.floats(min_value=-1e50, max_value=-1e-50),
)
duplicates = st.lists(st.sampled_from([-3.5, -1e-50, 0.0, 0.0, 1e-50, 2.0, 2.0, 2.0, 1e50]), min_size=1, max_size=300)
distributions = st.one_of(
    uniform,
    seeded("lognormal"),
    seeded("pareto"),
    seeded("signed_lognormal"),
    st.lists(bounded_magnitudes, min_size=1),
    duplicates,
)


@settings(max_examples=300, deadline=None)
@given(distributions)
def test_every_quantile_is_within_the_relative_accuracy_of_the_exact_one(values: list[float]) -> None:
    sketch = Sketch.of(values)
    assert sketch.count == len(values)
    for q in QS:
        assert within(sketch.quantile(q), exact(values, q)), (q, sketch.quantile(q), exact(values, q))


@settings(max_examples=200, deadline=None)
@given(distributions, st.randoms(use_true_random=False))
def test_merge_order_and_grouping_do_not_matter(values: list[float], rng: random.Random) -> None:
    parts = [values[i::3] for i in range(3)]
    sketches = [Sketch.of(part) for part in parts]
    whole = Sketch.of(values)
    rng.shuffle(sketches)
    merged = sketches[0].merge(*sketches[1:])
    pairwise = sketches[2].merge(sketches[1]).merge(sketches[0])
    assert merged.bins() == pairwise.bins() == whole.bins()
    assert [merged.quantile(q) for q in QS] == [whole.quantile(q) for q in QS]


@settings(max_examples=200, deadline=None)
@given(distributions)
def test_encode_decode_and_bins_round_trip(values: list[float]) -> None:
    sketch = Sketch.of(values)
    assert Sketch.decode(sketch.encode()).bins() == sketch.bins()
    assert Sketch.from_bins(sketch.bins()).bins() == sketch.bins()
    assert Sketch.decode(sketch.encode()).encode() == sketch.encode()


@settings(max_examples=200, deadline=None)
@given(st.lists(bounded_magnitudes, min_size=1, max_size=400), st.integers(1, 300))
def test_bounded_keeps_the_guarantee_for_quantiles_in_kept_bins(values: list[float], max_bins: int) -> None:
    bounded = Sketch.of(values).bounded(max_bins)
    assert bounded.count == len(values)
    assert len(bounded.positive) <= max_bins and len(bounded.negative) <= max_bins
    top = {sign: max((bin_index(x) for x in values if x * sign > 0), default=0) for sign in (1, -1)}
    for q in QS:
        true = exact(values, q)
        sign = 1 if true > 0 else -1
        if true == 0 or bin_index(true) > top[sign] - max_bins:
            assert within(bounded.quantile(q), true), (q, bounded.quantile(q), true)


def test_bounded_bins_cover_the_stated_ratio_of_magnitudes() -> None:
    largest = 1e60
    smallest_kept = largest / GAMMA ** (MAX_BINS - 1) * (1 + 1e-12)
    values = [smallest_kept, largest] + [1e-60] * 10
    bounded = Sketch.of(values).bounded()
    assert len(bounded.positive) <= MAX_BINS
    assert within(bounded.quantile(10 / 11), smallest_kept)  # rank 10 of 12: the smallest kept value
    assert not within(bounded.quantile(0), 1e-60)  # the collapsed ones lose the guarantee


def test_the_bound_spans_every_value_a_stream_accepts() -> None:
    assert bin_index(web.VALUE_MAX_MAGNITUDE) - bin_index(web.VALUE_MIN_MAGNITUDE) + 1 == MAX_BINS
    extremes = [1e-50, 1e50, -1e-50, -1e50, 0.0]
    bounded = Sketch.of(extremes).bounded()
    assert bounded == Sketch.of(extremes)
    for q in QS:
        assert within(bounded.quantile(q), exact(extremes, q))
    assert len(bounded.encode()) < 32  # sparse bins cost what they hold, not the span between them


def test_bounded_sketch_encodes_to_a_bounded_size() -> None:
    spread = [sign * GAMMA ** (i - 0.5) for i in range(-7000, 7000) for sign in (1, -1)]
    sketch = Sketch.of(spread * 3).merge(Sketch(zeros=2**40)).bounded()
    assert len(sketch.positive) == len(sketch.negative) == MAX_BINS
    # Per sign: MAX_BINS contiguous bins, one byte each while a count is below 128.
    assert len(sketch.encode()) <= 2 * MAX_BINS + 32


def test_empty_sketch() -> None:
    empty = Sketch.of([])
    assert (empty.count, empty.quantile(0.5), empty.bins()) == (0, None, {})
    assert Sketch.decode(empty.encode()) == empty


def test_bin_keys_name_sign_and_index() -> None:
    assert bin_key(0.0) == "z"
    assert bin_key(1.0) == "p0" and bin_key(-1.0) == "n0"
    assert bin_key(1.5) == f"p{math.ceil(math.log(1.5) / math.log(GAMMA))}"
    assert bin_key(-1e-50).startswith("n-")
    assert Sketch.from_bins({"p-3": 2, "n5": 1, "z": 4}).bins() == {"p-3": 2, "n5": 1, "z": 4}


@pytest.mark.parametrize("bad", [{"x1": 1}, {"p": 1}, {"p1.5": 1}, {"p-": 1}, {"p1": -1}, {"n--2": 1}])
def test_from_bins_rejects_what_is_not_a_bin(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Sketch.from_bins(bad)


@pytest.mark.parametrize(
    "bad", [b"", b"\x02\x00\x00\x00", b"\x01\x00\x01\x00\x05\x00", b"\x01\x00\x00\x00\x00", b"\x01\xff"]
)
def test_decode_rejects_what_is_not_a_sketch(bad: bytes) -> None:
    with pytest.raises(ValueError):
        Sketch.decode(bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_have_no_bin(bad: float) -> None:
    with pytest.raises(ValueError):
        Sketch.of([bad])


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan])
def test_quantile_outside_zero_one_is_refused(q: float) -> None:
    with pytest.raises(ValueError):
        Sketch.of([1.0]).quantile(q)


@settings(max_examples=300, deadline=None)
@given(distributions, st.floats(min_value=0, max_value=1))
def test_a_quantile_within_min_and_max_stays_inside_the_values_and_keeps_the_guarantee(
    values: list[float], q: float
) -> None:
    sketch = Sketch.of(values)
    low, high = min(values), max(values)
    answer = sketch.quantile_within(q, low, high)
    assert answer is not None and low <= answer <= high
    assert within(answer, exact(values, q))
    assert sketch.quantile_within(0, low, high) == low
    assert sketch.quantile_within(1, low, high) == high


def test_the_reported_cases_answer_inside_the_values() -> None:
    # Unclamped, p99 of 1..30 (each twice) is 30.27 and q=0 of [1, 2, 4] is 0.99: bin representatives, not values.
    one_to_thirty = Sketch.of([*range(1, 31), *range(1, 31)])
    assert (one_to_thirty.quantile(0.99) or 0) > 30
    assert one_to_thirty.quantile_within(0.99, 1, 30) == 30
    assert Sketch.of([1, 2, 4]).quantile_within(0, 1, 4) == 1


def test_a_quantile_without_bounds_is_the_sketch_answer() -> None:
    sketch = Sketch.of([1, 2, 4])
    assert sketch.quantile_within(0.5, None, None) == sketch.quantile(0.5)
    assert Sketch().quantile_within(0.5, 1, 4) is None


@settings(max_examples=200, deadline=None)
@given(distributions)
def test_a_histogram_holds_every_value_in_its_bin_in_order(values: list[float]) -> None:
    sketch = Sketch.of(values)
    low, high = min(values), max(values)
    bins = sketch.histogram(low, high)
    assert sum(count for _, _, count in bins) == len(values)
    assert all(a <= b for a, b, _ in bins) and all(b1 <= a2 for (_, b1, _), (a2, _, _) in itertools.pairwise(bins))
    assert bins[0][0] == low and bins[-1][1] == high
    for x in values:  # each value falls in a bin's range (float rounding at a bin's edge: 1e-9 relative)
        slack = 1e-9 * abs(x)
        assert any(a - slack <= x <= b + slack for a, b, _ in bins), x
