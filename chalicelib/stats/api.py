"""HTTP layer for running statistics: parse the request, call the store, shape the answer."""

from __future__ import annotations

import re
import uuid
from typing import Any

from chalice import Blueprint, Response

from chalicelib import aws, clock, web
from chalicelib.errors import InvalidInput
from chalicelib.observability import count
from chalicelib.stats.store import AuditEntry, SessionFigures, StreamStore

bp = Blueprint(__name__)

STREAM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
MAX_BATCH = 100
USER_MAX = 64


def _store() -> StreamStore:
    return StreamStore(aws.dynamodb(), aws.table_name())


def _stream(stream: str) -> str:
    return web.name(stream, "stream", STREAM_NAME, "1 to 128 characters of A-Z a-z 0-9 _ . -")


def parse_values(body: dict[str, Any]) -> list[float]:
    if ("value" in body) == ("values" in body):
        raise InvalidInput('send exactly one of "value" or "values"', field="value")
    if "value" in body:
        return [web.statistic_value(body["value"], "value")]
    values = body["values"]
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_BATCH:
        raise InvalidInput(f"values must be a list of 1 to {MAX_BATCH} numbers", field="values")
    return [web.statistic_value(v, f"values[{i}]") for i, v in enumerate(values)]


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
def add_values(stream: str) -> Response:
    name = _stream(stream)
    body = web.json_body(bp.current_request)
    values = parse_values(body)
    user = web.optional_text(body, "user", max_length=USER_MAX)
    now_ms = clock.now_ms()
    figures = _store().add_values(name, values, user, uuid.uuid4().hex[:16], now_ms, clock.iso(now_ms))
    count("ValuesIngested", len(values))
    return web.json_response(figures_body(figures))


@bp.route("/streams/{stream}", methods=["GET"])
def snapshot(stream: str) -> Response:
    return web.json_response(figures_body(_store().snapshot(_stream(stream))))


@bp.route("/streams/{stream}/reset", methods=["POST"])
def reset(stream: str) -> Response:
    name = _stream(stream)
    body = web.json_body(bp.current_request, required=False)
    user = web.optional_text(body, "user", max_length=USER_MAX)
    closed = _store().reset(name, user, clock.now_ms())
    count("SessionsClosed")
    return web.json_response(figures_body(closed))


@bp.route("/streams/{stream}/sessions", methods=["GET"])
def sessions(stream: str) -> Response:
    name = _stream(stream)
    request = bp.current_request
    limit = web.query_int(request, "limit", default=20, low=1, high=100)
    page = _store().list_sessions(name, limit, web.decode_cursor(request, {"session": int}))
    return web.json_response(
        {"sessions": [figures_body(s) for s in page.items], "cursor": web.encode_cursor(request, page.next_position)}
    )


@bp.route("/streams/{stream}/values", methods=["GET"])
def audit(stream: str) -> Response:
    name = _stream(stream)
    request = bp.current_request
    limit = web.query_int(request, "limit", default=20, low=1, high=100)
    page = _store().list_values(name, limit, web.decode_cursor(request, {"sk": str, "offset": int}))
    return web.json_response(
        {"values": [audit_body(e) for e in page.items], "cursor": web.encode_cursor(request, page.next_position)}
    )
