"""HTTP layer for moving averages: parse, call the store, shape the answer."""

from __future__ import annotations

import contextlib
from typing import Any

from chalice import Blueprint, Response

from chalicelib.averages.models import Appended, AverageValueBody, SizeBody, WindowState
from chalicelib.averages.moving_average import MovingAverageInterface
from chalicelib.averages.store import AverageStore
from chalicelib.edge import auth, contract, web
from chalicelib.edge.errors import NotFound
from chalicelib.names import api as names_api
from chalicelib.names.models import AveragesPage, ListQuery
from chalicelib.process import runtime
from chalicelib.process.observability import count
from chalicelib.storage import write_once

bp: Blueprint = Blueprint(__name__)


def _store() -> AverageStore:
    return AverageStore(runtime.dynamodb(), runtime.table_name(), runtime.dynamodb_single_attempt())


def state_body(window: MovingAverageInterface) -> dict[str, Any]:
    elements = window.get_elements()
    return {
        "size": window.size,
        "count": len(elements),
        "average": window.get_moving_average(),
        "elements": elements,
    }


@bp.route("/averages/{key}", methods=["PUT"])
@auth.requires(auth.writer)
@contract.operation(
    "Create the window, or resize it (shrinking keeps the newest values)",
    tags=("averages",),
    path=contract.KeyPath,
    body=SizeBody,
    responses={200: WindowState},
    links={
        "append": contract.Link("append", {"key": "$request.path.key"}, "Add a value to this window"),
        "state": contract.Link("state", {"key": "$request.path.key"}, "This window's values and average"),
    },
)
def set_size(key: str, body: SizeBody) -> Response:
    try:
        window, created = _store().set_size(key, body.size)
    except write_once.AlreadyApplied:  # a keyed retry of a create or resize already applied: the window as it is
        current = _store().get(key)
        if current is None:
            raise
        window, created = current, False
    count("AverageWindowsCreated" if created else "AverageWindowsResized")
    return web.json_response(state_body(window))


@bp.route("/averages/{key}", methods=["POST"])
@auth.requires(auth.writer)
@contract.operation(
    "Append a value",
    tags=("averages",),
    path=contract.KeyPath,
    body=AverageValueBody,
    responses={200: Appended},
    errors=(404,),
    description="404 `window_not_found` for a key never created with PUT.",
)
def append(key: str, body: AverageValueBody) -> Response:
    # Values are stored one by one as DynamoDB numbers; the sum is never stored.
    try:
        window = _store().append(key, body.value)
    except write_once.AlreadyApplied:  # a keyed retry of a value already appended: the window as it is now
        current = _store().get(key)
        if current is None:
            raise
        window = current
    with contextlib.suppress(write_once.AlreadyApplied):  # a keyed retry: its first attempt refreshed the entry
        _store().refresh(key)
    count("AverageElementsAdded")
    return web.json_response({"average": window.get_moving_average(), "count": len(window), "size": window.size})


@bp.route("/averages/{key}", methods=["GET"])
@contract.operation(
    "The window: size, count, average and elements",
    tags=("averages",),
    path=contract.KeyPath,
    responses={200: WindowState},
    errors=(404,),
)
def state(key: str) -> Response:
    window = _store().get(key)
    if window is None:
        raise NotFound("no moving-average window with this key; create it with PUT", code="window_not_found")
    return web.json_response(state_body(window))


@bp.route("/averages", methods=["GET"])
@contract.operation(
    "The moving-average windows that exist, by name",
    tags=("averages",),
    query=ListQuery,
    responses={200: AveragesPage},
    description="One page of the registry of windows (written with the window by PUT; `updated_at` refreshed by "
    "appends at most once a minute per writer); `prefix` keeps the keys that start with it.",
)
def list_averages(query: ListQuery) -> Response:
    return names_api.list_page(bp.current_request, "average", "key", "averages", query)


@bp.route("/averages/{key}", methods=["DELETE"])
@auth.requires(auth.writer)
@contract.operation(
    "Delete the window",
    tags=("averages",),
    path=contract.KeyPath,
    responses={204: None},
    description="204, also for a window that does not exist. Values sent later are refused until a PUT creates the "
    "window afresh.",
)
def delete_window(key: str) -> Response:
    with contextlib.suppress(write_once.AlreadyApplied):  # a keyed retry of a delete already applied
        _store().delete(key)
    count("AverageWindowsDeleted")
    return Response(body="", status_code=204)
