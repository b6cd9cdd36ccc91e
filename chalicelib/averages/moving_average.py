"""Moving average of the last N elements: an interface and a deque-backed implementation.

Pure: no AWS, no I/O. The Lambda code rebuilds a `SimpleMovingAverage` from the
stored elements on every request and uses it to append, resize and average, so
the HTTP answers and these tests share one definition.

Exactness instead of drift control: every finite double is an integer multiple
of 2**-1074, so the running sum is kept as an *integer* count of those units
(`x.as_integer_ratio()` scaled to the common denominator). Adding and evicting
are exact integer additions, so there is no float drift and no periodic
recomputation; the average is `sum_units / (count << 1074)`, and Python's
int/int true division rounds correctly, so `average()` is the exact mean of
`elements()` rounded once (it equals `statistics.mean(elements)`). The integers
stay small (about 1,140 bits for 10,000 values of magnitude 1e50).
"""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Iterable

_SCALE_BITS = 1074  # 2**-1074 is the smallest positive (subnormal) double
MAX_SIZE = 10_000


def _units(x: float) -> int:
    """x as an exact integer multiple of 2**-1074."""
    numerator, denominator = float(x).as_integer_ratio()  # the denominator is a power of two
    return numerator << (_SCALE_BITS - (denominator.bit_length() - 1))


class MovingAverageInterface(abc.ABC):
    """The challenge's operations: add an element, get the moving average, get the elements."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """N: how many of the newest elements the average covers."""

    @abc.abstractmethod
    def add_element(self, x: float) -> None:
        """Append x; once N elements are held, the oldest is dropped."""

    @abc.abstractmethod
    def get_moving_average(self) -> float | None:
        """The mean of the elements held (fewer than N at the start); None when there are none."""

    @abc.abstractmethod
    def get_elements(self) -> list[float]:
        """The elements held, oldest first."""

    @abc.abstractmethod
    def resize(self, size: int) -> None:
        """Change N: shrinking keeps the newest elements, growing keeps all of them."""

    def __len__(self) -> int:
        return len(self.get_elements())


class SimpleMovingAverage(MovingAverageInterface):
    """A bounded deque (O(1) append and eviction) with an exact integer running sum."""

    def __init__(self, size: int, elements: Iterable[float] = ()) -> None:
        self._check_size(size)
        self._window: deque[float] = deque(maxlen=size)
        self._units = 0
        for x in elements:  # only the newest `size` survive, exactly as if added one by one
            self.add_element(x)

    @staticmethod
    def _check_size(size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
            raise ValueError(f"size must be an integer from 1 to {MAX_SIZE}")

    @property
    def size(self) -> int:
        assert self._window.maxlen is not None
        return self._window.maxlen

    def add_element(self, x: float) -> None:
        x = float(x)
        if x != x or x in (float("inf"), float("-inf")):
            raise ValueError("elements must be finite numbers")
        if len(self._window) == self.size:
            self._units -= _units(self._window[0])  # the deque drops it on append
        self._window.append(x)
        self._units += _units(x)

    def get_moving_average(self) -> float | None:
        if not self._window:
            return None
        return self._units / (len(self._window) << _SCALE_BITS)

    def get_elements(self) -> list[float]:
        return list(self._window)

    def resize(self, size: int) -> None:
        self._check_size(size)
        kept = list(self._window)[-size:]
        self._window = deque(kept, maxlen=size)
        self._units = sum(map(_units, kept))

    def __len__(self) -> int:
        return len(self._window)
