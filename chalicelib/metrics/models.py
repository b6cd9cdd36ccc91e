"""What the last-hour sum routes take and answer (the contract: chalicelib/edge/contract.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from chalicelib.edge.contract import PARAM_INT, QuantileLevels, Reply, Strict, Timestamp
from chalicelib.metrics import rollup, window
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


# An ISO 8601 time with a zone, as a series takes it (the pattern is what the document promises; a time that matches
# it but is no date, 2026-02-30, is refused as unreadable: `invalid_range`).
SERIES_TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
SeriesTime = Annotated[
    str, Field(pattern=SERIES_TIME_PATTERN, description="ISO 8601 with a zone, e.g. 2026-11-24T10:00:00Z")
]


def _known_step(step: int) -> int:
    if step not in rollup.STEPS:
        raise ValueError(f"must be one of {', '.join(str(s) for s in sorted(rollup.STEPS))}")
    return step


class SeriesQuery(Strict):
    from_: SeriesTime = Field(alias="from", description="the first point is the step-aligned bucket holding it")
    to: SeriesTime = Field(description="the end of the range, exclusive")
    step: Annotated[
        int,
        Field(
            description="seconds per point: 60 or 300 (from minutes), 3600 (hours) or 86400 (days)",
            json_schema_extra={"enum": sorted(rollup.STEPS)},
        ),
        PARAM_INT,
        AfterValidator(_known_step),
    ]
    q: QuantileLevels | None = None


class SeriesPoint(Reply):
    at: Timestamp = Field(description="the bucket's start, UTC")
    count: int
    sum: int | None = Field(description="null when the bucket holds no values")
    min: int | None
    max: int | None
    mean: float | None
    quantiles: dict[str, float | None] | None = Field(
        default=None, description="only with `q`: each level as sent -> its value (within 1%), null when empty"
    )


class Series(Reply):
    key: str
    step: int
    points: list[SeriesPoint] = Field(description="one per step-aligned bucket in [from, to), oldest first")
