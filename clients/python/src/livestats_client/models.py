"""What the calls return (frozen dataclasses, read from the service's JSON as openapi.json declares it), and the
events `POST /events` takes (TypedDicts, so that a dict literal is checked)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypedDict


def parse_time(text: str) -> datetime:
    """An ISO 8601 time of the service (`2026-01-02T03:04:05.678Z`), zone-aware."""
    # fromisoformat reads a "Z" only from Python 3.11 on.
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else parse_time(str(value))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _quantiles(raw: Mapping[str, Any]) -> dict[float, float | None]:
    # The service keys each level "as sent"; the client sends floats' shortest forms, so float() gives them back.
    return {float(q): _optional_float(v) for q, v in raw.items()}


@dataclass(frozen=True)
class SnapshotQuantiles:
    p50: float
    p90: float
    p95: float
    p99: float


@dataclass(frozen=True)
class Snapshot:
    """A stream's session: its running statistics (None before its first value)."""

    stream: str
    session: int | None
    count: int
    mean: float | None
    variance: float | None
    stddev: float | None
    sample_variance: float | None
    sample_stddev: float | None
    min: float | None
    max: float | None
    sum: float | None
    started_at: datetime | None
    started_by: str | None
    updated_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    quantiles: SnapshotQuantiles | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Snapshot:
        q = raw.get("quantiles")
        return cls(
            stream=str(raw["stream"]),
            session=_optional_int(raw["session"]),
            count=int(raw["count"]),
            mean=_optional_float(raw["mean"]),
            variance=_optional_float(raw["variance"]),
            stddev=_optional_float(raw["stddev"]),
            sample_variance=_optional_float(raw["sample_variance"]),
            sample_stddev=_optional_float(raw["sample_stddev"]),
            min=_optional_float(raw["min"]),
            max=_optional_float(raw["max"]),
            sum=_optional_float(raw["sum"]),
            started_at=_optional_time(raw["started_at"]),
            started_by=raw["started_by"],
            updated_at=_optional_time(raw["updated_at"]),
            closed_at=_optional_time(raw.get("closed_at")),
            closed_by=raw.get("closed_by"),
            quantiles=None
            if q is None
            else SnapshotQuantiles(**{k: float(q[k]) for k in ("p50", "p90", "p95", "p99")}),
        )


@dataclass(frozen=True)
class Quantiles:
    """Quantiles by level (the float asked for), None when there are no values; within `relative_accuracy`."""

    quantiles: Mapping[float, float | None]
    relative_accuracy: float
    count: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Quantiles:
        return cls(_quantiles(raw["quantiles"]), float(raw["relative_accuracy"]), int(raw["count"]))


@dataclass(frozen=True)
class Sessions:
    """A page of a stream's closed sessions, newest first; `cursor` is None on the last page."""

    sessions: tuple[Snapshot, ...]
    cursor: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Sessions:
        return cls(tuple(Snapshot.from_json(s) for s in raw["sessions"]), raw["cursor"])


@dataclass(frozen=True)
class Name:
    """A stream, metric key or moving-average window that exists, and the start of the UTC minute of its latest
    registered write (None when the service has none)."""

    name: str
    updated_at: datetime | None


@dataclass(frozen=True)
class Names:
    """A page of names in byte order; `cursor` is None on the last page."""

    names: tuple[Name, ...]
    cursor: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], items: str, field: str) -> Names:
        return cls(
            tuple(Name(str(entry[field]), _optional_time(entry.get("updated_at"))) for entry in raw[items]),
            raw["cursor"],
        )


@dataclass(frozen=True)
class SeriesPoint:
    """One step-aligned bucket of a metric's series; sum, min, max and mean are None when it holds no values."""

    at: datetime
    count: int
    sum: int | None
    min: int | None
    max: int | None
    mean: float | None
    quantiles: Mapping[float, float | None] | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SeriesPoint:
        q = raw.get("quantiles")
        return cls(
            at=parse_time(str(raw["at"])),
            count=int(raw["count"]),
            sum=_optional_int(raw["sum"]),
            min=_optional_int(raw["min"]),
            max=_optional_int(raw["max"]),
            mean=_optional_float(raw["mean"]),
            quantiles=None if q is None else _quantiles(q),
        )


@dataclass(frozen=True)
class Series:
    key: str
    step: int
    points: tuple[SeriesPoint, ...]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Series:
        return cls(str(raw["key"]), int(raw["step"]), tuple(SeriesPoint.from_json(p) for p in raw["points"]))


@dataclass(frozen=True)
class Window:
    """A moving-average window: its size, its values oldest first, and their average (None when empty)."""

    size: int
    count: int
    average: float | None
    elements: tuple[float, ...]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Window:
        return cls(
            int(raw["size"]),
            int(raw["count"]),
            _optional_float(raw["average"]),
            tuple(float(e) for e in raw["elements"]),
        )


@dataclass(frozen=True)
class Appended:
    """The window's average after an append."""

    average: float
    count: int
    size: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Appended:
        return cls(float(raw["average"]), int(raw["count"]), int(raw["size"]))


@dataclass(frozen=True)
class Hit:
    """A path's count after a hit; `path` is the path as counted (normalised, e.g. /api/one/)."""

    path: str
    count: int


@dataclass(frozen=True)
class PathCount:
    path: str
    count: int


@dataclass(frozen=True)
class Ranking:
    """A page of the paths ranked by hits (count descending, then path); `day` is None for all time."""

    day: date | None
    total_hits: int
    distinct_paths: int
    paths: tuple[PathCount, ...]
    cursor: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Ranking:
        return cls(
            day=None if raw["day"] is None else date.fromisoformat(raw["day"]),
            total_hits=int(raw["total_hits"]),
            distinct_paths=int(raw["distinct_paths"]),
            paths=tuple(PathCount(str(p["path"]), int(p["count"])) for p in raw["paths"]),
            cursor=raw["cursor"],
        )


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


@dataclass(frozen=True)
class DaySeries:
    """A path's hits on every UTC day of a range, oldest first, zero days included."""

    path: str
    days: tuple[DayCount, ...]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DaySeries:
        days = tuple(DayCount(date.fromisoformat(d["day"]), int(d["count"])) for d in raw["days"])
        return cls(str(raw["path"]), days)


@dataclass(frozen=True)
class Rejection:
    """An event `POST /events` refused: its index in the request, and the error."""

    index: int
    code: str
    message: str
    field: str | None


@dataclass(frozen=True)
class Accepted:
    """`POST /events`'s 202: how many events were put, the refused ones, and the Retry-After that came with it."""

    accepted: int
    rejected: tuple[Rejection, ...]
    retry_after: float | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], retry_after: float | None) -> Accepted:
        rejected = tuple(
            Rejection(int(r["index"]), str(r["error"]["code"]), str(r["error"]["message"]), r["error"].get("field"))
            for r in raw["rejected"]
        )
        return cls(int(raw["accepted"]), rejected, retry_after)


class _ValueEventBase(TypedDict):
    type: Literal["value"]
    stream: str
    value: float


class ValueEvent(_ValueEventBase, total=False):
    """A value for a stream's running statistics (`POST /streams/{stream}/values`)."""

    user: str


class HitEvent(TypedDict):
    """A hit on `path` (`/api` or `/api/...`), counted as `GET /api/...` counts it."""

    type: Literal["hit"]
    path: str


class _MetricEventBase(TypedDict):
    type: Literal["metric"]
    key: str
    value: float


class MetricEvent(_MetricEventBase, total=False):
    """A metric value (`POST /metric/{key}`); `time` is ISO 8601 with a zone, at most 24 h old (default: arrival)."""

    time: str


class AverageEvent(TypedDict):
    """A value for a moving-average window that exists (`POST /averages/{key}`)."""

    type: Literal["average"]
    key: str
    value: float


Event = ValueEvent | HitEvent | MetricEvent | AverageEvent
