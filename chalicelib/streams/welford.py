"""Running mean and variance: Welford's update and Chan et al.'s merge.

Pure: no AWS, no I/O. A stream's state is kept as several partial `Moments`
(one per shard) and merged on read; merging is exact in the same sense the
single-pass update is, so shard count does not change the figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Moments:
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    min: float | None = None
    max: float | None = None
    sum: float = 0.0

    def add(self, x: float) -> Moments:
        count = self.count + 1
        delta = x - self.mean
        mean = self.mean + delta / count
        # delta and (x - mean) share a sign, so m2 never decreases.
        m2 = self.m2 + delta * (x - mean)
        return Moments(
            count=count,
            mean=mean,
            m2=m2,
            min=x if self.min is None else min(self.min, x),
            max=x if self.max is None else max(self.max, x),
            sum=self.sum + x,
        )

    def add_all(self, xs: Iterable[float]) -> Moments:
        moments = self
        for x in xs:
            moments = moments.add(x)
        return moments

    def merge(self, other: Moments) -> Moments:
        """Chan, Golub and LeVeque's pairwise combination of two partial states."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / count)
        return Moments(
            count=count,
            mean=mean,
            m2=m2,
            min=min(self.min, other.min),  # type: ignore[type-var]
            max=max(self.max, other.max),  # type: ignore[type-var]
            sum=self.sum + other.sum,
        )

    @property
    def variance(self) -> float | None:
        """Population variance."""
        return self.m2 / self.count if self.count else None

    @property
    def sample_variance(self) -> float | None:
        return self.m2 / (self.count - 1) if self.count >= 2 else None

    @property
    def stddev(self) -> float | None:
        variance = self.variance
        return None if variance is None else math.sqrt(variance)

    @property
    def sample_stddev(self) -> float | None:
        variance = self.sample_variance
        return None if variance is None else math.sqrt(variance)


def merge_all(parts: Iterable[Moments]) -> Moments:
    total = Moments()
    for part in parts:
        total = total.merge(part)
    return total
