"""Hit counters over HTTP, on either backend: /api/{path+}, /stats/, /test/{n}/, /ui/hits, the fold."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.hits import days, paths
from chalicelib.hits.models import MAX_SERIES_DAYS
from chalicelib.hits.store import HitStore
from chalicelib.process import runtime
from chalicelib.pure import clock
from chalicelib.storage import keys
from tests.conftest import Api, Environment, assert_error
from tests.conftest import ok as body

DAY1 = 1_795_000_000.0  # 2026-11-17T...Z
DAY2 = DAY1 + 86_400


@pytest.fixture(autouse=True)
def open_load_generator(env: Environment) -> None:
    """As under `make run`; tests/test_authorization.py covers the deployed stages' settings."""
    env.set("LOAD_TEST_ACCESS", "open")


def hit(api: Api, path: str) -> dict[str, Any]:
    result: dict[str, Any] = body(api.get(path))
    return result


def all_pages(api: Api, query: str = "", limit: int = 100) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    first = None
    for _ in range(1000):
        url = f"/stats/?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        page = body(api.get(url))
        first = first or page
        seen.extend(page["paths"])
        cursor = page["cursor"]
        if cursor is None:
            return seen, first
    raise AssertionError("paging did not end")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/api/one", "/api/one/"),
        ("/api/one/", "/api/one/"),
        ("/api/product/1/", "/api/product/1/"),
        ("/api/product/1", "/api/product/1/"),
        ("/api/One/Two/?q=1&x=y", "/api/One/Two/"),
        ("/api//a//b/", "/api/a/b/"),
        ("/api", "/api/"),
        ("/api/", "/api/"),
        ("/api/a/b/c/d/e/f/g/h", "/api/a/b/c/d/e/f/g/h/"),
    ],
)
def test_paths_are_normalised(api: Api, url: str, expected: str) -> None:
    assert hit(api, url) == {"path": expected, "count": 1}


def test_variants_of_one_path_count_together_and_case_is_kept(api: Api) -> None:
    counts = [hit(api, url)["count"] for url in ("/api/one", "/api/one/", "/api/one?x=2", "/api//one//")]
    assert counts == [1, 2, 3, 4]
    assert hit(api, "/api/ONE") == {"path": "/api/ONE/", "count": 1}
    stats = body(api.get("/stats/"))
    assert stats["paths"] == [{"path": "/api/one/", "count": 4}, {"path": "/api/ONE/", "count": 1}]
    assert (stats["total_hits"], stats["distinct_paths"]) == (5, 2)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("url", ["/api/one/", "/api/a/b/c", "/api", "/stats/", "/test/5/", "/ui/hits"])
def test_other_methods_are_a_json_405_and_count_nothing(api: Api, method: str, url: str) -> None:
    if (method, url) == ("POST", "/test/5/"):
        return
    assert_error(api.request(method, url), 405, "method_not_allowed")
    stats = body(api.get("/stats/"))
    assert stats["total_hits"] == 0 and stats["paths"] == []


def test_stats_answers_with_and_without_trailing_slash(api: Api) -> None:
    hit(api, "/api/x")
    assert body(api.get("/stats")) == body(api.get("/stats/"))


def test_path_too_long_is_rejected(api: Api) -> None:
    longest = "a" * (paths.MAX_PATH_BYTES - len("/api//"))
    assert hit(api, f"/api/{longest}")["count"] == 1
    assert_error(api.get(f"/api/{longest}b"), 414, "path_too_long")
    assert body(api.get("/stats/"))["total_hits"] == 1


# Both backends: the moto fixture serialises requests (conftest._serialize_moto), as DynamoDB applies
# each update atomically; unserialised, moto let two concurrent first hits both see count 1.
@pytest.mark.heavy
def test_concurrent_hits_on_one_path_are_all_counted(api: Api) -> None:
    threads, per_thread = 8, 50
    seen: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        mine = [hit(api, "/api/hot/")["count"] for _ in range(per_thread)]
        with lock:
            seen.extend(mine)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    # Every response saw its own increment (and maybe others counted at the same time): no count above the total,
    # the last one answered the total, and the counts only grow.
    assert min(seen) >= 1 and max(seen) == threads * per_thread
    assert hit(api, "/api/hot/")["count"] == threads * per_thread + 1
    stats = body(api.get("/stats/"))
    assert stats["paths"] == [{"path": "/api/hot/", "count": threads * per_thread + 1}]
    assert (stats["total_hits"], stats["distinct_paths"]) == (threads * per_thread + 1, 1)


def test_ranking_orders_by_count_then_path_and_pages_cover_every_path_once(api: Api) -> None:
    rng = random.Random(5)
    expected: dict[str, int] = {}
    # Many ties, incl. paths whose first 11 characters agree (equal index scores).
    names = [f"p{i}" for i in range(12)] + [f"shared-prefix-{i}" for i in range(10)] + ["Z", "a", "a/b", "~x"]
    for name in names:
        n = rng.choice([1, 1, 2, 3])
        for _ in range(n):
            hit(api, f"/api/{name}")
        expected[f"/api/{name}/"] = n
    want = [{"path": p, "count": c} for p, c in sorted(expected.items(), key=lambda pc: (-pc[1], pc[0]))]
    for limit in (1, 3, 7, 100):
        seen, first = all_pages(api, limit=limit)
        assert seen == want, limit
        assert first["total_hits"] == sum(expected.values())
        assert first["distinct_paths"] == len(expected)


def test_day_filter_ranks_one_utc_day(api: Api) -> None:
    clock.set_source(lambda: DAY1)
    for url in ("/api/a", "/api/a", "/api/b"):
        hit(api, url)
    clock.set_source(lambda: DAY2)
    for url in ("/api/b", "/api/b", "/api/c"):
        hit(api, url)
    day1 = body(api.get("/stats/?day=2026-11-18"))
    day2 = body(api.get("/stats/?day=2026-11-19"))
    assert day1["paths"] == [{"path": "/api/a/", "count": 2}, {"path": "/api/b/", "count": 1}]
    assert (day1["total_hits"], day1["distinct_paths"]) == (3, 2)
    assert day2["paths"] == [{"path": "/api/b/", "count": 2}, {"path": "/api/c/", "count": 1}]
    assert (day2["total_hits"], day2["distinct_paths"]) == (3, 2)
    assert body(api.get("/stats/?day=2026-11-20")) == {
        "day": "2026-11-20",
        "total_hits": 0,
        "distinct_paths": 0,
        "paths": [],
        "cursor": None,
    }
    overall = body(api.get("/stats/"))
    assert overall["paths"][0] == {"path": "/api/b/", "count": 3}
    assert (overall["total_hits"], overall["distinct_paths"]) == (6, 3)
    # Day pages are complete too.
    seen, _ = all_pages(api, "&day=2026-11-19", limit=1)
    assert [e["path"] for e in seen] == ["/api/b/", "/api/c/"]


def day_series(api: Api, query: str) -> list[tuple[str, int]]:
    found = body(api.get(f"/stats/series?{query}"))
    return [(d["day"], d["count"]) for d in found["days"]]


def test_a_paths_hits_per_day_cover_every_day_of_the_range(api: Api) -> None:
    clock.set_source(lambda: DAY1)  # 2026-11-18
    hit(api, "/api/s")
    hit(api, "/api/s")
    clock.set_source(lambda: DAY2)  # the 19th: the counter rolls over, the 18th goes to the path's history
    hit(api, "/api/s/")
    HitStore(runtime.dynamodb(), runtime.table_name()).record("/api/s/", "2026-11-16", 0)  # late, of an earlier day
    found = body(api.get("/stats/series?path=/api//s?x=1&from=2026-11-15&to=2026-11-20"))
    assert found["path"] == "/api/s/"  # normalised as GET /api/... counts it
    assert day_series(api, "path=/api/s/&from=2026-11-15&to=2026-11-20") == [
        ("2026-11-15", 0),
        ("2026-11-16", 1),
        ("2026-11-17", 0),
        ("2026-11-18", 2),
        ("2026-11-19", 1),
        ("2026-11-20", 0),
    ]
    assert day_series(api, "path=/api/s&from=2026-11-19&to=2026-11-19") == [("2026-11-19", 1)]
    assert day_series(api, "path=/api/never&from=2026-11-18&to=2026-11-19") == [("2026-11-18", 0), ("2026-11-19", 0)]


def _days_after(day: str, n: int) -> str:
    return days.counting_day(days.day_start(day) + n * days.DAY_SECONDS)[0]


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("path=/api/s/&from=2026-11-19&to=2026-11-18", "invalid_range", "from"),
        ("path=/api/s/&from={before_oldest}&to=2026-11-19", "invalid_range", "from"),
        ("path=/api/s/&from={oldest}&to={too_far}", "invalid_range", "to"),
        ("path=s&from=2026-11-18&to=2026-11-19", "invalid_input", "path"),
        ("path=/apis/&from=2026-11-18&to=2026-11-19", "invalid_input", "path"),
        ("from=2026-11-18&to=2026-11-19", "invalid_input", "path"),
        ("path=/api/s/&from=2026-02-30&to=2026-11-19", "invalid_input", "from"),
        ("path=/api/s/&from=2026-11-18", "invalid_input", "to"),
        ("path=/api/s/&from=2026-11-18&to=2026-11-19&day=2026-11-18", "invalid_input", "day"),
    ],
)
def test_a_day_series_out_of_range_or_malformed_is_a_400_naming_the_field(
    api: Api, query: str, code: str, field: str
) -> None:
    clock.set_source(lambda: DAY2)
    oldest = days.oldest_kept_day(DAY2)
    query = query.format(
        oldest=oldest, before_oldest=_days_after(oldest, -1), too_far=_days_after(oldest, MAX_SERIES_DAYS)
    )
    assert assert_error(api.get(f"/stats/series?{query}"), 400, code)["field"] == field


def test_a_day_series_reaches_back_to_the_oldest_kept_day(api: Api) -> None:
    clock.set_source(lambda: DAY2)
    oldest = days.oldest_kept_day(DAY2)
    last = _days_after(oldest, MAX_SERIES_DAYS - 1)
    found = day_series(api, f"path=/api/s/&from={oldest}&to={last}")
    assert len(found) == MAX_SERIES_DAYS and found[0][0] == oldest and found[-1][0] == last


def test_load_test_counts_every_generated_path(api: Api) -> None:
    hit(api, "/api/before")
    result = body(api.post("/test/60/"))
    assert set(result) == {"requested", "counted", "distinct_paths", "pool", "seconds"}
    assert result["requested"] == result["counted"] == 60
    pool = result["pool"]
    assert len(pool) == 3 and len(set(pool)) == 3
    seen, first = all_pages(api, limit=1000)
    assert first["total_hits"] == 61
    generated = [e for e in seen if e["path"] != "/api/before/"]
    assert sum(e["count"] for e in generated) == 60
    assert len(generated) == result["distinct_paths"] == first["distinct_paths"] - 1
    for entry in generated:
        segments = paths.segments(entry["path"])
        assert 1 <= len(segments) <= 6 and set(segments) <= set(pool)
        assert entry["path"] == "/api/" + "".join(s + "/" for s in segments)


def test_load_test_can_continue_with_a_pool(api: Api) -> None:
    first = body(api.post("/test/20/"))
    second = body(api.post("/test/30/", {"pool": first["pool"]}))
    assert second["pool"] == first["pool"] and second["counted"] == 30
    assert body(api.get("/stats/"))["total_hits"] == 50


@pytest.mark.parametrize(
    ("request_args", "field"),
    [
        (("POST", "/test/0/"), "n"),
        (("POST", "/test/10001/"), "n"),
        (("POST", "/test/abc/"), "n"),
        (("POST", "/test/-5/"), "n"),
        (("POST", "/test/1.5/"), "n"),
        (("POST", "/test/99999999999999999999/"), "n"),
        (("POST", "/test/5/", {"pool": ["a", "b"]}), "pool"),
        (("POST", "/test/5/", {"pool": ["a", "a", "b"]}), "pool"),
        (("POST", "/test/5/", {"pool": ["a", "b", "c/d"]}), "pool[2]"),
        (("GET", "/stats/?day=2026-13-01"), "day"),
        (("GET", "/stats/?day=2026-2-01"), "day"),
        (("GET", "/stats/?day=yesterday"), "day"),
        (("GET", "/stats/?limit=0"), "limit"),
        (("GET", "/stats/?limit=1001"), "limit"),
        (("GET", "/stats/?limit=ten"), "limit"),
    ],
)
def test_bad_input_is_a_json_400_and_changes_nothing(api: Api, request_args: tuple[Any, ...], field: str) -> None:
    hit(api, "/api/one")
    error = assert_error(api.request(*request_args), 400, "invalid_input")
    assert error["field"] == field
    stats = body(api.get("/stats/"))
    assert stats["total_hits"] == 1 and stats["paths"] == [{"path": "/api/one/", "count": 1}]


def test_cursor_of_another_ranking_is_rejected(api: Api) -> None:
    clock.set_source(lambda: DAY1)
    for url in ("/api/a", "/api/b"):
        hit(api, url)
    cursor = body(api.get("/stats/?limit=1"))["cursor"]
    assert cursor
    assert_error(api.get(f"/stats/?day=2026-11-18&cursor={cursor}"), 400, "invalid_cursor")
    day_cursor = body(api.get("/stats/?limit=1&day=2026-11-18"))["cursor"]
    assert body(api.get(f"/stats/?day=2026-11-18&cursor={day_cursor}"))["paths"] == [{"path": "/api/b/", "count": 1}]


def test_hits_page_is_html(api: Api) -> None:
    response = api.get("/ui/hits")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert b'<script src="../assets/hits.js">' in response.body  # relative: the page is one level down
    script = api.get("/assets/hits.js")
    assert b"`stats/" in script.body and b"`test/${n}/`" in script.body  # relative to the root


# --- hot paths: overflow into delta shards, folded later ------------------------


class ThrottledCounter:
    """The real client, except that a transaction touching the counter of `path` is throttled (as a hot item's
    would be): cancelled with ThrottlingError for that item."""

    def __init__(self, client: Any, path: str) -> None:
        self._client = client
        self._hot = keys.hit_pk(path)

    def transact_write_items(self, **kwargs: Any) -> Any:
        items = kwargs["TransactItems"]
        touched = [next(iter(i.values()))["Key"]["pk"]["S"] == self._hot for i in items]
        if any(touched):
            reasons = [{"Code": "ThrottlingError" if t else "None"} for t in touched]
            raise ClientError(
                {"Error": {"Code": "TransactionCanceledException", "Message": "hot"}, "CancellationReasons": reasons},  # type: ignore[typeddict-item]
                "TransactWriteItems",
            )
        return self._client.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def sweep_later(client: Any) -> dict[str, Any]:
    """The schedule, run as it would be three minutes from now (every listed minute is over by then)."""
    now = clock.now()
    clock.set_source(lambda: now + 180)
    try:
        event = client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
        )
        result: dict[str, Any] = client.lambda_.invoke("sweep_hits", event).payload
        return result
    finally:
        clock.set_source(lambda: now)


def test_a_throttled_path_overflows_and_is_folded_exactly(api: Api, client: Any) -> None:
    clock.set_source(lambda: DAY1)
    hit(api, "/api/cold")
    hit(api, "/api/hot")  # counted normally first
    hot = HitStore(ThrottledCounter(runtime.dynamodb(), "/api/hot/"), runtime.table_name(), random.Random(1))
    counts = [hot.record("/api/hot/", "2026-11-18", 0) for _ in range(40)]
    assert counts == list(range(2, 42))  # exact while overflowing: counter + deltas
    before = body(api.get("/stats/?day=2026-11-18"))
    assert before["total_hits"] == 42
    assert before["paths"][0] == {"path": "/api/cold/", "count": 1}  # the ranking lags until the fold
    assert day_series(api, "path=/api/hot/&from=2026-11-18&to=2026-11-18") == [("2026-11-18", 41)]  # day counts don't
    # A path seen only through overflow becomes distinct when folded.
    fresh = HitStore(ThrottledCounter(runtime.dynamodb(), "/api/new/"), runtime.table_name(), random.Random(2))
    for _ in range(3):
        fresh.record("/api/new/", "2026-11-18", 0)
    assert body(api.get("/stats/"))["distinct_paths"] == 2

    assert sweep_later(client)["folded"] == 40 + 3
    for query in ("", "?day=2026-11-18"):
        stats = body(api.get("/stats/" + query))
        assert stats["paths"] == [
            {"path": "/api/hot/", "count": 41},
            {"path": "/api/new/", "count": 3},
            {"path": "/api/cold/", "count": 1},
        ]
        assert (stats["total_hits"], stats["distinct_paths"]) == (45, 3)
    assert hit(api, "/api/hot")["count"] == 42
    assert sweep_later(client)["folded"] == 0
