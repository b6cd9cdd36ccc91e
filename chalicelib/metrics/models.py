"""What the last-hour sum routes take and answer (the contract: chalicelib/edge/contract.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from chalicelib.edge.contract import PARAM_INT, QuantileLevels, Reply, Strict, Timestamp
from chalicelib.metrics import window
from chalicelib.pure import sketch

DEFAULT_QUANTILES = "0.5,0.9,0.95,0.99"


# A value for a sum (POST /metric/{key}, a metric event).
# A number, not `int | float`: a union names its members in errors (`value.int`). Integers up to 1e15 are exact as
# floats (below 2**53), so nothing is lost before rounding.
MetricValue = Annotated[
    float,
    Field(
        ge=-window.MAX_MAGNITUDE,
        le=window.MAX_MAGNITUDE,
        description="rounded half away from zero to an integer; |value| <= 1e15 keeps every sum exact",
    ),
]


class MetricValueBody(Strict):
    value: MetricValue


class WindowQuery(Strict):
    window: Annotated[
        int,
        Field(default=window.DEFAULT_WINDOW_S, ge=1, le=window.MAX_WINDOW_S, description="seconds back from now"),
        PARAM_INT,
    ]


class QuantilesQuery(WindowQuery):
    q: QuantileLevels = DEFAULT_QUANTILES


class WindowQuantiles(Reply):
    quantiles: dict[str, float | None] = Field(
        description="each requested `q` as sent -> its value, null when the window holds none"
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
