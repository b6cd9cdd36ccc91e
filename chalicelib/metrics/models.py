"""What the last-hour sum routes take and answer (the contract: chalicelib/contract.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from chalicelib.contract import PARAM_INT, Reply, Strict, Timestamp
from chalicelib.metrics import window

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


class Sum(Reply):
    value: int


class Minute(Reply):
    minute: Timestamp
    value: int


class Minutes(Reply):
    minutes: list[Minute] = Field(description="oldest first; the last is the current minute so far")
