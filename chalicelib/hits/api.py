"""HTTP layer for hit counters: /api/{path+}, /stats/, /test/{n}/, the /ui/hits page, the fold schedule."""

from __future__ import annotations

import random
import re
import time
from typing import Any

from chalice import Blueprint, Rate, Response
from chalice.app import Request

from chalicelib import pages
from chalicelib.edge import auth, contract, routing, web
from chalicelib.edge.errors import Forbidden, InvalidInput, ServiceError, invalid_range
from chalicelib.hits import days, load_test, paths, ranking, sweep, tracking
from chalicelib.hits.models import (
    MAX_SERIES_DAYS,
    CountedPath,
    DaySeries,
    DaySeriesQuery,
    Hit,
    LoadTest,
    LoadTestBody,
    LoadTestPath,
    PageView,
    Ranking,
    StatsQuery,
)
from chalicelib.hits.store import HitStore
from chalicelib.process import request_context, runtime, settings
from chalicelib.process.observability import count
from chalicelib.pure import clock
from chalicelib.pure.ranges import RangeRefused

bp: Blueprint = Blueprint(__name__)

_SCORE = re.compile(r"[0-9]{1,38}")


class PathTooLong(ServiceError):
    status = 414
    code = "path_too_long"


def _store() -> HitStore:
    return HitStore(runtime.dynamodb(), runtime.table_name())


def _record_hit(rest: str, field: str) -> tuple[str, int]:
    """Count a hit of the path below /api/ that `rest` names: the normalised path and its count."""
    path = paths.normalise(rest)
    if paths.too_long(path):
        raise PathTooLong(f"the path is longer than {paths.MAX_PATH_BYTES} bytes", field=field)
    day, expires_at = days.counting_day(clock.now())
    hits = _store().record(path, day, expires_at)
    count("HitsCounted")
    return path, hits


def _count_hit(rest: str) -> Response:
    path, hits = _record_hit(rest, "path")
    return web.json_response({"path": path, "count": hits})


_HIT_NOTE = "Counts a hit, so `HEAD` is a 405 here. 414 `path_too_long` for a normalised path over 1,024 bytes."


@bp.route("/api", methods=["GET"])
@routing.changes_state
@contract.operation(
    "Count a hit of the path with no segments (`/api`, `/api/`)",
    tags=("hits",),
    responses={200: Hit},
    description=_HIT_NOTE,
)
def count_api_root() -> Response:
    # "/api" and "/api/" are the path with no segments; counted like any other.
    return _count_hit("")


@bp.route("/api/{path+}", methods=["GET"])
@routing.changes_state
@contract.operation(
    "Count a hit of the path",
    tags=("hits",),
    path=CountedPath,
    responses={200: Hit},
    errors=(414,),
    description=_HIT_NOTE,
)
def count_api_path(path: str) -> Response:
    return _count_hit(path)


# Neither is cached between views: a cached pixel would count a page's first view only.
_SNIPPET_HEADERS: dict[str, str | list[str]] = {
    "Content-Type": "application/javascript",
    "Cache-Control": "public, max-age=3600",
    # Sites that embed only resources which allow it (Cross-Origin-Embedder-Policy) may still embed these.
    "Cross-Origin-Resource-Policy": "cross-origin",
}
_PIXEL_HEADERS: dict[str, str | list[str]] = {
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


@bp.route("/count.js", methods=["GET"])
@contract.operation(
    "The tracking snippet: counts a site's page views",
    tags=("hits",),
    responses={200: "application/javascript"},
    description='Embed with `<script async src=".../count.js" data-site="blog"></script>`: each view of a page '
    "counts a hit of `/api/<site><location.pathname>` through `GET /count.gif` (docs/hits.md#tracking-snippet).",
)
def tracking_snippet() -> Response:
    return Response(body=tracking.snippet(), status_code=200, headers=dict(_SNIPPET_HEADERS))


@bp.route("/count.gif", methods=["GET"])
@routing.changes_state
@contract.operation(
    "Count a page view (the snippet's request, or a pixel)",
    tags=("hits",),
    query=PageView,
    responses={200: tracking.PIXEL_TYPE, 204: None},
    errors=(414,),
    description="Counts a hit of `/api<p>`, as `GET /api/{path}` would, and answers a transparent 1×1 GIF, or 204 "
    "to a client whose `Accept` takes no image. Counts a hit, so `HEAD` is a 405 here.",
)
def count_page_view(query: PageView) -> Response:
    _record_hit(query.p, "p")
    if not tracking.accepts_pixel(bp.current_request.headers.get("accept")):
        return Response(body="", status_code=204, headers=dict(_PIXEL_HEADERS))
    return Response(
        body=tracking.PIXEL, status_code=200, headers={"Content-Type": tracking.PIXEL_TYPE, **_PIXEL_HEADERS}
    )


@bp.route("/stats", methods=["GET"])
@contract.operation(
    "The paths ranked by count (all time, or one UTC day)", tags=("hits",), query=StatsQuery, responses={200: Ranking}
)
def hit_stats(query: StatsQuery) -> Response:
    request = bp.current_request
    day = query.day
    scope = days.scope(day)
    # A cursor is bound to the ranking it pages (the day, or all time).
    position = web.decode_cursor(request, {"score": str, "path": str}, query=("day",))
    after = None
    if position is not None:
        if not _SCORE.fullmatch(position["score"]):
            raise InvalidInput("cursor is not one this service issued", code="invalid_cursor", field="cursor")
        after = ranking.Entry(position["path"], int(position["score"]))
    store = _store()
    page = store.ranking(scope, query.limit, after)
    totals = store.totals(scope)
    cursor = None
    if page.next_after is not None:
        cursor = {"score": str(page.next_after.score), "path": page.next_after.path}
    return web.json_response(
        {
            "day": day,
            "total_hits": totals.total_hits,
            "distinct_paths": totals.distinct_paths,
            "paths": [{"path": p.path, "count": p.count} for p in page.paths],
            "cursor": web.encode_cursor(request, cursor, query=("day",)),
        }
    )


@bp.route("/stats/series", methods=["GET"])
@contract.operation(
    "A path's hits on each UTC day of a range",
    tags=("hits",),
    query=DaySeriesQuery,
    responses={200: DaySeries},
    description=f"Every day from `from` to `to` (at most {MAX_SERIES_DAYS}), zero days included. Day counts are kept "
    f"{days.DAY_RETENTION_SECONDS // days.DAY_SECONDS} days after their day: an earlier `from` is a 400.",
)
def hit_day_series(query: DaySeriesQuery) -> Response:
    path = paths.normalise(query.path.removeprefix("/api"))  # one longer than a counted path has only zero days
    try:
        every = days.series_days(query.from_, query.to, clock.now(), MAX_SERIES_DAYS)
    except RangeRefused as refused:
        raise invalid_range(refused) from None
    found = _store().day_counts(path, query.from_, query.to)
    return web.json_response({"path": path, "days": [{"day": day, "count": found.get(day, 0)} for day in every]})


def _load_test_requirements(current: settings.Settings) -> contract.Requirements:
    if current.load_test_access == "open":
        return contract.writer_requirements(current)
    return contract.ADMIN if current.load_test_access == "admin" else []


@contract.security(
    _load_test_requirements,
    "The stage's LOAD_TEST_ACCESS decides who may run it: `open` (whoever may write: anyone, or the write token "
    "where WRITE_ACCESS is `token`), `admin` (the admin token) or `off` (403 `load_test_disabled` for everyone).",
)
def load_test_access(request: Request) -> auth.Principal:
    """The load generator spends write capacity: the stage decides who may run it (LOAD_TEST_ACCESS)."""
    access = settings.get().load_test_access
    if access == "off":
        raise Forbidden("the load generator is switched off in this stage", code="load_test_disabled")
    if access == "admin":
        return auth.admin(request)
    return auth.writer(request)


@bp.route("/test/{n}", methods=["POST"])
@auth.requires(load_test_access)
@contract.operation(
    "Generate n hits of random paths, counted as real hits",
    tags=("hits",),
    path=LoadTestPath,
    body=LoadTestBody,
    body_required=False,
    responses={200: LoadTest},
    errors=(403,),
)
def hit_load_test(n: int, body: LoadTestBody) -> Response:
    rng = random.Random()
    # A pool from the body continues a run in several requests (the page does).
    pool = body.pool or paths.make_pool(rng)
    generated = paths.generate_paths(n, pool, rng)
    day, expires_at = days.counting_day(clock.now())
    started = time.monotonic()
    counted = load_test.run_load_test(_store(), generated, day, expires_at)
    count("HitsCounted", counted)
    return web.json_response(
        {
            "requested": n,
            "counted": counted,
            "distinct_paths": len(set(generated)),
            "pool": pool,
            "seconds": round(time.monotonic() - started, 3),
        }
    )


@bp.route("/ui/hits", methods=["GET"])
@contract.operation("The hit counters page", tags=("pages",), responses=contract.PAGE)
def hits_page() -> Response:
    return pages.page("hits.html")


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def sweep_hits(event: Any) -> dict[str, int]:
    """Fold hot paths' overflow into their counters and move the ranking entries of the paths listed since, in
    `hit_rank_passes` passes over the minute, each with its own budget."""

    def one_pass() -> sweep.Swept:
        with request_context.budget(settings.get().request_budget_s):
            return sweep.sweep(_store())

    swept = sweep.passes(
        one_pass, settings.get().hit_rank_passes, lambda: event.context.get_remaining_time_in_millis() / 1000
    )
    if swept.folded:
        count("HitsFolded", swept.folded)
    count("HitRankEntriesPut", swept.ranked)
    return {"folded": swept.folded, "slots": swept.slots, "ranked": swept.ranked}
