"""The pure Welford core against Python's statistics module."""

from __future__ import annotations

import itertools
import math
import statistics
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.streams.welford import Moments, merge_all

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


def close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def test_empty_has_no_figures() -> None:
    m = Moments()
    assert (m.count, m.variance, m.stddev, m.sample_variance, m.min, m.max) == (0, None, None, None, None, None)


def test_one_value_has_no_sample_figures() -> None:
    m = Moments().add(3.5)
    assert (m.count, m.mean, m.variance, m.sample_variance, m.sample_stddev) == (1, 3.5, 0.0, None, None)


def test_large_offset_is_numerically_sound() -> None:
    values = [1e10 + 4, 1e10 + 7, 1e10 + 13, 1e10 + 16]
    m = Moments().add_all(values)
    assert m.mean == 1e10 + 10
    assert math.isclose(m.stddev or 0, 4.743416490252569, rel_tol=1e-9)
    assert math.isclose(m.sample_variance or 0, statistics.variance(values), rel_tol=1e-9)


@given(st.lists(finite, min_size=1, max_size=200))
def test_matches_statistics(values: list[float]) -> None:
    m = Moments().add_all(values)
    assert m.count == len(values)
    assert close(m.mean, statistics.fmean(values))
    assert close(m.variance or 0, statistics.pvariance(values), abs_=1e-3)
    assert m.min == min(values) and m.max == max(values)
    if len(values) >= 2:
        assert close(m.sample_variance or 0, statistics.variance(values), abs_=1e-3)


@settings(max_examples=200)
@given(st.lists(st.lists(finite, max_size=30), min_size=1, max_size=10))
def test_merge_of_parts_equals_one_pass(parts: list[list[float]]) -> None:
    everything = [x for part in parts for x in part]
    merged = merge_all(Moments().add_all(part) for part in parts)
    one_pass = Moments().add_all(everything)
    assert merged.count == one_pass.count
    if everything:
        assert close(merged.mean, one_pass.mean)
        assert close(merged.m2, one_pass.m2, abs_=1e-3)
        assert (merged.min, merged.max) == (one_pass.min, one_pass.max)


@given(st.lists(finite, min_size=2, max_size=50), st.lists(finite, min_size=2, max_size=50))
def test_merge_is_symmetric(a: list[float], b: list[float]) -> None:
    ab = Moments().add_all(a).merge(Moments().add_all(b))
    ba = Moments().add_all(b).merge(Moments().add_all(a))
    assert ab.count == ba.count and close(ab.mean, ba.mean) and close(ab.m2, ba.m2, abs_=1e-3)


# --- against exact references, over the accepted range --------------------------------------------------
#
# Error bounds, from first-order rounding analysis with unit roundoff u = 2**-53, n values and
# X = max|x| (so |mean| <= X and every deviation d satisfies |d| <= 2X):
# * mean: each Welford step rounds x - mean, the division and the addition, adding at most
#   (1 + 4/(k+1)) u X <= 3 u X; an earlier error is carried on scaled by k/(k+1) <= 1. A Chan merge adds
#   at most a few u X more and weights the two errors by nA/n and nB/n. So |error| <= 8 n u X.
# * M2 = S, the exact sum of squared deviations: direct roundings cost at most ~10 n u S; a mean error e
#   shifts a step's increment by 2|d|e + e**2 with sum(d**2) <= 2 S over the steps (merges: the between-shard
#   terms sum to at most S and their weights to at most n log2(2n)). Cauchy-Schwarz gives
#   |error| <= 32 u (n S + n**1.5 sqrt(log2(2n)) X sqrt(S)) + 128 n**3 u**2 X**2.
#   The middle term is the condition number at work: it is u n**1.5 S times X / sqrt(S), so values far from
#   zero with a small spread (X >> sqrt(S)) lose relative precision, as any float method does.
# The bounds are proven, not fitted: typical errors are orders of magnitude smaller.

U = 2.0**-53


def accepted(x: float) -> bool:
    return x == 0 or 1e-50 <= abs(x) <= 1e50


# Any accepted value: magnitudes spread over the whole range, so one list can mix 1e50 with 1e-50 (the small
# ones are then lost in float sums, which the bounds allow: they scale with the largest magnitude).
magnitude = st.floats(min_value=1e-50, max_value=1e50)
any_accepted = st.one_of(st.just(0.0), magnitude, magnitude.map(lambda x: -x))


@st.composite
def clustered(draw: st.DrawFn) -> list[float]:
    """Values at one scale: an offset plus a spread up to 13 decimal digits narrower (ill-conditioned at times)."""
    exponent = draw(st.integers(-50, 35))  # |x| <= 2e13 * 1e35 < 1e50; a nonzero |x| >= 1e-50
    centre = draw(st.integers(-(10**13), 10**13))
    width = 10 ** draw(st.integers(0, 13))
    offsets = draw(st.lists(st.integers(-width, width), min_size=1, max_size=60))
    return [(centre + d) * 10.0**exponent for d in offsets]


value_lists = st.one_of(clustered(), st.lists(any_accepted, min_size=1, max_size=60))


def exact(values: list[float]) -> tuple[Fraction, Fraction]:
    """The exact mean and sum of squared deviations."""
    fractions = [Fraction(x) for x in values]
    mean = sum(fractions, Fraction(0)) / len(fractions)
    return mean, sum(((x - mean) ** 2 for x in fractions), Fraction(0))


def mean_tolerance(values: list[float]) -> float:
    return 8 * len(values) * U * max(abs(v) for v in values)


def m2_tolerance(values: list[float], s: Fraction) -> float:
    n, top, root = len(values), max(abs(v) for v in values), math.sqrt(s)
    first_order = 32 * U * (n * float(s) + math.pow(n, 1.5) * math.sqrt(math.log2(2 * n)) * top * root)
    return first_order + 128 * n**3 * U**2 * top**2


def assert_matches_exact(m: Moments, values: list[float]) -> None:
    """Every figure of `m` is the one of `values`: exact where it can be, within the bounds above otherwise."""
    assert all(accepted(x) for x in values)
    mean, s = exact(values)
    n = len(values)
    assert m.count == n
    assert (m.min, m.max) == (min(values), max(values))
    assert abs(m.mean - statistics.mean(values)) <= mean_tolerance(values) + U * abs(m.mean)
    assert abs(Fraction(m.mean) - mean) <= mean_tolerance(values)
    assert m.m2 >= 0
    m2_error = m2_tolerance(values, s)
    assert abs(Fraction(m.m2) - s) <= m2_error
    # Each figure below is one more correctly rounded operation on M2, as statistics' figures are on S.
    assert m.variance is not None and m.stddev is not None
    assert abs(m.variance - statistics.pvariance(values)) <= m2_error / n + 2 * U * (m.variance + float(s) / n)
    if s:
        exact_stddev = math.sqrt(float(s) / n)
        # |sqrt(a) - sqrt(b)| = |a - b| / (sqrt(a) + sqrt(b))
        bound = (m2_error / n + 2 * U * (m.variance + float(s) / n)) / (m.stddev + exact_stddev)
        assert abs(m.stddev - statistics.pstdev(values)) <= bound + 2 * U * exact_stddev
    if n >= 2:
        assert m.sample_variance is not None
        expected = statistics.variance(values)
        assert abs(m.sample_variance - expected) <= m2_error / (n - 1) + 2 * U * (m.sample_variance + expected)
    else:
        assert m.sample_variance is None and m.sample_stddev is None
    # The running sum is a plain float sum: within (n - 1) u sum|x| of the exact sum (math.fsum).
    assert abs(m.sum - math.fsum(values)) <= n * U * math.fsum(map(abs, values))


@settings(max_examples=300, deadline=None)
@given(value_lists)
def test_one_pass_matches_exact_figures(values: list[float]) -> None:
    assert_matches_exact(Moments().add_all(values), values)


@settings(max_examples=200, deadline=None)
@given(value_lists)
def test_m2_never_decreases(values: list[float]) -> None:
    m = Moments()
    for x in values:
        after = m.add(x)
        assert after.m2 >= m.m2 >= 0
        m = after


@st.composite
def sharded(draw: st.DrawFn, lists: st.SearchStrategy[list[float]]) -> tuple[list[float], list[list[float]], list[int]]:
    """A sequence, a split of it into consecutive shards (some empty), and a merge order: pairs of shard indexes."""
    values = draw(lists)
    cuts = sorted(draw(st.lists(st.integers(0, len(values)), max_size=8)))
    bounds = [0, *cuts, len(values)]
    shards = [values[lo:hi] for lo, hi in itertools.pairwise(bounds)]
    picks = draw(st.lists(st.integers(0, 2**16), min_size=2 * len(shards), max_size=2 * len(shards)))
    return values, shards, picks


def merge_in_order(parts: list[Moments], picks: list[int]) -> Moments:
    """Merge by repeatedly combining two parts the picks name (any tree shape, either side first)."""
    parts = list(parts)
    picks_iter = iter(picks)
    while len(parts) > 1:
        i = next(picks_iter) % len(parts)
        left = parts.pop(i)
        j = next(picks_iter) % len(parts)
        right = parts.pop(j)
        parts.append(left.merge(right))
    return parts[0]


@settings(max_examples=300, deadline=None)
@given(sharded(value_lists))
def test_any_split_merged_in_any_order_matches_one_pass(case: tuple[list[float], list[list[float]], list[int]]) -> None:
    values, shards, picks = case
    merged = merge_in_order([Moments().add_all(shard) for shard in shards], picks)
    one_pass = Moments().add_all(values)
    assert (merged.count, merged.min, merged.max) == (one_pass.count, one_pass.min, one_pass.max)
    # Both are within the bounds of the exact figures, so within twice the bounds of each other.
    assert_matches_exact(merged, values)
    assert_matches_exact(one_pass, values)


# Integers small enough that every partial sum is an exact double (|sum| < 2**53): sums are then exact in any order.
small_integers = st.lists(st.integers(-(2**40), 2**40).map(float), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(sharded(small_integers))
def test_sum_is_exact_in_any_order_for_exact_values(case: tuple[list[float], list[list[float]], list[int]]) -> None:
    values, shards, picks = case
    merged = merge_in_order([Moments().add_all(shard) for shard in shards], picks)
    assert merged.sum == Moments().add_all(values).sum == math.fsum(values) == sum(map(int, values))


@given(value_lists)
def test_empty_is_the_identity_of_merge(values: list[float]) -> None:
    m = Moments().add_all(values)
    assert m.merge(Moments()) == m == Moments().merge(m)
    assert merge_all([Moments(), m, Moments()]) == m


@given(st.lists(any_accepted, min_size=1, max_size=30))
def test_equal_values_have_exactly_zero_spread(values: list[float]) -> None:
    x = values[0]
    m = Moments().add_all([x] * len(values))
    assert (m.mean, m.m2, m.min, m.max) == (x, 0.0, x, x)
