"""HTTP layer for last-hour sums and metric history, and the scheduled minute compaction and rollups."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from chalice import Blueprint, Rate, Response

from chalicelib import pages
from chalicelib.edge import auth, contract, web
from chalicelib.edge.errors import invalid_range
from chalicelib.metrics import compaction, rollup, rollup_run, rollup_store, window
from chalicelib.metrics.deletion import MetricDeletion
from chalicelib.metrics.generations import Generations
from chalicelib.metrics.models import (
    MetricValueBody,
    Minutes,
    QuantilesQuery,
    Series,
    SeriesQuery,
    Sum,
    WindowQuantiles,
    WindowQuery,
)
from chalicelib.metrics.rollup_store import RollupStore
from chalicelib.metrics.store import SumStore
from chalicelib.names import api as names_api
from chalicelib.names.models import ListQuery, MetricsPage
from chalicelib.process import runtime
from chalicelib.process.observability import count, logger
from chalicelib.pure import clock, sketch
from chalicelib.pure.ranges import RangeRefused
from chalicelib.storage import write_once

bp: Blueprint = Blueprint(__name__)


def _physical(key: str) -> str:
    """Where the key's current incarnation is stored (one consistent read: metrics/generations.py)."""
    return Generations(runtime.dynamodb(), runtime.table_name()).physical(key)


def _store() -> SumStore:
    return SumStore(runtime.dynamodb(), runtime.table_name())


@bp.route("/metric/{key}", methods=["POST"])
@auth.requires(auth.writer)
@contract.operation(
    "Post a value (rounded half away from zero)",
    tags=("metrics",),
    path=contract.KeyPath,
    body=MetricValueBody,
    responses={200: contract.Empty},
    links={
        "sum": contract.Link("get_sum", {"key": "$request.path.key"}, "The key's sum over the last hour"),
        "minutes": contract.Link("get_minutes", {"key": "$request.path.key"}, "The key's sums per minute"),
    },
)
def post_value(key: str, body: MetricValueBody) -> Response:
    # Integers are taken exactly (no float detour).
    value = window.round_half_away(body.value)
    at_ms = clock.now_ms()
    with contextlib.suppress(write_once.AlreadyApplied):  # a keyed retry of a post already stored: nothing to add
        _store().post(key, value, at_ms, uuid.uuid4().hex[:16])
    late = clock.now_ms() - at_ms
    if late > window.SEAL_LAG_MS // 2:
        # The minute is sealed SEAL_LAG_MS after it ends; a write this slow is close to missing it.
        logger.warning("slow sum post", extra={"key": key, "elapsed_ms": late})
        count("SumPostsSlow")
    count("SumValuesPosted")
    return web.json_response({})


@bp.route("/metric", methods=["GET"])
@contract.operation(
    "The metric keys that hold values, by name",
    tags=("metrics",),
    query=ListQuery,
    responses={200: MetricsPage},
    description="One page of the registry of keys, written by the scheduled compaction once per key and minute "
    "with values: a key is listed 1.5 to 2.5 minutes after its first value, and its `updated_at` is the start of "
    "its latest compacted minute. `prefix` keeps the keys that start with it.",
)
def list_metrics(query: ListQuery) -> Response:
    return names_api.list_page(bp.current_request, "metric", "key", "metrics", query)


@bp.route("/metric/{key}", methods=["DELETE"])
@auth.requires(auth.writer)
@contract.operation(
    "Delete the key: its values, minutes, sketches, rollups and markers",
    tags=("metrics",),
    path=contract.KeyPath,
    responses={204: None},
    description="204 at once, also for a key that holds nothing. From the answer on the key reads as new (no sum, "
    "no minute, no point of its series) and values posted later start it afresh; the stored items are removed by a "
    "background purge, at once and once more a day later, whose progress `GET /deletions?kind=metric` shows.",
)
def delete_key(key: str) -> Response:
    with contextlib.suppress(write_once.AlreadyApplied):  # a keyed retry of a delete already applied
        if MetricDeletion(_store()).delete(key, clock.now_ms()):
            count("MetricKeysDeleted")
    return Response(body="", status_code=204)


def purge_key(key: str, gen: int, spent: Any) -> tuple[int, bool]:
    return MetricDeletion(_store()).purge(key, gen, spent)


names_api.register_purger("metric", purge_key)


@bp.route("/metric/{key}/sum", methods=["GET"])
@contract.operation(
    "The sum of the values posted in the window up to now",
    tags=("metrics",),
    path=contract.KeyPath,
    query=WindowQuery,
    responses={200: Sum},
)
def get_sum(key: str, query: WindowQuery) -> Response:
    value = _store().sum(_physical(key), clock.now_ms(), query.window * window.SECOND_MS)
    return web.json_response({"value": value})


@bp.route("/metric/{key}/quantiles", methods=["GET"])
@contract.operation(
    "Quantiles of the values posted in the minutes the window overlaps (whole minutes), within 1% relative error",
    tags=("metrics",),
    path=contract.KeyPath,
    query=QuantilesQuery,
    responses={200: WindowQuantiles},
)
def get_quantiles(key: str, query: QuantilesQuery) -> Response:
    merged, extremes = _store().quantile_values(_physical(key), clock.now_ms(), query.window * window.SECOND_MS)
    low, high = extremes.bounds()
    return web.json_response(
        {
            "quantiles": {text: merged.quantile_within(q, low, high) for text, q in contract.quantile_levels(query.q)},
            "relative_accuracy": sketch.RELATIVE_ACCURACY,
            "count": merged.count,
        }
    )


@bp.route("/metric/{key}/series", methods=["GET"])
@contract.operation(
    "Count, sum, min, max and mean (and quantiles with `q`) per step-aligned bucket of [from, to)",
    tags=("metrics",),
    path=contract.KeyPath,
    query=SeriesQuery,
    responses={200: Series},
)
def get_series(key: str, query: SeriesQuery) -> Response:
    now_ms = clock.now_ms()
    rollups = RollupStore(_store())
    try:
        span = rollup.series_range(
            rollup.parse_time(query.from_, "from"), rollup.parse_time(query.to, "to"), query.step, now_ms, rollups.tiers
        )
    except RangeRefused as refused:
        raise invalid_range(refused) from None
    levels = contract.quantile_levels(query.q) if query.q is not None else None
    points = rollup_store.series(rollups, _physical(key), span, now_ms, with_sketch=levels is not None)
    return web.json_response(
        {
            "key": key,
            "step": query.step,
            "points": [_point(at, bucket, levels) for at, bucket in zip(span.starts, points, strict=True)],
        }
    )


def _point(at_ms: int, bucket: rollup.Bucket, levels: list[tuple[str, float]] | None) -> dict[str, Any]:
    empty = bucket.count == 0
    point: dict[str, Any] = {
        "at": clock.iso(at_ms),
        "count": bucket.count,
        "sum": None if empty else bucket.total,
        "min": bucket.low,
        "max": bucket.high,
        "mean": bucket.mean,
    }
    if levels is not None:
        point["quantiles"] = {text: bucket.sketch.quantile_within(q, bucket.low, bucket.high) for text, q in levels}
    return point


@bp.route("/metric/{key}/minutes", methods=["GET"])
@contract.operation(
    "Per-minute totals of the window, oldest first",
    tags=("metrics",),
    path=contract.KeyPath,
    query=WindowQuery,
    responses={200: Minutes},
)
def get_minutes(key: str, query: WindowQuery) -> Response:
    series = _store().minutes(_physical(key), clock.now_ms(), query.window * window.SECOND_MS)
    return web.json_response({"minutes": [{"minute": clock.iso(m * window.MINUTE_MS), "value": v} for m, v in series]})


@bp.route("/ui/metrics", methods=["GET"])
@contract.operation("The sums page (a chart of /metric/{key}/minutes)", tags=("pages",), responses=contract.PAGE)
def metrics_page() -> Response:
    return pages.page("metrics.html")


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def compact_sums(event: Any) -> dict[str, Any]:
    """Every minute: seal the finished minutes' sub-totals into one bucket per key and minute, then roll final hours
    and days up."""
    store = _store()
    report = compaction.compact(store, clock.now_ms())
    count("SumBucketsWritten", report.written)
    outcome: dict[str, Any] = {
        "minutes": report.minutes,
        "written": report.written,
        "existing": report.existing,
        "stopped": report.stopped,
    }
    if not report.stopped:  # then the final hours and days (rollup_run.py), in what is left of the budget
        rolled = rollup_run.roll_up(RollupStore(store), clock.now_ms())
        count("SumRollupsWritten", rolled.written)
        outcome["rollup"] = {"hours": rolled.hours, "days": rolled.days, "written": rolled.written}
        outcome["stopped"] = rolled.stopped
    logger.info("sum compaction", extra=outcome)
    return outcome
