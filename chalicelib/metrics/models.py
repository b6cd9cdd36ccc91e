"""What the last-hour sum routes take and answer (the contract: chalicelib/contract.py)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from chalicelib import sketch
from chalicelib.contract import PARAM_INT, Reply, Strict, Timestamp
from chalicelib.metrics import window

MAX_QUANTILES = 20
DEFAULT_QUANTILES = "0.5,0.9,0.95,0.99"
_FRACTION = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def quantile_list(text: str) -> tuple[float, ...]:
    """The quantiles of a `q` parameter: 1 to MAX_QUANTILES comma-separated decimals, each in [0, 1]."""
    parts = text.split(",")
    if not 1 <= len(parts) <= MAX_QUANTILES:
        raise ValueError(f"1 to {MAX_QUANTILES} comma-separated quantiles")
    for part in parts:
        if not _FRACTION.fullmatch(part) or not 0 <= float(part) <= 1:
            raise ValueError(f"each quantile is a decimal number from 0 to 1, not {part[:20]!r}")
    return tuple(float(part) for part in parts)


def _quantiles(text: str) -> str:
    quantile_list(text)
    return text


# A value for a sum (POST /metric/{key}, a metric event).
MetricValue = Annotated[
    int | float,
    Field(
        ge=-window.MAX_MAGNITUDE,
        le=window.MAX_MAGNITUDE,
        description="rounded half away from zero to an integer; |value| <= 1e15 keeps every sum exact",
    ),
]


class ValueBody(Strict):
    value: MetricValue


class WindowQuery(Strict):
    window: Annotated[
        int,
        Field(default=window.DEFAULT_WINDOW_S, ge=1, le=window.MAX_WINDOW_S, description="seconds back from now"),
        PARAM_INT,
    ]


class QuantilesQuery(WindowQuery):
    q: Annotated[
        str,
        Field(
            default=DEFAULT_QUANTILES,
            max_length=400,
            description=f"1 to {MAX_QUANTILES} comma-separated quantiles, each a decimal from 0 to 1 (0.5 is the median)",
        ),
        AfterValidator(_quantiles),
    ]

    @property
    def quantiles(self) -> tuple[float, ...]:
        return quantile_list(self.q)


class Quantiles(Reply):
    quantiles: dict[str, float | None] = Field(
        description='each quantile asked for (as a number, e.g. "0.5") -> its value, null when the window holds none'
    )
    relative_accuracy: float = Field(
        description=f"every value is within this relative error of a true quantile ({sketch.RELATIVE_ACCURACY})"
    )
    count: int = Field(description="how many values the window covers")


class Sum(Reply):
    value: int


class Minute(Reply):
    minute: Timestamp
    value: int


class Minutes(Reply):
    minutes: list[Minute] = Field(description="oldest first; the last is the current minute so far")
