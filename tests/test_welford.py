"""The pure Welford core against Python's statistics module."""

from __future__ import annotations

import math
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.stats.welford import Moments, merge_all

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
