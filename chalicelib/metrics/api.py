"""HTTP layer for last-hour sums, and the scheduled minute compaction."""

from __future__ import annotations

import uuid
from typing import Any

from chalice import Blueprint, Rate, Response

from chalicelib import aws, clock, contract, pages, web
from chalicelib.metrics import window
from chalicelib.metrics.models import Minutes, Sum, ValueBody, WindowQuery
from chalicelib.metrics.store import SumStore
from chalicelib.observability import count, logger

bp: Blueprint = Blueprint(__name__)


def _store() -> SumStore:
    return SumStore(aws.dynamodb(), aws.table_name())


def _window_ms() -> int:
    seconds = web.query_int(
        bp.current_request, "window", default=window.DEFAULT_WINDOW_S, low=1, high=window.MAX_WINDOW_S
    )
    return seconds * window.SECOND_MS


@bp.route("/metric/{key}", methods=["POST"])
@contract.operation(
    "Post a value (rounded half away from zero)",
    tags=("metrics",),
    path=contract.KeyPath,
    body=ValueBody,
    responses={200: contract.Empty},
    links={
        "sum": contract.Link("get_sum", {"key": "$request.path.key"}, "The key's sum over the last hour"),
        "minutes": contract.Link("get_minutes", {"key": "$request.path.key"}, "The key's sums per minute"),
    },
)
def post_value(key: str) -> Response:
    name = web.key_name(key)
    # Integers are taken exactly (no float detour).
    value = window.round_half_away(contract.parse_body(bp.current_request, ValueBody).value)
    at_ms = clock.now_ms()
    _store().post(name, value, at_ms, uuid.uuid4().hex[:16])
    late = clock.now_ms() - at_ms
    if late > window.SEAL_LAG_MS // 2:
        # The minute is sealed SEAL_LAG_MS after it ends; a write this slow is close to missing it.
        logger.warning("slow sum post", extra={"key": name, "elapsed_ms": late})
        count("SumPostsSlow")
    count("SumValuesPosted")
    return web.json_response({})


@bp.route("/metric/{key}/sum", methods=["GET"])
@contract.operation(
    "The sum of the values posted in the window up to now",
    tags=("metrics",),
    path=contract.KeyPath,
    query=WindowQuery,
    responses={200: Sum},
)
def get_sum(key: str) -> Response:
    name = web.key_name(key)
    window_ms = _window_ms()
    store = _store()
    value = store.sum(name, clock.now_ms(), window_ms)
    return web.json_response({"value": value})


@bp.route("/metric/{key}/minutes", methods=["GET"])
@contract.operation(
    "Per-minute totals of the window, oldest first",
    tags=("metrics",),
    path=contract.KeyPath,
    query=WindowQuery,
    responses={200: Minutes},
)
def get_minutes(key: str) -> Response:
    name = web.key_name(key)
    window_ms = _window_ms()
    series = _store().minutes(name, clock.now_ms(), window_ms)
    return web.json_response({"minutes": [{"minute": clock.iso(m * window.MINUTE_MS), "value": v} for m, v in series]})


@bp.route("/ui/metrics", methods=["GET"])
@contract.operation("The sums page (a chart of /metric/{key}/minutes)", tags=("pages",), responses={200: contract.HTML})
def metrics_page() -> Response:
    return pages.page("metrics.html")


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def compact_sums(event: Any) -> dict[str, Any]:
    """Every minute: seal the finished minutes' sub-totals into one bucket per key and minute."""
    report = _store().compact(clock.now_ms())
    count("SumBucketsWritten", report.written)
    logger.info(
        "sum compaction", extra={"minutes": report.minutes, "written": report.written, "existing": report.existing}
    )
    return {"minutes": report.minutes, "written": report.written, "existing": report.existing}
