"""Quantile sketch with a relative-error guarantee: DDSketch (Masson, Rim and Lee, VLDB 2019).

Pure: no AWS, no I/O. A value x != 0 falls in bin i = ceil(log_gamma |x|), gamma = (1 + alpha) / (1 - alpha),
which holds (gamma^(i-1), gamma^i]; positive and negative values have a store each, zero has its own count.
A bin answers with 2 gamma^i / (gamma + 1), within alpha of anything in it. Sketches merge by adding counts,
so shards, minutes and replays merge in any order to the same sketch.

Quantile definition: the lower q-quantile, the value at 0-based rank floor(q * (n - 1)) of the sorted values.
The answer is within RELATIVE_ACCURACY of that value (relative to its magnitude; exactly 0 for 0).

Bound: `bounded()` keeps at most MAX_BINS bins per sign, collapsing the lowest-magnitude bins into the lowest kept
one (DDSketch's CollapsingLowestDenseStore). Ranks are unchanged, so a quantile keeps the guarantee when its true
value is in a kept bin: sufficient is |x| >= M / gamma^(max_bins - 1), M the largest magnitude of x's sign. Quantiles
below that (towards zero) are overestimated in magnitude, never reordered. MAX_BINS spans the whole range of values
a stream accepts (1e-50 to 1e50), so for those the bound never collapses anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chalicelib.pure import varint

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
# Per sign: every bin from 1e-50 to 1e50 (the bounds of a stream's values, 11,514 bins), so values within those
# bounds are never collapsed and every quantile of them keeps the guarantee. The encoded size grows with the bins
# actually used (a spread of 1 ms to 1 h is 755 bins, about 0.8 KB), at worst about 11 bytes a bin.
MAX_BINS = 11514

_VERSION = 1


def bin_index(x: float) -> int:
    """The bin of |x| (x != 0, finite): ceil(log_gamma |x|)."""
    if x == 0 or not math.isfinite(x):
        raise ValueError(f"no bin for {x!r}")
    return math.ceil(math.log(abs(x)) / _LOG_GAMMA)


def bin_key(x: float) -> str:
    """The attribute-name form of x's bin: "z" for 0, "p{i}" for x > 0, "n{i}" for x < 0."""
    if x == 0:
        return "z"
    return f"{'p' if x > 0 else 'n'}{bin_index(x)}"


def _bin_top(index: int) -> float:
    """The largest magnitude bin `index` holds: gamma^index."""
    return math.exp(index * _LOG_GAMMA)


def bin_value(index: int) -> float:
    """The representative magnitude of bin `index`, within alpha of every magnitude in it."""
    return 2 * math.exp(index * _LOG_GAMMA) / (GAMMA + 1)


@dataclass(frozen=True)
class Sketch:
    positive: Mapping[int, int] = field(default_factory=dict)
    negative: Mapping[int, int] = field(default_factory=dict)  # keyed by the bin of |x|
    zeros: int = 0

    @classmethod
    def of(cls, values: Iterable[float]) -> Sketch:
        positive: dict[int, int] = {}
        negative: dict[int, int] = {}
        zeros = 0
        for x in values:
            if x == 0:
                zeros += 1
                continue
            store = positive if x > 0 else negative
            i = bin_index(x)
            store[i] = store.get(i, 0) + 1
        return cls(positive, negative, zeros)

    @classmethod
    def from_bins(cls, bins: Mapping[str, int]) -> Sketch:
        positive: dict[int, int] = {}
        negative: dict[int, int] = {}
        zeros = 0
        for key, count in bins.items():
            if count < 0:
                raise ValueError(f"negative count in bin {key!r}")
            if key == "z":
                zeros += count
            elif key[:1] in ("p", "n") and _is_int(key[1:]):
                store = positive if key[0] == "p" else negative
                store[int(key[1:])] = store.get(int(key[1:]), 0) + count
            else:
                raise ValueError(f"not a bin key: {key!r}")
        return cls(_nonzero(positive), _nonzero(negative), zeros)

    def bins(self) -> dict[str, int]:
        out = {f"p{i}": c for i, c in self.positive.items() if c}
        out.update({f"n{i}": c for i, c in self.negative.items() if c})
        if self.zeros:
            out["z"] = self.zeros
        return out

    def merge(self, *others: Sketch) -> Sketch:
        positive = dict(self.positive)
        negative = dict(self.negative)
        zeros = self.zeros
        for other in others:
            _add_into(positive, other.positive)
            _add_into(negative, other.negative)
            zeros += other.zeros
        return Sketch(positive, negative, zeros)

    def bounded(self, max_bins: int = MAX_BINS) -> Sketch:
        if max_bins < 1:
            raise ValueError("max_bins must be at least 1")
        return Sketch(_collapse_lowest(self.positive, max_bins), _collapse_lowest(self.negative, max_bins), self.zeros)

    @property
    def count(self) -> int:
        return sum(self.positive.values()) + sum(self.negative.values()) + self.zeros

    def quantile(self, q: float) -> float | None:
        if not 0 <= q <= 1:
            raise ValueError(f"q must be in [0, 1], not {q!r}")
        n = self.count
        if n == 0:
            return None
        rank = math.floor(q * (n - 1))
        # Ascending order: negatives from the largest magnitude down, then zeros, then positives upwards.
        seen = 0
        for i in sorted(self.negative, reverse=True):
            seen += self.negative[i]
            if seen > rank:
                return -bin_value(i)
        seen += self.zeros
        if seen > rank:
            return 0.0
        for i in sorted(self.positive):
            seen += self.positive[i]
            if seen > rank:
                return bin_value(i)
        raise AssertionError("rank beyond count")  # unreachable: rank < n

    def quantile_within(self, q: float, low: float | None, high: float | None) -> float | None:
        """The q-quantile kept inside [low, high], the exact min and max of the values sketched: q = 0 and q = 1
        are low and high themselves. A bin's representative can lie beyond every value in the bin (p99 of 1..30 is
        30.27 unclamped); the true quantile lies in [low, high], so clamping only moves the answer towards it and
        keeps the relative-error guarantee. Bounds unknown (None): the unclamped answer."""
        answer = self.quantile(q)
        if answer is None or low is None or high is None:
            return answer
        if q == 0:
            return low
        if q == 1:
            return high
        return min(max(answer, low), high)

    def histogram(self, low: float | None = None, high: float | None = None) -> list[tuple[float, float, int]]:
        """The sketch's bins as (lowest, highest, count), ascending: every value counted lies in its bin's range (a
        positive bin i holds (gamma^(i-1), gamma^i], a negative one the mirror, zero [0, 0]). Ranges are narrowed to
        [low, high], the values' min and max when known, so no bin reaches past the values."""

        def within(a: float, b: float) -> tuple[float, float]:
            if low is not None and high is not None:
                return max(a, low), min(b, high)
            return a, b

        bins: list[tuple[float, float, int]] = []
        for i in sorted(self.negative, reverse=True):
            bins.append((*within(-_bin_top(i), -_bin_top(i - 1)), self.negative[i]))
        if self.zeros:
            bins.append((0.0, 0.0, self.zeros))
        for i in sorted(self.positive):
            bins.append((*within(_bin_top(i - 1), _bin_top(i)), self.positive[i]))
        return bins

    def encode(self) -> bytes:
        """Version byte, zeros, then per store (positive, negative): its runs of nearby bins, each as the gap from the
        previous run (the first: its lowest bin), its length and its counts; all varints. Sparse bins cost what
        they hold, a contiguous spread one byte a bin while its counts stay below 128."""
        out = bytearray([_VERSION])
        varint.put(out, self.zeros)
        for store in (self.positive, self.negative):
            runs = _runs(sorted(i for i, c in store.items() if c))
            varint.put(out, len(runs))
            previous_end = 0
            for low, high in runs:
                varint.put(out, varint.zigzag(low - previous_end))
                varint.put(out, high - low + 1)
                for i in range(low, high + 1):
                    varint.put(out, store.get(i, 0))
                previous_end = high
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Sketch:
        if not data or data[0] != _VERSION:
            raise ValueError("not an encoded sketch")
        zeros, pos = varint.get(data, 1)
        stores: list[dict[int, int]] = []
        for _ in range(2):
            runs, pos = varint.get(data, pos)
            store: dict[int, int] = {}
            previous_end = 0
            for _ in range(runs):
                gap, pos = varint.get(data, pos)
                length, pos = varint.get(data, pos)
                low = previous_end + varint.unzigzag(gap)
                for i in range(low, low + length):
                    count, pos = varint.get(data, pos)
                    if count:
                        store[i] = count
                previous_end = low + length - 1
            stores.append(store)
        if pos != len(data):
            raise ValueError("trailing bytes after sketch")
        return cls(stores[0], stores[1], zeros)


EMPTY = Sketch()


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit() and text.count("-") <= 1 and not text.endswith("-")


def _nonzero(store: dict[int, int]) -> dict[int, int]:
    return {i: c for i, c in store.items() if c}


def _add_into(target: dict[int, int], source: Mapping[int, int]) -> None:
    for i, c in source.items():
        target[i] = target.get(i, 0) + c


def _collapse_lowest(store: Mapping[int, int], max_bins: int) -> dict[int, int]:
    keys = [i for i, c in store.items() if c]
    if not keys:
        return {}
    floor = max(keys) - max_bins + 1
    kept = {i: c for i, c in store.items() if c and i >= floor}
    collapsed = sum(c for i, c in store.items() if i < floor)
    if collapsed:
        kept[floor] = kept.get(floor, 0) + collapsed
    return kept


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    """Sorted bin indexes as (low, high) runs; a gap of up to two empty bins stays inside a run (cheaper)."""
    runs: list[tuple[int, int]] = []
    for i in indexes:
        if runs and i - runs[-1][1] <= 3:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs
