"""The pure moving-average type against a brute-force reference (hypothesis)."""

from __future__ import annotations

import statistics
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.averages.moving_average import MAX_SIZE, MovingAverageInterface, SimpleMovingAverage

any_finite = st.floats(allow_nan=False, allow_infinity=False)
service_values = st.floats(min_value=-1e50, max_value=1e50, allow_nan=False, allow_infinity=False)
sizes = st.integers(min_value=1, max_value=12)
operations = st.lists(
    st.one_of(st.tuples(st.just("add"), any_finite), st.tuples(st.just("resize"), sizes)), max_size=120
)


def exact_mean(values: list[float]) -> float:
    """The mean of the values, computed exactly and rounded once."""
    return float(sum(map(Fraction, values)) / len(values))


def check(window: MovingAverageInterface, reference: list[float], size: int) -> None:
    assert window.size == size
    assert window.get_elements() == reference
    assert len(window) == len(reference)
    if reference:
        assert window.get_moving_average() == exact_mean(reference)
        assert window.get_moving_average() == statistics.mean(reference)
    else:
        assert window.get_moving_average() is None


@settings(max_examples=300)
@given(sizes, operations)
def test_matches_brute_force_reference(size: int, ops: list[tuple[str, float]]) -> None:
    window = SimpleMovingAverage(size)
    reference: list[float] = []
    for op, arg in ops:
        if op == "add":
            window.add_element(arg)
            reference = [*reference, arg][-size:]
        else:
            size = int(arg)
            window.resize(size)
            reference = reference[-size:]
        check(window, reference, size)


@given(st.integers(min_value=1, max_value=50), st.lists(service_values, max_size=200))
def test_built_from_elements_equals_added_one_by_one(size: int, values: list[float]) -> None:
    built = SimpleMovingAverage(size, values)
    check(built, values[-size:], size)


def test_is_an_implementation_of_the_interface() -> None:
    assert isinstance(SimpleMovingAverage(3), MovingAverageInterface)
    with pytest.raises(TypeError):
        MovingAverageInterface()  # type: ignore[abstract]


def test_empty_window_has_no_average() -> None:
    window = SimpleMovingAverage(5)
    assert (window.get_moving_average(), window.get_elements(), len(window)) == (None, [], 0)


def test_fewer_than_n_averages_what_is_held() -> None:
    window = SimpleMovingAverage(4)
    for x in (1, 2, 6):
        window.add_element(x)
    assert window.get_moving_average() == 3.0
    for x in (3, 10):
        window.add_element(x)
    assert window.get_elements() == [2, 6, 3, 10] and window.get_moving_average() == 5.25


def test_no_drift_after_a_huge_value_leaves() -> None:
    # A float running sum loses the 1s next to 1e16 and reports 0 (or 2/3) once 1e16 is evicted.
    window = SimpleMovingAverage(3)
    for x in (1e16, 1.0, 1.0, 1.0):
        window.add_element(x)
    assert window.get_moving_average() == 1.0
    for _ in range(100_000 // 3):
        for x in (0.1, 0.2, 0.3):
            window.add_element(x)
    assert window.get_moving_average() == exact_mean([0.1, 0.2, 0.3])


def test_resize_shrink_keeps_newest_grow_keeps_all() -> None:
    window = SimpleMovingAverage(5, [1, 2, 3, 4, 5])
    window.resize(2)
    assert window.get_elements() == [4, 5] and window.get_moving_average() == 4.5
    window.resize(4)
    assert window.get_elements() == [4, 5]
    window.add_element(6)
    window.add_element(7)
    window.add_element(8)
    assert window.get_elements() == [5, 6, 7, 8]


@pytest.mark.parametrize("size", [0, -1, MAX_SIZE + 1, 2.0, True, "3", None])
def test_rejects_bad_sizes(size: object) -> None:
    with pytest.raises(ValueError):
        SimpleMovingAverage(size)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SimpleMovingAverage(3).resize(size)  # type: ignore[arg-type]


@pytest.mark.parametrize("x", [float("nan"), float("inf"), float("-inf")])
def test_rejects_non_finite_elements(x: float) -> None:
    window = SimpleMovingAverage(3, [1.0])
    with pytest.raises(ValueError):
        window.add_element(x)
    assert window.get_elements() == [1.0]


def test_full_size_window_with_extreme_values_stays_exact() -> None:
    values = [(-1) ** i * 1.2345678901234567e50 + i for i in range(MAX_SIZE + 7)]
    window = SimpleMovingAverage(MAX_SIZE, values)
    assert window.get_moving_average() == exact_mean(values[-MAX_SIZE:])
