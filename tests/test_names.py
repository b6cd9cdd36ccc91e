"""Listing what exists (GET /streams, /metric, /averages) and deleting it (DELETE of a stream or a window, the
background purge and GET /deletions)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.metrics import compaction
from chalicelib.metrics.generations import Generations
from chalicelib.metrics.store import SumStore
from chalicelib.metrics.writes import SumWrites
from chalicelib.names import api as names_api
from chalicelib.names.refresh import MINUTE_MS, Refreshes, minute_start
from chalicelib.names.store import NameStore
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.streams.store import StreamStore
from tests.conftest import TABLE, Api, assert_error, ok, partition_items

# --- pure: when a writer registers a name ------------------------------------------------------------------------


@pytest.mark.pure
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 10 * MINUTE_MS)), max_size=60))
def test_a_writer_registers_each_name_once_per_minute_and_in_every_minute_it_writes(
    writes: list[tuple[str, int]],
) -> None:
    refreshes = Refreshes()
    registered: list[tuple[str, int]] = []
    for name, at in sorted(writes, key=lambda w: w[1]):
        if refreshes.due(name, at):
            refreshes.done(name, at)
            registered.append((name, minute_start(at)))
    assert len(registered) == len(set(registered))  # at most once per name and minute
    assert set(registered) == {(name, minute_start(at)) for name, at in writes}  # every minute written is registered


@pytest.mark.pure
def test_a_full_memory_forgets_and_registers_again() -> None:
    refreshes = Refreshes(most=2)
    for name in "abc":
        refreshes.done(name, 0)
    assert refreshes.due("a", 0) and not refreshes.due("c", 0)


# --- listing -----------------------------------------------------------------------------------------------------


LISTS = {"/streams": "streams", "/metric": "metrics", "/averages": "averages"}


def pages(api: Api, path: str, field: str, limit: int, prefix: str = "") -> list[list[str]]:
    """Every page of a listing, each as its names."""
    found: list[list[str]] = []
    cursor = None
    while True:
        query = f"?limit={limit}&prefix={prefix}" + (f"&cursor={cursor}" if cursor else "")
        page = ok(api.get(path + query))
        found.append([entry[field] for entry in page[LISTS[path]]])
        cursor = page["cursor"]
        if cursor is None:
            return found


def test_streams_are_listed_by_name_with_prefix_and_signed_cursors(api: Api) -> None:
    names = ["a-1", "a-2", "a-3", "b-1", "ab"]
    for name in names:
        ok(api.post(f"/streams/{name}/values", {"value": 1}))
    ok(api.post("/streams/a-1/values", {"value": 2}))  # a second write in the minute: still one entry
    assert pages(api, "/streams", "stream", 2) == [["a-1", "a-2"], ["a-3", "ab"], ["b-1"]]
    assert pages(api, "/streams", "stream", 2, prefix="a-") == [["a-1", "a-2"], ["a-3"]]
    assert pages(api, "/streams", "stream", 50, prefix="zz") == [[]]
    entry = ok(api.get("/streams?limit=1"))["streams"][0]
    now = clock.now_ms()
    assert entry["updated_at"] == clock.iso(minute_start(now)) or entry["updated_at"] == clock.iso(
        minute_start(now - MINUTE_MS)
    )
    # A cursor is the listing's own: tampered, or for another prefix, it is refused.
    cursor = ok(api.get("/streams?limit=1&prefix=a"))["cursor"]
    assert_error(api.get(f"/streams?limit=1&prefix=a&cursor={cursor}x"), 400, "invalid_cursor")
    assert_error(api.get(f"/streams?limit=1&prefix=b&cursor={cursor}"), 400, "invalid_cursor")
    assert_error(api.get("/streams?prefix=a%23b"), 400, "invalid_input")
    assert_error(api.get("/streams?limit=0"), 400, "invalid_input")


def test_a_listing_page_reads_one_query_of_its_size(api: Api, dynamodb: Any) -> None:
    for n in range(30):
        ok(api.post(f"/streams/s{n:02d}/values", {"value": n}))
    calls: list[dict[str, Any]] = []
    real = dynamodb.query

    def counted(**request: Any) -> Any:
        calls.append(request)
        return real(**request)

    dynamodb.query = counted
    try:
        names_store = NameStore(dynamodb, TABLE)
        page = names_store.list_names("stream", "s1", 5, None)
    finally:
        dynamodb.query = real
    assert [e.name for e in page.entries] == [f"s1{n}" for n in range(5)]
    assert len(calls) == 1 and calls[0]["Limit"] == 6  # the page and one more: is there a next?


def test_averages_are_listed_once_created(api: Api) -> None:
    ok(api.put("/averages/temp", {"size": 3}))
    ok(api.put("/averages/tide", {"size": 3}))
    ok(api.post("/averages/temp", {"value": 1}))
    assert pages(api, "/averages", "key", 1, prefix="t") == [["temp"], ["tide"]]


def test_metric_keys_are_listed_once_their_minute_is_compacted(api: Api, dynamodb: Any) -> None:
    for key in ("orders", "ops:latency", "visits"):
        ok(api.post(f"/metric/{key}", {"value": 3}))
    assert ok(api.get("/metric"))["metrics"] == []  # not compacted yet
    compaction.compact(SumStore(dynamodb, TABLE), clock.now_ms() + 3 * MINUTE_MS)
    assert pages(api, "/metric", "key", 2) == [["ops:latency", "orders"], ["visits"]]
    assert [m["key"] for m in ok(api.get("/metric?prefix=o"))["metrics"]] == ["ops:latency", "orders"]


# --- deleting a moving average -----------------------------------------------------------------------------------


def test_deleting_a_window_removes_it_and_its_entry_and_is_idempotent(api: Api) -> None:
    ok(api.put("/averages/w", {"size": 3}))
    ok(api.post("/averages/w", {"value": 4}))
    response = api.delete("/averages/w")
    assert response.status_code == 204 and response.body == b""
    assert_error(api.get("/averages/w"), 404, "window_not_found")
    assert_error(api.post("/averages/w", {"value": 4}), 404, "window_not_found")
    assert ok(api.get("/averages"))["averages"] == []
    assert api.delete("/averages/w").status_code == 204  # again
    assert api.delete("/averages/never").status_code == 204  # never existed
    assert_error(api.delete("/averages/bad%23key"), 400, "invalid_input")
    # A PUT starts it afresh.
    assert ok(api.put("/averages/w", {"size": 2}))["count"] == 0
    assert [a["key"] for a in ok(api.get("/averages"))["averages"]] == ["w"]


def test_a_keyed_delete_is_replayed(api: Api) -> None:
    ok(api.put("/averages/w", {"size": 3}))
    key = {"Idempotency-Key": "del-w"}
    first = api.delete("/averages/w", headers=key)
    assert first.status_code == 204
    ok(api.put("/averages/w", {"size": 3}))
    again = api.delete("/averages/w", headers=key)
    assert again.status_code == 204 and again.headers.get("Idempotent-Replayed") == "true"
    assert ok(api.get("/averages/w"))["size"] == 3  # the replay deleted nothing


@pytest.mark.real_dynamodb
def test_appends_racing_a_delete_are_either_gone_with_it_or_refused(api: Api) -> None:
    ok(api.put("/averages/r", {"size": 1000}))

    def append(n: int) -> int:
        return int(api.post("/averages/r", {"value": n}).status_code)

    with ThreadPoolExecutor(6) as pool:
        appends = [pool.submit(append, n) for n in range(60)]
        time.sleep(0.05)
        assert pool.submit(api.delete, "/averages/r").result().status_code == 204
        statuses = [f.result() for f in appends]
    assert set(statuses) <= {200, 404}
    assert_error(api.get("/averages/r"), 404, "window_not_found")
    assert ok(api.get("/averages"))["averages"] == []


# --- deleting a stream -------------------------------------------------------------------------------------------


def audit(api: Api, stream: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = ok(api.get(f"/streams/{stream}/values?limit=100" + (f"&cursor={cursor}" if cursor else "")))
        entries += page["values"]
        cursor = page["cursor"]
        if cursor is None:
            return entries


def stream_items(dynamodb: Any, stream: str, gen: int) -> list[dict[str, Any]]:
    """The audit entries and closed sessions stored for the stream's incarnation `gen`."""
    found = partition_items(dynamodb, keys.stream_sessions_pk(stream, gen))
    for k in range(keys.SHARDS):
        found += [
            i for i in partition_items(dynamodb, keys.stream_audit_pk(stream, gen, k)) if i["sk"]["S"] != keys.STATE_SK
        ]
    return found


def test_a_deleted_stream_reads_as_new_and_later_values_start_it_afresh(api: Api, dynamodb: Any) -> None:
    ok(api.post("/streams/s/values", {"values": [1, 2, 3]}))
    ok(api.post("/streams/s/reset"))
    ok(api.post("/streams/s/values", {"values": [10, 20]}))
    ok(api.post("/streams/keep/values", {"value": 5}))
    assert api.delete("/streams/s").status_code == 204
    snapshot = ok(api.get("/streams/s"))
    assert (snapshot["count"], snapshot["session"], snapshot["sum"]) == (0, None, None)
    assert ok(api.get("/streams/s/sessions"))["sessions"] == []
    assert audit(api, "s") == []
    assert ok(api.get("/streams/s/quantiles?q=0.5"))["count"] == 0
    assert [s["stream"] for s in ok(api.get("/streams"))["streams"]] == ["keep"]
    assert_error(api.post("/streams/s/reset"), 409, "no_active_session")
    # Idempotent, and a stream that never existed.
    assert api.delete("/streams/s").status_code == 204
    assert api.delete("/streams/never").status_code == 204
    # Later values start it afresh: session 1, only them.
    fresh = ok(api.post("/streams/s/values", {"value": 7}))
    assert (fresh["count"], fresh["session"], fresh["sum"]) == (1, 1, 7)
    assert [e["value"] for e in audit(api, "s")] == [7]
    assert [s["stream"] for s in ok(api.get("/streams"))["streams"]] == ["keep", "s"]
    # The background purge removes the old incarnation's items, and only them; its progress is listed.
    assert len(stream_items(dynamodb, "s", 0)) == 3  # two audit entries and a closed session
    pending = ok(api.get("/deletions?kind=stream"))["deletions"]
    assert [(d["name"], d["incarnation"], d["done"], d["removed_items"]) for d in pending] == [("s", 0, False, 0)]
    assert names_api.run_purges() == {"removed": 3, "finished": 1}
    assert stream_items(dynamodb, "s", 0) == []
    done = ok(api.get("/deletions?kind=stream&prefix=s"))["deletions"]
    assert [(d["name"], d["done"], d["removed_items"]) for d in done] == [("s", True, 3)]
    assert [e["value"] for e in audit(api, "s")] == [7] and ok(api.get("/streams/s"))["count"] == 1
    assert ok(api.get("/streams/keep"))["count"] == 1
    # Deleted again: the new incarnation goes the same way.
    assert api.delete("/streams/s").status_code == 204
    assert ok(api.get("/streams/s"))["count"] == 0
    assert names_api.run_purges() == {"removed": 1, "finished": 1}
    assert stream_items(dynamodb, "s", 1) == []


def test_a_stream_with_100000_audit_values_is_deleted_at_once_and_purged_in_steps(
    api: Api, dynamodb: Any, backend: str
) -> None:
    """100,000 values (1,000 audit entries of 100): the DELETE rewrites the 16 shards whatever the size; the purge
    works in bounded steps, each recording its progress, and resumes after being stopped."""
    for _ in range(10):  # ten real requests, so the stream's shards exist
        ok(api.post("/streams/big/values", {"values": [float(v) for v in range(100)]}))
    shard_pk = keys.stream_audit_pk("big", 0, 3)
    requests = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": shard_pk},
                    "sk": {"S": keys.value_sk(clock.iso(1_700_000_000_000 + n), f"bulk{n:05d}")},
                    "values": {"L": [{"N": str(v)} for v in range(100)]},
                    "user": {"NULL": True},
                    "at": {"N": str(1_700_000_000_000 + n)},
                    "session": {"N": "1"},
                }
            }
        }
        for n in range(990)
    ]
    for start in range(0, len(requests), 25):
        dynamodb.batch_write_item(RequestItems={TABLE: requests[start : start + 25]})
    assert len(stream_items(dynamodb, "big", 0)) == 1000
    started = time.monotonic()
    assert api.delete("/streams/big").status_code == 204
    if backend == "ddblocal":  # (moto copies the whole table for every transaction)
        assert time.monotonic() - started < 5  # far inside the 15 s request budget: 18 items, whatever it holds
    assert audit(api, "big") == []
    # Steps stopped by their budget: each records what it removed, the next goes on.
    reported: list[int] = []
    for _ in range(200):
        step = names_api.run_purges(budget_s=0.2)
        progress = ok(api.get("/deletions?kind=stream&prefix=big"))["deletions"][0]
        reported.append(progress["removed_items"])
        if step["finished"]:
            break
    assert progress["done"] and progress["removed_items"] == 1000
    assert len(reported) > 1 and reported == sorted(reported)
    assert stream_items(dynamodb, "big", 0) == []


@pytest.mark.real_dynamodb
def test_writers_racing_a_delete_are_each_wholly_removed_or_wholly_in_the_fresh_stream(api: Api) -> None:
    """Eight writers post three distinct values a request while the stream is deleted; afterwards every read
    agrees with exactly the requests that survived, and each request is all in or all out."""
    ok(api.post("/streams/race/values", {"values": [0.5]}))
    deleted_at: list[float] = []
    answered: dict[int, tuple[float, float]] = {}  # request -> (sent, answered) monotonic

    def post(request: int) -> int:
        sent = time.monotonic()
        values = [request * 10 + 1.0, request * 10 + 2.0, request * 10 + 3.0]
        status = int(api.post("/streams/race/values", {"values": values}).status_code)
        answered[request] = (sent, time.monotonic())
        return status

    def delete() -> None:
        time.sleep(0.15)
        assert api.delete("/streams/race").status_code == 204
        deleted_at.append(time.monotonic())

    with ThreadPoolExecutor(9) as pool:
        deleting = pool.submit(delete)
        posts = [pool.submit(post, r) for r in range(1, 121)]
        deleting.result()
        assert [p.result() for p in posts] == [200] * 120
    for request in range(121, 126):  # sent after the DELETE answered: they must all be there
        assert post(request) == 200
    values = [e["value"] for e in audit(api, "race")]
    by_request: dict[int, set[float]] = {}
    for v in values:
        by_request.setdefault(int(v) // 10, set()).add(v)
    # Wholly in or wholly out, and nothing of the first incarnation.
    assert all(len(vs) == 3 for vs in by_request.values()) and 0 not in by_request
    # One sent after the DELETE answered must have survived; some were deleted (the delete did race them).
    (done,) = deleted_at
    assert {r for r in range(1, 121) if r not in by_request}
    for request, (sent, _) in answered.items():
        if sent > done:
            assert request in by_request
    snapshot = ok(api.get("/streams/race"))
    assert snapshot["count"] == len(values) and snapshot["sum"] == sum(values)
    assert snapshot["session"] == 1
    if values:
        assert (snapshot["min"], snapshot["max"]) == (min(values), max(values))
        ordered = sorted(values)
        exact = ordered[int(0.5 * (len(ordered) - 1))]
        median = ok(api.get("/streams/race/quantiles?q=0.5"))["quantiles"]["0.5"]
        assert abs(median - exact) <= 0.011 * abs(exact)
    assert ok(api.get("/streams/race/sessions"))["sessions"] == []
    # The purge changes none of it.
    names_api.run_purges()
    assert sorted(e["value"] for e in audit(api, "race")) == sorted(values)
    assert ok(api.get("/streams/race"))["count"] == len(values)


def test_deleting_needs_valid_input_and_changes_nothing_otherwise(api: Api) -> None:
    ok(api.post("/streams/s/values", {"value": 1}))
    assert_error(api.delete("/streams/a%20b"), 400, "invalid_input")
    assert ok(api.get("/streams/s"))["count"] == 1
    assert_error(api.get("/deletions?kind=nope"), 400, "invalid_input")


def test_a_purge_of_an_unknown_kind_is_skipped(api: Api, dynamodb: Any) -> None:
    store = NameStore(dynamodb, TABLE)
    dynamodb.put_item(**store.purge_put("nothing", "x", 0, 1))
    assert names_api.run_purges() == {"removed": 0, "finished": 0}


# --- deleting a metric key ---------------------------------------------------------------------------------------


def metric_items(dynamodb: Any, physical: str, minutes: list[int]) -> list[dict[str, Any]]:
    """Every item stored for a physical metric key (the minutes' raw values among them)."""
    found: list[dict[str, Any]] = []
    for pk in (
        keys.sum_sub_pk(physical),
        keys.sum_bucket_pk(physical),
        keys.sum_sketch_pk(physical),
        keys.sum_rollup_pk(physical),
        keys.sum_rollup_sketch_pk(physical),
        *(keys.sum_event_pk(physical, m, s) for m in minutes for s in range(keys.SUM_EVENT_SHARDS)),
    ):
        found += partition_items(dynamodb, pk)
    return found


def series(api: Api, key: str) -> list[dict[str, Any]]:
    now = clock.now_ms()
    span = f"from={clock.iso(now - 10 * MINUTE_MS)}&to={clock.iso(now + MINUTE_MS)}&step=60"
    return [p for p in ok(api.get(f"/metric/{key}/series?{span}"))["points"] if p["count"]]


class Clock:
    """The service's clock, moved on by the test: starts 5 s into the current minute."""

    def __init__(self) -> None:
        self.ms = minute_start(clock.now_ms()) + 5_000

    def now(self) -> float:
        return self.ms / 1000


@pytest.fixture
def moved() -> Iterator[Clock]:
    fake = Clock()
    clock.set_source(fake.now)
    yield fake
    clock.set_source(None)


def test_a_deleted_metric_key_reads_as_new_and_later_values_start_it_afresh(
    api: Api, dynamodb: Any, moved: Clock
) -> None:
    start = clock.now_ms()
    for value in (3, 4, 5):
        ok(api.post("/metric/orders", {"value": value}))
    ok(api.post("/metric/other", {"value": 1}))
    store = SumStore(dynamodb, TABLE)
    compaction.compact(store, clock.now_ms() + 3 * MINUTE_MS)
    assert [m["key"] for m in ok(api.get("/metric"))["metrics"]] == ["orders", "other"]
    minutes = list(range(start // MINUTE_MS - 1, clock.now_ms() // MINUTE_MS + 2))
    assert metric_items(dynamodb, "orders", minutes)
    assert api.delete("/metric/orders").status_code == 204
    assert ok(api.get("/metric/orders/sum"))["value"] == 0
    assert all(m["value"] == 0 for m in ok(api.get("/metric/orders/minutes?window=600"))["minutes"])
    assert ok(api.get("/metric/orders/quantiles?q=0.5"))["quantiles"] == {"0.5": None}
    assert series(api, "orders") == []
    assert [m["key"] for m in ok(api.get("/metric"))["metrics"]] == ["other"]
    assert api.delete("/metric/orders").status_code == 204  # idempotent
    assert api.delete("/metric/never").status_code == 204
    assert ok(api.get("/metric/other/sum"))["value"] == 1
    # Later values start it afresh, and a late compaction of the old minutes does not list it again.
    moved.ms += 4 * MINUTE_MS
    ok(api.post("/metric/orders", {"value": 10}))
    assert ok(api.get("/metric/orders/sum"))["value"] == 10
    assert [(p["count"], p["sum"]) for p in series(api, "orders")] == [(1, 10)]
    compaction.compact(store, clock.now_ms() + 3 * MINUTE_MS)
    assert [m["key"] for m in ok(api.get("/metric"))["metrics"]] == ["orders", "other"]
    # The purge: a first pass at once, the final one a day later; the new incarnation is untouched.
    first = names_api.run_purges()
    assert first["finished"] == 0, (first, ok(api.get("/deletions")))
    assert metric_items(dynamodb, "orders", minutes) == []
    progress = ok(api.get("/deletions?kind=metric"))["deletions"]
    assert [(d["name"], d["done"]) for d in progress] == [("orders", False)] and progress[0]["removed_items"] > 0
    assert names_api.run_purges(now_ms=clock.now_ms() + 27 * 3600 * 1000)["finished"] == 1
    assert ok(api.get("/deletions?kind=metric"))["deletions"][0]["done"]
    assert ok(api.get("/metric/orders/sum"))["value"] == 10
    assert metric_items(dynamodb, keys.metric_physical("orders", 1), minutes)


@pytest.mark.real_dynamodb
def test_posts_racing_a_metric_delete_are_each_wholly_removed_or_wholly_in_the_fresh_key(
    api: Api, dynamodb: Any
) -> None:
    """48 posts of 2^0..2^47 (the sum names the survivors) race a DELETE: the sum, the series' counts and extremes,
    the quantiles and the raw values stored under the new incarnation agree on exactly the same posts."""
    start = clock.now_ms()
    ok(api.post("/metric/race", {"value": 1 << 48}))
    deleted_at: list[float] = []
    sent_at: dict[int, float] = {}

    def post(i: int) -> int:
        sent_at[i] = time.monotonic()
        return int(api.post("/metric/race", {"value": 1 << i}).status_code)

    def delete() -> None:
        time.sleep(0.1)
        assert api.delete("/metric/race").status_code == 204
        deleted_at.append(time.monotonic())

    with ThreadPoolExecutor(9) as pool:
        deleting = pool.submit(delete)
        posts = [pool.submit(post, i) for i in range(44)]
        deleting.result()
        assert [p.result() for p in posts] == [200] * 44
    for i in range(44, 48):  # after the DELETE answered: they must be there
        assert post(i) == 200
    total = ok(api.get("/metric/race/sum"))["value"]
    survivors = {i for i in range(49) if total >> i & 1}
    assert 48 not in survivors and set(range(44, 48)) <= survivors
    assert survivors != set(range(48))  # the delete did remove some
    (done,) = deleted_at
    assert all(i in survivors for i, sent in sent_at.items() if sent > done)
    points = series(api, "race")
    assert sum(p["count"] for p in points) == len(survivors) and sum(p["sum"] for p in points) == total
    assert min(p["min"] for p in points) == 1 << min(survivors) and max(p["max"] for p in points) == 1 << max(survivors)
    # The raw values under the new incarnation are exactly the survivors'.
    minutes = list(range(start // MINUTE_MS - 1, clock.now_ms() // MINUTE_MS + 2))
    raw = [
        int(item["v"]["N"])
        for m in minutes
        for item in partition_items(dynamodb, keys.sum_event_pk(keys.metric_physical("race", 1), m, 0))
        if "v" in item
    ]
    assert sorted(raw) == sorted(1 << i for i in survivors)
    quantile = ok(api.get("/metric/race/quantiles?q=1"))["quantiles"]["1"]
    assert abs(quantile - (1 << max(survivors))) <= 0.011 * (1 << max(survivors))
    # Compaction and the purge change none of it.
    compaction.compact(SumStore(dynamodb, TABLE), clock.now_ms() + 3 * MINUTE_MS)
    names_api.run_purges()
    assert ok(api.get("/metric/race/sum"))["value"] == total


# --- events through the stream after a delete --------------------------------------------------------------------

EVENTS_SHARD = "shardId-000000000000"


def test_stream_events_after_a_delete_start_it_afresh_and_a_redelivery_is_still_recognised(dynamodb: Any) -> None:
    from chalicelib.ingest.records import Delivered, ValueEvent

    store = StreamStore(dynamodb, TABLE)
    now = clock.now_ms()
    first = [Delivered(EVENTS_SHARD, "1", ValueEvent("ev", 4.0, now, "a"))]
    store.apply_delivered(first)
    assert store.snapshot("ev").moments.count == 1
    assert store.delete("ev", now + 1)
    store.apply_delivered(first)  # redelivered after the delete: applied before it, so not again
    assert store.snapshot("ev").moments.count == 0
    store.apply_delivered([Delivered(EVENTS_SHARD, "2", ValueEvent("ev", 9.0, now + 2, "b"))])
    fresh = store.snapshot("ev")
    assert (fresh.moments.count, fresh.moments.sum, fresh.session) == (1, 9.0, 1)
    assert [e.value for e in store.list_values("ev", 10, None).items] == [9.0]


def test_metric_events_after_a_delete_start_the_key_afresh(dynamodb: Any) -> None:
    from chalicelib.ingest.records import Delivered, MetricEvent
    from chalicelib.metrics.deletion import MetricDeletion
    from chalicelib.metrics.generations import Generations

    store = SumStore(dynamodb, TABLE)
    now = clock.now_ms()
    store.apply_delivered([Delivered(EVENTS_SHARD, "1", MetricEvent("mev", 5, now))], now)
    generations = Generations(dynamodb, TABLE)
    assert store.sum(generations.physical("mev"), now + 1, 3_600_000) == 5
    assert MetricDeletion(store).delete("mev", now + 2)
    assert store.sum(generations.physical("mev"), now + 3, 3_600_000) == 0
    store.apply_delivered([Delivered(EVENTS_SHARD, "2", MetricEvent("mev", 7, now + 4))], now + 4)
    assert generations.physical("mev") == keys.metric_physical("mev", 1)
    assert store.sum(generations.physical("mev"), now + 5, 3_600_000) == 7


@pytest.mark.pure
@given(st.integers(0, keys.SUM_WRITE_SHARDS - 1), st.integers(0, keys.SUM_WRITE_SHARDS - 1), st.integers(0, 3))
def test_posts_to_other_sub_total_shards_share_no_item_not_even_the_incarnations(a: int, b: int, gen: int) -> None:
    """Two transactions that hold one item conflict, a ConditionCheck's item too: a post checks its own shard's copy
    of the incarnation, so that posts to one key conflict no more than their sub-totals do, and a DELETE bumps
    every copy."""
    writes = SumWrites(client=None, table="t")
    physical = keys.metric_physical("k", gen)

    def item_key(operation: dict[str, Any]) -> str:
        (request,) = operation.values()
        key = request.get("Key") or {name: request["Item"][name] for name in ("pk", "sk")}
        return json.dumps(key, sort_keys=True)

    def touched(shard: int, event_id: str) -> set[str]:
        transaction = writes.post_transaction(physical, 5, 1_000, event_id, shard, gen=gen, logical="k")
        return {item_key(operation) for operation in transaction["TransactItems"]}

    first, second = touched(a, "e1"), touched(b, "e2")
    if a != b:
        assert not first & second
    bumped = {item_key(operation) for operation in Generations(None, "t").bump("k", gen)}
    assert len(bumped) == keys.SUM_WRITE_SHARDS and all(bumped & touched(s, "e3") for s in range(keys.SUM_WRITE_SHARDS))
