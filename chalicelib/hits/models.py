"""What the hit-counter routes take and answer (the contract: chalicelib/edge/contract.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from chalicelib.edge.contract import PARAM_INT, Reply, Strict, one_line
from chalicelib.hits import days, paths
from chalicelib.pure import textcheck

MAX_TEST_HITS = 10_000
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class CountedPath(Strict):
    path: Annotated[
        str,
        Field(
            description="the rest of the path (greedy in API Gateway: slashes included); counted normalised, at most "
            f"{paths.MAX_PATH_BYTES} bytes; no control characters (as a hit event's `path`)",
            json_schema_extra={"pattern": textcheck.ONE_LINE_PATTERN},
        ),
        AfterValidator(one_line),
    ]


class PageView(Strict):
    p: Annotated[
        str,
        Field(
            description="the viewed page as a path below /api/, e.g. /blog/about (the snippet sends "
            "/<site><location.pathname>); counted normalised as `GET /api/{path}` counts, at most "
            f"{paths.MAX_PATH_BYTES} bytes; no control characters",
            json_schema_extra={"pattern": textcheck.ONE_LINE_PATTERN},
        ),
        AfterValidator(one_line),
    ]


class Hit(Reply):
    path: str = Field(description="the normalised path, e.g. /api/one/")
    count: int


def _calendar_day(day: str) -> str:
    try:
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        raise ValueError("must be a date YYYY-MM-DD") from None
    return day


# A calendar date, YYYY-MM-DD (JSON Schema's `format: date`, RFC 3339's full-date).
Day = Annotated[
    str,
    Field(min_length=10, max_length=10, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", json_schema_extra={"format": "date"}),
    AfterValidator(_calendar_day),
]


class StatsQuery(Strict):
    limit: Annotated[int, Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT), PARAM_INT]
    cursor: Annotated[str | None, Field(default=None, description="opaque: the `cursor` of the previous page")]
    day: Annotated[Day | None, Field(default=None, description="one UTC day; all time without it")]


MAX_SERIES_DAYS = days.DAY_RETENTION_SECONDS // days.DAY_SECONDS + 1  # today and every day still kept


class DaySeriesQuery(Strict):
    path: Annotated[
        str,
        Field(
            min_length=4,
            max_length=paths.MAX_PATH_BYTES,
            pattern=r"^/api(/[^\u0000-\u001f\u007f-\u009f]*)?$",
            description="a counted path, as `/stats` lists it (`/api/one/`); normalised as `GET /api/...` counts it, "
            "so `/api/one` and `/api//one/?x` name it too",
        ),
    ]
    from_: Annotated[
        Day,
        Field(
            alias="from",
            description=f"the first UTC day; no earlier than {days.DAY_RETENTION_SECONDS // days.DAY_SECONDS} days "
            "ago, when day counts expire",
        ),
    ]
    to: Annotated[Day, Field(description=f"the last UTC day, included; at most {MAX_SERIES_DAYS} days in all")]


class DayCount(Reply):
    day: str
    count: int


class DaySeries(Reply):
    path: str = Field(description="the normalised path")
    days: list[DayCount] = Field(description="every day from `from` to `to`, oldest first, zero days included")


class PathCount(Reply):
    path: str
    count: int


class Ranking(Reply):
    day: str | None = Field(description="null for the all-time ranking")
    total_hits: int
    distinct_paths: int
    paths: list[PathCount] = Field(description="count descending, then path ascending")
    cursor: str | None


class LoadTestPath(Strict):
    n: Annotated[int, Field(ge=1, le=MAX_TEST_HITS, description="how many hits to generate"), PARAM_INT]


PoolString = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]


def _distinct(pool: list[str]) -> list[str]:
    if len(set(pool)) != len(pool):
        raise ValueError("must not repeat a string")
    return pool


class LoadTestBody(Strict):
    pool: (
        Annotated[
            list[PoolString],
            Field(min_length=paths.POOL_SIZE, max_length=paths.POOL_SIZE, json_schema_extra={"uniqueItems": True}),
            AfterValidator(_distinct),
        ]
        | None
    ) = Field(default=None, description="distinct strings, to continue a run (the answer's `pool`)")


class LoadTest(Reply):
    requested: int
    counted: int = Field(description="how many were counted before the request's budget ran out")
    distinct_paths: int
    pool: list[str]
    seconds: float
