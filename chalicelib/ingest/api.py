"""HTTP layer for ingest: POST /events checks a batch of events one by one and puts the valid ones on the events
stream (its consumer applies them; chalicelib/ingest/consumer.py)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.averages.store import AverageStore
from chalicelib.edge import auth, contract, middleware, web
from chalicelib.edge.errors import NotFound
from chalicelib.ingest import dedupe, records
from chalicelib.ingest.models import MAX_EVENTS, Accepted, Event, EventsBody, Rejected, normalise
from chalicelib.ingest.producer import RETRY_AFTER_S, Producer, StreamUnavailable
from chalicelib.ingest.records import EventId
from chalicelib.ingest.store import FirstCopyStore
from chalicelib.process import runtime, settings
from chalicelib.process.observability import count
from chalicelib.pure import clock

bp: Blueprint = Blueprint(__name__)

_DESCRIPTION = f"""\
1 to {MAX_EVENTS} events, each checked with its direct endpoint's rules: a `value` as POST /streams/{{stream}}/values, \
a `hit` as GET /api/{{path+}} counts its path (code `path_too_long` over 1,024 bytes), a `metric` as \
POST /metric/{{key}} (rounded the same way) at its `time` (default: arrival; code `event_too_old` at or beyond the \
longest window, 24 h, `event_in_future` more than 60 s ahead), an `average` as POST /averages/{{key}} (code \
`window_not_found` when the window does not exist).

202: the valid events were put on the events stream, the others are listed in `rejected` by index (also when \
none is valid: then `accepted` is 0). Each accepted event is applied exactly once by the stream's consumer, \
shortly after the answer; a rejected one never.

A body that is not `{{"events": [...]}}` with 1 to {MAX_EVENTS} events, or over 256 KiB, is refused whole (400, \
413). When the stream refuses some events' records even after retries (or their answers were lost), those events \
are in `rejected` with code `stream_unavailable` (and the answer carries Retry-After): send them again, in a new \
request; the others were put. 503 `stream_unavailable` (with Retry-After) when the stream can have stored none of \
them: retrying the request is safe. 503 `database_unavailable`: whether some events will apply is unknown; retry \
with the same Idempotency-Key and each applies once."""


@bp.route("/events", methods=["POST"])
@auth.requires(auth.writer)
@contract.operation(
    "Put a batch of events on the events stream",
    tags=("ingest",),
    body=EventsBody,
    responses={202: Accepted},
    description=_DESCRIPTION,
    models=(Event,),
)
def post_events(body: EventsBody) -> Response:
    now_ms = clock.now_ms()
    checked = [normalise(index, raw, now_ms) for index, raw in enumerate(body.events)]
    checked = _windows_exist(checked)
    rejected = [result for result in checked if isinstance(result, Rejected)]
    identity = middleware.keyed_identity(bp.current_request)
    origin = dedupe.random_origin() if identity is None else dedupe.keyed_origin(identity)
    valid = {EventId(origin, index): event for index, event in enumerate(checked) if not isinstance(event, Rejected)}
    first_copies = FirstCopyStore(runtime.dynamodb(), runtime.table_name())
    refused = _refused_before(first_copies, list(valid)) if identity is not None else []
    to_put = {event_id: event for event_id, event in valid.items() if event_id.position not in refused}
    if to_put:
        producer = Producer(runtime.kinesis(), settings.get().events_stream_name, first_copies)
        refused += producer.put(list(to_put.values()), list(to_put))
    rejected += [Rejected(index, _refused(index)) for index in refused]
    rejected.sort(key=lambda result: result.index)
    count("EventsAccepted", len(valid) - len(refused))
    count("EventsRejected", len(rejected))
    headers = {"Retry-After": str(RETRY_AFTER_S)} if refused else {}
    return web.json_response(
        {"accepted": len(valid) - len(refused), "rejected": [result.body() for result in rejected]},
        status=202,
        headers=headers,
    )


def _refused_before(first_copies: FirstCopyStore, ids: list[EventId]) -> list[int]:
    """The positions of a keyed request's events that an earlier run of it refused for good (its answer was not
    stored, e.g. the database failed after the refusal): refused again, not put, since no copy of them can apply."""
    if not ids:
        return []
    stored = first_copies.read(ids[0].origin, {dedupe.block_of(event_id)[1] for event_id in ids})
    return [event_id.position for event_id in dedupe.refused(ids, stored)]


def _windows_exist(checked: list[records.Event | Rejected]) -> list[records.Event | Rejected]:
    """The average events whose window does not exist rejected, as POST /averages/{key} answers them."""
    wanted = {event.key for event in checked if isinstance(event, records.AverageEvent)}
    if not wanted:
        return checked
    existing = AverageStore(runtime.dynamodb(), runtime.table_name()).existing(wanted)
    return [
        Rejected(index, _no_window(index))
        if isinstance(event, records.AverageEvent) and event.key not in existing
        else event
        for index, event in enumerate(checked)
    ]


def _refused(index: int) -> StreamUnavailable:
    field = f"events[{index}]"
    return StreamUnavailable(
        f"{field}: the events stream refused this event's record; send it again in a new request", field=field
    )


def _no_window(index: int) -> NotFound:
    field = f"events[{index}].key"
    return NotFound(
        f"{field}: no moving-average window with this key; create it with PUT", code="window_not_found", field=field
    )
