"""HTTP layer for running statistics: parse the request, call the store, shape the answer."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from chalice import Blueprint, Response

from chalicelib.edge import auth, contract, web
from chalicelib.edge.errors import InvalidInput
from chalicelib.names import api as names_api
from chalicelib.names.models import ListQuery, StreamsPage
from chalicelib.process import runtime
from chalicelib.process.observability import count
from chalicelib.pure import clock, sketch
from chalicelib.storage import write_once
from chalicelib.streams.models import (
    AuditPage,
    Histogram,
    PageQuery,
    QuantilesQuery,
    ResetBody,
    SessionQuantiles,
    Sessions,
    Snapshot,
    StreamPath,
    ValuesBody,
)
from chalicelib.streams.store import AuditEntry, SessionFigures, StreamStore

bp: Blueprint = Blueprint(__name__)


def _store() -> StreamStore:
    return StreamStore(runtime.dynamodb(), runtime.table_name())


def parse_values(body: ValuesBody) -> list[float]:
    if (body.value is None) == (body.values is None):
        raise InvalidInput('send exactly one of "value" or "values"', field="value")
    return [body.value] if body.value is not None else list(body.values or ())


def _iso(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else clock.iso(epoch_ms)


# The quantiles every snapshot carries.
SNAPSHOT_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def session_quantile(figures: SessionFigures, q: float) -> float | None:
    """The session's q-quantile, inside the min and max it keeps (see Sketch.quantile_within)."""
    if not figures.has_quantiles:
        return None
    return figures.sketch.quantile_within(q, figures.moments.min, figures.moments.max)


def snapshot_quantiles(figures: SessionFigures) -> dict[str, float | None] | None:
    if not figures.has_quantiles:
        return None
    return {name: session_quantile(figures, q) for name, q in SNAPSHOT_QUANTILES.items()}


def figures_body(figures: SessionFigures) -> dict[str, Any]:
    m = figures.moments
    empty = m.count == 0
    body: dict[str, Any] = {
        "stream": figures.stream,
        "session": figures.session,
        "count": m.count,
        "mean": None if empty else m.mean,
        "variance": m.variance,
        "stddev": m.stddev,
        "sample_variance": m.sample_variance,
        "sample_stddev": m.sample_stddev,
        "min": m.min,
        "max": m.max,
        "sum": None if empty else m.sum,
        "started_at": _iso(figures.started_at),
        "started_by": figures.started_by,
        "updated_at": _iso(figures.updated_at),
        "quantiles": snapshot_quantiles(figures),
    }
    if figures.closed_at is not None:
        body.update(closed_at=_iso(figures.closed_at), closed_by=figures.closed_by)
    return body


def audit_body(entry: AuditEntry) -> dict[str, Any]:
    return {"value": entry.value, "user": entry.user, "at": clock.iso(entry.at), "session": entry.session}


@bp.route("/streams/{stream}/values", methods=["POST"])
@auth.requires(auth.writer)
@contract.operation(
    "Add a value, or a batch of values, to the stream's active session",
    tags=("streams",),
    path=StreamPath,
    body=ValuesBody,
    responses={200: Snapshot},
    links={
        "snapshot": contract.Link("snapshot", {"stream": "$request.path.stream"}, "The stream's figures"),
        "sessions": contract.Link("sessions", {"stream": "$request.path.stream"}, "The stream's closed sessions"),
        "values": contract.Link("audit", {"stream": "$request.path.stream"}, "The stream's values, newest first"),
    },
)
def add_values(stream: str, body: ValuesBody) -> Response:
    values = parse_values(body)
    now_ms = clock.now_ms()
    try:
        figures = _store().add_values(stream, values, body.user, uuid.uuid4().hex[:16], now_ms, clock.iso(now_ms))
    except write_once.AlreadyApplied:  # a keyed retry of values already added: the stream as it is now
        return web.json_response(figures_body(_store().snapshot(stream)))
    count("ValuesIngested", len(values))
    return web.json_response(figures_body(figures))


@bp.route("/streams/{stream}", methods=["GET"])
@contract.operation("The active session's figures", tags=("streams",), path=StreamPath, responses={200: Snapshot})
def snapshot(stream: str) -> Response:
    return web.json_response(figures_body(_store().snapshot(stream)))


@bp.route("/streams/{stream}/quantiles", methods=["GET"])
@contract.operation(
    "Any quantiles of the active session's values",
    tags=("streams",),
    path=StreamPath,
    query=QuantilesQuery,
    responses={200: SessionQuantiles},
)
def quantiles(stream: str, query: QuantilesQuery) -> Response:
    figures = _store().snapshot(stream)
    answers = {text: session_quantile(figures, q) for text, q in contract.quantile_levels(query.q)}
    body = {"quantiles": answers, "relative_accuracy": sketch.RELATIVE_ACCURACY, "count": figures.moments.count}
    return web.json_response(body)


@bp.route("/streams/{stream}/histogram", methods=["GET"])
@contract.operation(
    "The distribution of the active session's values: its quantile sketch's bins",
    tags=("streams",),
    path=StreamPath,
    responses={200: Histogram},
)
def histogram(stream: str) -> Response:
    figures = _store().snapshot(stream)
    m = figures.moments
    bins = figures.sketch.histogram(m.min, m.max) if figures.has_quantiles else []
    body = {
        "bins": [{"low": low, "high": high, "count": n} for low, high, n in bins],
        "relative_accuracy": sketch.RELATIVE_ACCURACY,
        "count": m.count,
    }
    return web.json_response(body)


@bp.route("/streams/{stream}/reset", methods=["POST"])
@auth.requires(auth.writer)
@contract.operation(
    "Close the active session and start the next",
    tags=("streams",),
    path=StreamPath,
    body=ResetBody,
    body_required=False,
    responses={200: Snapshot},
    description="409 `no_active_session` when the active session holds no values.",
)
def reset(stream: str, body: ResetBody) -> Response:
    closed = _store().reset(stream, body.user, clock.now_ms())
    count("SessionsClosed")
    return web.json_response(figures_body(closed))


@bp.route("/streams/{stream}/sessions", methods=["GET"])
@contract.operation(
    "Closed sessions, newest first", tags=("streams",), path=StreamPath, query=PageQuery, responses={200: Sessions}
)
def sessions(stream: str, query: PageQuery) -> Response:
    request = bp.current_request
    page = _store().list_sessions(stream, query.limit, web.decode_cursor(request, {"session": int}))
    return web.json_response(
        {"sessions": [figures_body(s) for s in page.items], "cursor": web.encode_cursor(request, page.next_position)}
    )


@bp.route("/streams/{stream}/values", methods=["GET"])
@contract.operation(
    "The audit trail of values, newest first",
    tags=("streams",),
    path=StreamPath,
    query=PageQuery,
    responses={200: AuditPage},
)
def audit(stream: str, query: PageQuery) -> Response:
    request = bp.current_request
    page = _store().list_values(stream, query.limit, web.decode_cursor(request, {"sk": str, "offset": int}))
    return web.json_response(
        {"values": [audit_body(e) for e in page.items], "cursor": web.encode_cursor(request, page.next_position)}
    )


@bp.route("/streams", methods=["GET"])
@contract.operation(
    "The streams that exist, by name",
    tags=("streams",),
    query=ListQuery,
    responses={200: StreamsPage},
    description="One page of the registry of stream names (a name is registered by its first write, and its "
    "`updated_at` refreshed at most once a minute per writer); `prefix` keeps the names that start with it. "
    "A deleted stream is not listed.",
)
def list_streams(query: ListQuery) -> Response:
    return names_api.list_page(bp.current_request, "stream", "stream", "streams", query)


@bp.route("/streams/{stream}", methods=["DELETE"])
@auth.requires(auth.writer)
@contract.operation(
    "Delete the stream: its active session, closed sessions and audit trail",
    tags=("streams",),
    path=StreamPath,
    responses={204: None},
    description="204 at once, also for a stream that does not exist (or is already deleted). From the answer on, "
    "the stream reads as new (no value, no session, no audit entry) and values sent later start it afresh; the "
    "stored items are removed by a background purge whose progress `GET /deletions?kind=stream` shows.",
)
def delete_stream(stream: str) -> Response:
    # A keyed retry of a delete already applied: deleted, as the first attempt said.
    with contextlib.suppress(write_once.AlreadyApplied):
        if _store().delete(stream, clock.now_ms()):
            count("StreamsDeleted")
    return Response(body="", status_code=204)


def purge_stream(stream: str, gen: int, spent: Any) -> tuple[int, bool]:
    return _store().purge(stream, gen, spent)


names_api.register_purger("stream", purge_stream)
