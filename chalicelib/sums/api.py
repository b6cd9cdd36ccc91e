"""HTTP layer for last-hour sums, and the scheduled minute compaction."""

from __future__ import annotations

import uuid
from typing import Any

from chalice import Blueprint, Rate, Response

from chalicelib import aws, clock, pages, web
from chalicelib.errors import InvalidInput
from chalicelib.observability import count, logger
from chalicelib.sums import window
from chalicelib.sums.store import SumStore

bp = Blueprint(__name__)


def _store() -> SumStore:
    return SumStore(aws.dynamodb(), aws.table_name())


def parse_value(body: dict[str, Any]) -> int:
    """The posted value, rounded half away from zero. Integers are taken exactly (no float detour)."""
    if "value" not in body:
        raise InvalidInput("value is required", field="value")
    raw = body["value"]
    web.number(raw, "value", bound=window.MAX_MAGNITUDE)  # rejects bool, null, strings, NaN/Infinity, huge
    if isinstance(raw, int) and abs(raw) > window.MAX_MAGNITUDE:
        raise InvalidInput(f"value must have magnitude at most {window.MAX_MAGNITUDE:g}", field="value")
    return window.round_half_away(raw)


def _window_ms() -> int:
    seconds = web.query_int(
        bp.current_request, "window", default=window.DEFAULT_WINDOW_S, low=1, high=window.MAX_WINDOW_S
    )
    return seconds * window.SECOND_MS


@bp.route("/metric/{key}", methods=["POST"])
def post_value(key: str) -> Response:
    name = web.key_name(key)
    value = parse_value(web.json_body(bp.current_request))
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
def get_sum(key: str) -> Response:
    name = web.key_name(key)
    window_ms = _window_ms()
    store = _store()
    value = store.sum(name, clock.now_ms(), window_ms)
    return web.json_response({"value": value})


@bp.route("/metric/{key}/minutes", methods=["GET"])
def get_minutes(key: str) -> Response:
    name = web.key_name(key)
    window_ms = _window_ms()
    series = _store().minutes(name, clock.now_ms(), window_ms)
    return web.json_response({"minutes": [{"minute": clock.iso(m * window.MINUTE_MS), "value": v} for m, v in series]})


@bp.route("/ui/metrics", methods=["GET"])
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
