"""HTTP layer for moving averages (issue 4, seed 004): parse, call the store, shape the answer."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib import aws, web
from chalicelib.averages.moving_average import MAX_SIZE, MovingAverageInterface
from chalicelib.averages.store import AverageStore
from chalicelib.errors import NotFound
from chalicelib.observability import count

bp = Blueprint(__name__)


def _store() -> AverageStore:
    return AverageStore(aws.dynamodb(), aws.table_name())


def parse_size(body: dict[str, Any]) -> int:
    return web.integer(body.get("size"), "size", low=1, high=MAX_SIZE)


def parse_value(body: dict[str, Any]) -> float:
    # Values are stored one by one as DynamoDB numbers; the sum is never stored.
    return web.statistic_value(body.get("value"), "value")


def state_body(window: MovingAverageInterface) -> dict[str, Any]:
    elements = window.get_elements()
    return {
        "size": window.size,
        "count": len(elements),
        "average": window.get_moving_average(),
        "elements": elements,
    }


@bp.route("/averages/{key}", methods=["PUT"])
def set_size(key: str) -> Response:
    name = web.key_name(key)
    size = parse_size(web.json_body(bp.current_request))
    window, created = _store().set_size(name, size)
    count("AverageWindowsCreated" if created else "AverageWindowsResized")
    return web.json_response(state_body(window))


@bp.route("/averages/{key}", methods=["POST"])
def append(key: str) -> Response:
    name = web.key_name(key)
    value = parse_value(web.json_body(bp.current_request))
    window = _store().append(name, value)
    count("AverageElementsAdded")
    return web.json_response({"average": window.get_moving_average(), "count": len(window), "size": window.size})


@bp.route("/averages/{key}", methods=["GET"])
def state(key: str) -> Response:
    window = _store().get(web.key_name(key))
    if window is None:
        raise NotFound("no moving-average window with this key; create it with PUT", code="window_not_found")
    return web.json_response(state_body(window))
