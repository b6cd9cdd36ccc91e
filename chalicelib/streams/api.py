"""HTTP layer for running statistics: parse the request, call the store, shape the answer."""

from __future__ import annotations

import re
import uuid
from typing import Any

from chalice import Blueprint, Response

from chalicelib import aws, clock, contract, web
from chalicelib.errors import InvalidInput
from chalicelib.observability import count
from chalicelib.streams.models import AuditPage, PageQuery, ResetBody, Sessions, Snapshot, StreamPath, ValuesBody
from chalicelib.streams.store import AuditEntry, SessionFigures, StreamStore

bp: Blueprint = Blueprint(__name__)

STREAM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def _store() -> StreamStore:
    return StreamStore(aws.dynamodb(), aws.table_name())


def _stream(stream: str) -> str:
    return web.name(stream, "stream", STREAM_NAME, "1 to 128 characters of A-Z a-z 0-9 _ . -")


def parse_values(body: ValuesBody) -> list[float]:
    if (body.value is None) == (body.values is None):
        raise InvalidInput('send exactly one of "value" or "values"', field="value")
    return [body.value] if body.value is not None else list(body.values or ())


def _iso(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else clock.iso(epoch_ms)


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
    }
    if figures.closed_at is not None:
        body.update(closed_at=_iso(figures.closed_at), closed_by=figures.closed_by)
    return body


def audit_body(entry: AuditEntry) -> dict[str, Any]:
    return {"value": entry.value, "user": entry.user, "at": clock.iso(entry.at), "session": entry.session}


@bp.route("/streams/{stream}/values", methods=["POST"])
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
def add_values(stream: str) -> Response:
    name = _stream(stream)
    body = contract.parse_body(bp.current_request, ValuesBody)
    values = parse_values(body)
    user = body.user
    now_ms = clock.now_ms()
    figures = _store().add_values(name, values, user, uuid.uuid4().hex[:16], now_ms, clock.iso(now_ms))
    count("ValuesIngested", len(values))
    return web.json_response(figures_body(figures))


@bp.route("/streams/{stream}", methods=["GET"])
@contract.operation("The active session's figures", tags=("streams",), path=StreamPath, responses={200: Snapshot})
def snapshot(stream: str) -> Response:
    return web.json_response(figures_body(_store().snapshot(_stream(stream))))


@bp.route("/streams/{stream}/reset", methods=["POST"])
@contract.operation(
    "Close the active session and start the next",
    tags=("streams",),
    path=StreamPath,
    body=ResetBody,
    body_required=False,
    responses={200: Snapshot},
    description="409 `no_active_session` when the active session holds no values.",
)
def reset(stream: str) -> Response:
    name = _stream(stream)
    user = contract.parse_body(bp.current_request, ResetBody, required=False).user
    closed = _store().reset(name, user, clock.now_ms())
    count("SessionsClosed")
    return web.json_response(figures_body(closed))


@bp.route("/streams/{stream}/sessions", methods=["GET"])
@contract.operation(
    "Closed sessions, newest first", tags=("streams",), path=StreamPath, query=PageQuery, responses={200: Sessions}
)
def sessions(stream: str) -> Response:
    name = _stream(stream)
    request = bp.current_request
    limit = web.query_int(request, "limit", default=20, low=1, high=100)
    page = _store().list_sessions(name, limit, web.decode_cursor(request, {"session": int}))
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
def audit(stream: str) -> Response:
    name = _stream(stream)
    request = bp.current_request
    limit = web.query_int(request, "limit", default=20, low=1, high=100)
    page = _store().list_values(name, limit, web.decode_cursor(request, {"sk": str, "offset": int}))
    return web.json_response(
        {"values": [audit_body(e) for e in page.items], "cursor": web.encode_cursor(request, page.next_position)}
    )
