"""What the running-statistics routes take and answer (the contract: chalicelib/edge/contract.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from chalicelib.edge.contract import PARAM_INT, QuantileLevels, Reply, StatisticValue, Strict, Timestamp, one_line
from chalicelib.pure import sketch, textcheck

MAX_BATCH = 100
USER_MAX = 64


User = Annotated[
    str,
    Field(
        min_length=1,
        max_length=USER_MAX,
        description="who sent it; no control characters",
        json_schema_extra={"pattern": textcheck.ONE_LINE_PATTERN},
    ),
    AfterValidator(one_line),
]
# A stream's name (`{stream}` of /streams, `stream` of a value event).
StreamName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="1 to 128 characters")]
Limit = Annotated[int, Field(default=20, ge=1, le=100), PARAM_INT]
Cursor = Annotated[str | None, Field(default=None, description="opaque: the `cursor` of the previous page")]


class StreamPath(Strict):
    stream: StreamName


def _not_null(value: Any) -> Any:
    # Absent is not the same as null here: "exactly one of value or values" counts the keys sent, so a null is
    # refused rather than read as absent (the document's oneOf counts keys too).
    if value is None:
        raise ValueError("must not be null: leave it out")
    return value


def _never_null(schema: dict[str, Any]) -> None:
    """The field's schema without null (and without its null default): absent, never null (`_not_null`)."""
    schema.pop("default", None)
    present = [choice for choice in schema.pop("anyOf", ()) if choice != {"type": "null"}]
    if present:
        (only,) = present
        schema.update(only)


class ValuesBody(Strict):
    """Exactly one of `value` or `values`."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["value"]}, {"required": ["values"]}]})

    # `X | None` (not a union of two schemas) keeps errors located as `values[1]`; null itself is refused before.
    value: Annotated[StatisticValue | None, BeforeValidator(_not_null), Field(json_schema_extra=_never_null)] = None
    values: Annotated[
        Annotated[list[StatisticValue], Field(min_length=1, max_length=MAX_BATCH)] | None,
        BeforeValidator(_not_null),
        Field(json_schema_extra=_never_null),
    ] = None
    user: User | None = None


class ResetBody(Strict):
    user: User | None = None


class PageQuery(Strict):
    limit: Limit
    cursor: Cursor


class SnapshotQuantiles(Reply):
    p50: float
    p90: float
    p95: float
    p99: float


class QuantilesQuery(Strict):
    q: QuantileLevels


class SessionQuantiles(Reply):
    quantiles: dict[str, float | None] = Field(
        description="each requested `q` as sent, to the lower q-quantile (rank floor(q (n - 1)) of the sorted values) "
        "within `relative_accuracy`; null when the session holds no values"
    )
    relative_accuracy: float = Field(description=f"{sketch.RELATIVE_ACCURACY}: the bound on |answer - true| / |true|")
    count: int = Field(description="the values the quantiles are of: the active session's")


class HistogramBin(Reply):
    low: float = Field(description="the least value the bin can hold (never below the session's min)")
    high: float = Field(description="the greatest value the bin can hold (never above the session's max)")
    count: int = Field(description="how many of the session's values are in the bin: exact")


class Histogram(Reply):
    bins: list[HistogramBin] = Field(
        description="the non-empty bins of the active session's quantile sketch, ascending: a value x > 0 is in the "
        "bin (gamma^(i-1), gamma^i], i = ceil(log_gamma x), gamma = (1 + a) / (1 - a), a = `relative_accuracy`; "
        "negative values in the mirror bins; 0 in [0, 0]. Empty when the session holds no values (or began before "
        "sketches were kept)"
    )
    relative_accuracy: float = Field(description="a: each bin spans values within a of one another, relatively")
    count: int = Field(description="the values of the active session")


class Snapshot(Reply):
    stream: str
    session: int | None = Field(description="the session number; null before the stream's first value")
    count: int
    mean: float | None
    variance: float | None = Field(description="population variance")
    stddev: float | None
    sample_variance: float | None = Field(description="null below two values")
    sample_stddev: float | None
    min: float | None
    max: float | None
    sum: float | None
    started_at: Timestamp | None
    started_by: str | None
    updated_at: Timestamp | None
    closed_at: Timestamp | None = Field(default=None, description="a closed session only")
    closed_by: str | None = Field(default=None, description="a closed session only")
    quantiles: SnapshotQuantiles | None = Field(
        description="within 1% relative error of the true lower quantiles; null when the session holds no values"
    )


class Sessions(Reply):
    sessions: list[Snapshot] = Field(description="closed sessions, newest first")
    cursor: str | None = Field(description="the next page's cursor; null on the last page")


class AuditEntry(Reply):
    value: float
    user: str | None
    at: Timestamp
    session: int


class AuditPage(Reply):
    values: list[AuditEntry] = Field(description="newest first")
    cursor: str | None
