"""What the moving-average routes take and answer (the contract: chalicelib/edge/contract.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from chalicelib.averages.moving_average import MAX_SIZE
from chalicelib.edge.contract import BODY_INT, Reply, StatisticValue, Strict


class SizeBody(Strict):
    size: Annotated[
        int, Field(ge=1, le=MAX_SIZE, description="how many of the newest values the window keeps"), BODY_INT
    ]


class AverageValueBody(Strict):
    value: StatisticValue


class WindowState(Reply):
    size: int
    count: int
    average: float | None = Field(description="the mean of `elements`; null when empty")
    elements: list[float] = Field(description="oldest first")


class Appended(Reply):
    average: float
    count: int
    size: int
