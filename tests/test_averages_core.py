"""The pure moving-average type against a brute-force reference (hypothesis)."""

from __future__ import annotations

import math
import statistics
from collections import deque
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chalicelib.averages.moving_average import MAX_SIZE, MovingAverageInterface, SimpleMovingAverage

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

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


# --- against collections.deque(maxlen=N), as a state machine ----------------------------------------------

# Any finite double, with the service's range (0, magnitudes 1e-50..1e50) often mixed in one window: the
# exact running sum must keep a 1e-50 next to a 1e50, and forget the 1e50 exactly when it leaves.
service_magnitude = st.floats(min_value=1e-50, max_value=1e50)
window_values = st.one_of(
    st.just(0.0),
    service_magnitude,
    service_magnitude.map(lambda x: -x),
    st.sampled_from([1e50, -1e50, 1e-50, -1e-50, 5e-324, 1.7976931348623157e308]),
    any_finite,
)
window_sizes = st.one_of(st.integers(1, 8), st.integers(1, MAX_SIZE))


class AgainstDeque(RuleBasedStateMachine):
    """Any sequence of creations, appends and resizes leaves the same elements as a deque(maxlen=N),
    and the average is their exact mean rounded once."""

    @initialize(size=window_sizes, elements=st.lists(window_values, max_size=20))
    def create(self, size: int, elements: list[float]) -> None:
        self.window = SimpleMovingAverage(size, elements)
        self.model: deque[float] = deque(elements, maxlen=size)

    @rule(x=window_values)
    def add(self, x: float) -> None:
        self.window.add_element(x)
        self.model.append(x)

    @rule(xs=st.lists(window_values, min_size=1, max_size=30))
    def add_many(self, xs: list[float]) -> None:
        for x in xs:
            self.window.add_element(x)
        self.model.extend(xs)

    @rule(size=window_sizes)
    def resize(self, size: int) -> None:
        self.window.resize(size)
        self.model = deque(self.model, maxlen=size)  # keeps the newest `size`

    @invariant()
    def same_elements_and_exact_mean(self) -> None:
        elements = list(self.model)
        assert self.window.size == self.model.maxlen
        assert self.window.get_elements() == elements and len(self.window) == len(elements)
        if not elements:
            assert self.window.get_moving_average() is None
            return
        average = self.window.get_moving_average()
        assert average is not None
        assert average == exact_mean(elements)
        # Rounded once: no double is closer to the exact mean (and so it lies within [min, max]).
        exact = sum(map(Fraction, elements), Fraction(0)) / len(elements)
        if math.isfinite(average):
            for neighbour in (math.nextafter(average, -math.inf), math.nextafter(average, math.inf)):
                if math.isfinite(neighbour):
                    assert abs(Fraction(average) - exact) <= abs(Fraction(neighbour) - exact)
            assert min(elements) <= average <= max(elements)


AgainstDeque.TestCase.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)
test_against_deque = AgainstDeque.TestCase
