"""What travels on the events stream: the normalised events and their ids, how a record packs them, and how a
consumer marks what it has applied. Pure: shared by the API that writes records and the consumer that applies them.

A record's data is UTF-8 JSON, `{"events": [event, ...], "origin": "...", "positions": [p, ...]}`: the events of
one request that share a partition key, in request order, and their ids (chalicelib/ingest/dedupe.py): the
request's origin and each event's position in the request. A record put before events had ids has neither key;
its events are applied without the duplicate check. The API validated and normalised each event with its direct
endpoint's rules before it was put, so a record that does not decode into these events can never apply (a poison
record).

The partition key is `{type}:{key}` (the stream, the counted path, the metric or average key): one key's events
stay on one shard, in order, so a consumer batch holds all of a key's recent events and aggregates them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

# Kinesis sequence numbers are decimal strings of up to 129 digits (56 today), more than a DynamoDB number holds
# (38): a marker stores one as text after its length (MARKER_LENGTH_DIGITS digits), so that text order is number
# order in a condition expression and the text is only as long as the number.
MARKER_LENGTH_DIGITS = 3
# Markers written before that were the digits zero-padded to this width (chalicelib/ingest/applied.py reads both).
LEGACY_MARKER_DIGITS = 128
# Kinesis takes partition keys of up to 256 characters; counted as UTF-8 bytes here, which is never fewer.
MAX_PARTITION_KEY_BYTES = 256


@dataclass(frozen=True)
class ValueEvent:
    """A value for a stream's running statistics (POST /streams/{stream}), sent at `time_ms` (its arrival at the
    API, epoch ms: the audit trail's time)."""

    stream: str
    value: float
    time_ms: int
    user: str | None = None
    type: Literal["value"] = "value"


@dataclass(frozen=True)
class HitEvent:
    """A hit on a counted path, already normalised (`/api/a/b/`, as GET /api/{path+} counts it), at `time_ms`
    (its arrival at the API, epoch ms: the day it counts in)."""

    path: str
    time_ms: int
    type: Literal["hit"] = "hit"


@dataclass(frozen=True)
class MetricEvent:
    """A value for a last-hour sum, rounded as POST /metric/{key} rounds it, at its event time (epoch ms)."""

    key: str
    value: int
    time_ms: int
    type: Literal["metric"] = "metric"


@dataclass(frozen=True)
class AverageEvent:
    """A value appended to a moving-average window (POST /averages/{key})."""

    key: str
    value: float
    type: Literal["average"] = "average"


Event = ValueEvent | HitEvent | MetricEvent | AverageEvent
_TYPES: dict[str, type[Event]] = {"value": ValueEvent, "hit": HitEvent, "metric": MetricEvent, "average": AverageEvent}


class PoisonRecord(ValueError):
    """A record that does not decode into events: applying it again can never succeed."""


def aggregate_key(event: Event) -> str:
    """The key whose items an event changes."""
    if isinstance(event, ValueEvent):
        return event.stream
    if isinstance(event, HitEvent):
        return event.path
    return event.key


def partition_key(event: Event) -> str:
    """`{type}:{key}`; a key too long for Kinesis (a hit path of up to 1,024 bytes) is replaced by its SHA-256, so
    it still names one shard. Consumers read the key from the events, never from the partition key."""
    key = f"{event.type}:{aggregate_key(event)}"
    if len(key.encode()) <= MAX_PARTITION_KEY_BYTES:
        return key
    return f"{event.type}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


@dataclass(frozen=True)
class EventId:
    """What makes an event itself across every copy of it on the stream: the request that sent it (`origin`, see
    chalicelib/ingest/dedupe.py) and its index in that request's `events`."""

    origin: str
    position: int


@dataclass(frozen=True)
class Payload:
    """A record's events and their ids (each None in a record put before events had ids)."""

    events: list[Event]
    ids: list[EventId | None]


def encode(events: Sequence[Event], ids: Sequence[EventId] = ()) -> bytes:
    """A record's data: the events, and their ids when given (one origin: a record holds one request's events)."""
    document: dict[str, Any] = {"events": [asdict(e) for e in events]}
    if ids:
        origins = {i.origin for i in ids}
        if len(origins) != 1 or len(ids) != len(events):
            raise ValueError("a record's ids are one per event, of one origin")
        document.update(origin=ids[0].origin, positions=[i.position for i in ids])
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def decode(data: bytes) -> Payload:
    """The events of a record's data and their ids; PoisonRecord when it is not a record this module wrote."""
    try:
        document = json.loads(data)
        events = [_event(raw) for raw in document["events"]]
        return Payload(events, _ids(document, len(events)))
    except (ValueError, TypeError, KeyError) as exc:
        raise PoisonRecord(f"not an events record: {exc}") from None


def _ids(document: dict[str, Any], count: int) -> list[EventId | None]:
    if "origin" not in document:
        return [None] * count
    origin, positions = document["origin"], document["positions"]
    if not isinstance(origin, str) or len(positions) != count or not all(type(p) is int for p in positions):
        raise ValueError("ids that do not match the events")
    return [EventId(origin, p) for p in positions]


def _event(raw: dict[str, Any]) -> Event:
    fields = dict(raw)
    kind = _TYPES[fields.pop("type")]
    return kind(**fields)


def sequence_marker(sequence_number: str | int) -> str:
    """A sequence number as text that compares as the number does (DynamoDB conditions compare text): its length,
    then its digits, e.g. `0561234...` for a 56-digit number."""
    digits = str(int(sequence_number))
    if len(digits) >= 10**MARKER_LENGTH_DIGITS:
        raise ValueError(f"sequence number of {len(digits)} digits")
    return f"{len(digits):0{MARKER_LENGTH_DIGITS}d}{digits}"


@dataclass(frozen=True)
class Delivered:
    """One event as the consumer received it: from which shard, in which record (its sequence number), and its id
    (None for a record put before events had ids)."""

    shard_id: str
    sequence_number: str
    event: Event
    id: EventId | None = None

    @property
    def marker(self) -> str:
        return sequence_marker(self.sequence_number)
