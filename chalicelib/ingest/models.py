"""What POST /events takes and answers (the contract: chalicelib/edge/contract.py), and how one event is checked and
normalised into what travels on the stream (chalicelib/ingest/records.py). Pure: no AWS.

Each event is checked with its direct endpoint's own types (streams, metrics, averages models, contract.KeyName,
hits.paths), one event at a time: the envelope (`events`, 1 to MAX_EVENTS) is the declared body, and an invalid
event is rejected by its index while the others go on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, RootModel, ValidationError, WithJsonSchema
from pydantic_core import InitErrorDetails
from pydantic_core import ValidationError as CoreValidationError

from chalicelib.edge import contract
from chalicelib.edge.contract import ErrorDetail, KeyName, Reply, StatisticValue, Strict
from chalicelib.edge.errors import InvalidInput, ServiceError
from chalicelib.hits import paths
from chalicelib.ingest import records
from chalicelib.metrics import window
from chalicelib.metrics.models import MetricValue
from chalicelib.pure import textcheck
from chalicelib.streams.models import StreamName, User

MAX_EVENTS = 500
# A metric event's `time` may be this far ahead of the service's clock (clients' clocks drift; NTP keeps them within
# a second or so). Further ahead is a wrong clock, not a skew: refused.
MAX_CLOCK_SKEW_MS = 60_000
# ... and no older than the longest window a sum reads: an older event can never count in any sum.
MAX_EVENT_AGE_MS = window.MAX_WINDOW_S * window.SECOND_MS
_API = paths.PREFIX.rstrip("/")  # "/api"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _counted_path(path: str) -> str:
    if not (path == _API or path.startswith((paths.PREFIX, _API + "?", _API + "#"))):
        raise ValueError('must be a counted path: "/api" or "/api/..."')
    if textcheck.control_character(path):
        raise ValueError("must not hold control characters")
    return path


def _zoned_time(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an ISO 8601 time, e.g. 2026-11-24T10:00:00.000Z") from None
    if moment.tzinfo is None:
        raise ValueError("must name its zone (Z or an offset), e.g. 2026-11-24T10:00:00.000Z")
    return text


CountedPathText = Annotated[
    str,
    Field(
        min_length=1,
        description="what a GET would count, e.g. /api/a/b (counted normalised, e.g. /api/a/b/; at most "
        f"{paths.MAX_PATH_BYTES} bytes)",
    ),
    AfterValidator(_counted_path),
]
EventTime = Annotated[
    str,
    Field(
        max_length=64,
        description="ISO 8601 with an explicit zone, e.g. 2026-11-24T10:00:00.000Z; at most 24 h old and 60 s ahead",
    ),
    AfterValidator(_zoned_time),
]


class ValueEventIn(Strict):
    """A value for a stream's running statistics, as POST /streams/{stream}/values takes it."""

    type: Literal["value"]
    stream: StreamName
    value: StatisticValue
    user: User | None = None


class HitEventIn(Strict):
    """A hit, as GET /api/{path+} counts it."""

    type: Literal["hit"]
    path: CountedPathText


class MetricEventIn(Strict):
    """A value for a last-hour sum, as POST /metric/{key} takes it, counted at `time` (default: its arrival)."""

    type: Literal["metric"]
    key: KeyName
    value: MetricValue
    time: EventTime | None = None


class AverageEventIn(Strict):
    """A value for a moving-average window, as POST /averages/{key} takes it (the window must exist)."""

    type: Literal["average"]
    key: KeyName
    value: StatisticValue


EventIn = Annotated[ValueEventIn | HitEventIn | MetricEventIn | AverageEventIn, Field(discriminator="type")]
_MODELS: Mapping[str, type[Strict]] = {
    "value": ValueEventIn,
    "hit": HitEventIn,
    "metric": MetricEventIn,
    "average": AverageEventIn,
}


class Event(RootModel[EventIn]):
    """One event of a batch, by its `type`. Documentation only: `normalise` checks each event with its own model."""


# What the batch takes as an event: any JSON value. A valid event (`Event`) is put on the stream; anything else is
# not a reason to refuse the batch, but an entry of the answer's `rejected` (by index, with the error).
BatchItem = Annotated[
    Any,
    WithJsonSchema(
        {
            "description": "an event (schema `Event`: a `ValueEventIn`, `HitEventIn`, `MetricEventIn` or "
            "`AverageEventIn` by its `type`), checked on its own: any other value is taken too, and rejected by its "
            "index in the answer's `rejected` while the valid events are put"
        }
    ),
]


class EventsBody(Strict):
    """The batch: its envelope is checked here; its events one by one (an invalid one is rejected by index)."""

    events: Annotated[
        list[BatchItem],
        Field(min_length=1, max_length=MAX_EVENTS, description=f"1 to {MAX_EVENTS} events, each checked on its own"),
    ]


class Rejection(Reply):
    index: int = Field(description="the event's position in `events`, from 0")
    error: ErrorDetail


class Accepted(Reply):
    accepted: int = Field(description="how many events were put on the stream")
    rejected: list[Rejection] = Field(description="the events refused, by index (ascending); the others were put")


# --- one event -------------------------------------------------------------------------------------------


class EventTooOld(ServiceError):
    code = "event_too_old"


class EventInFuture(ServiceError):
    code = "event_in_future"


class PathTooLong(ServiceError):
    code = "path_too_long"  # as GET /api/{path+} answers (there a 414)


@dataclass(frozen=True)
class Rejected:
    index: int
    error: ServiceError

    def body(self) -> dict[str, Any]:
        error = self.error
        detail: dict[str, Any] = {"code": error.code, "message": error.message}
        if error.field is not None:
            detail["field"] = error.field
        return {"index": self.index, "error": detail}


def normalise(index: int, raw: Any, now_ms: int) -> records.Event | Rejected:
    """Event `index` of the batch, checked as its direct endpoint checks it and normalised (arrival at `now_ms`),
    or why it is rejected (its field named from the batch: `events[3].value`)."""
    where = f"events[{index}]"
    if not isinstance(raw, dict):
        return Rejected(index, InvalidInput(f"{where}: must be an object", field=where))
    kind = raw.get("type")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        message = f"{where}.type: must be one of {', '.join(repr(name) for name in _MODELS)}"
        return Rejected(index, InvalidInput(message, field=f"{where}.type"))
    try:
        event = model.model_validate(raw)
    except ValidationError as exc:
        return Rejected(index, contract.invalid_input(_located(exc, ("events", index))))
    try:
        return _normalised(event, now_ms, where)
    except ServiceError as error:
        return Rejected(index, error)


def _located(error: ValidationError, prefix: tuple[str | int, ...]) -> CoreValidationError:
    """The same validation error, its locations under `prefix` (so the one translation names `events[i].field`)."""
    details: list[InitErrorDetails] = [
        {"type": e["type"], "loc": (*prefix, *e["loc"]), "input": e["input"], "ctx": e.get("ctx", {})}
        for e in error.errors(include_url=False)
    ]
    return CoreValidationError.from_exception_data(error.title, details)


def _normalised(event: Strict, now_ms: int, where: str) -> records.Event:
    if isinstance(event, ValueEventIn):
        return records.ValueEvent(stream=event.stream, value=event.value, time_ms=now_ms, user=event.user)
    if isinstance(event, HitEventIn):
        path = paths.normalise(event.path[len(_API) :])
        if paths.too_long(path):
            raise PathTooLong(
                f"{where}.path: the path is longer than {paths.MAX_PATH_BYTES} bytes", field=f"{where}.path"
            )
        return records.HitEvent(path=path, time_ms=now_ms)
    if isinstance(event, MetricEventIn):
        at_ms = now_ms if event.time is None else event_time_ms(event.time, now_ms, f"{where}.time")
        return records.MetricEvent(key=event.key, value=window.round_half_away(event.value), time_ms=at_ms)
    assert isinstance(event, AverageEventIn)
    return records.AverageEvent(key=event.key, value=event.value)


def event_time_ms(text: str, now_ms: int, field: str) -> int:
    """A metric event's time (epoch ms, below a millisecond dropped), within MAX_EVENT_AGE_MS before `now_ms` and
    MAX_CLOCK_SKEW_MS after it."""
    at_ms = (datetime.fromisoformat(text) - _EPOCH) // timedelta(milliseconds=1)
    if at_ms <= now_ms - MAX_EVENT_AGE_MS:
        raise EventTooOld(
            f"{field}: older than the longest window ({window.MAX_WINDOW_S} s): it can count in no sum", field=field
        )
    if at_ms > now_ms + MAX_CLOCK_SKEW_MS:
        raise EventInFuture(
            f"{field}: more than {MAX_CLOCK_SKEW_MS // 1000} s ahead of the service's clock", field=field
        )
    return at_ms
