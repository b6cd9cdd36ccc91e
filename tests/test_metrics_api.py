"""Last-hour sums over HTTP and through compaction, on either backend, with an injected clock."""

from __future__ import annotations

import json
import random
import threading
import uuid
from typing import Any

import pytest

from chalicelib.edge.errors import Busy
from chalicelib.metrics import compaction
from chalicelib.metrics import window as w
from chalicelib.metrics.store import SumStore
from chalicelib.metrics.writes import POST_ATTEMPTS
from chalicelib.pure import clock
from chalicelib.storage import keys
from tests.conftest import TABLE, Api, assert_error
from tests.conftest import ok as body

T0_MS = 1_700_000_000_000 + 12_345  # mid-minute, mid-second
HOUR_MS = 3_600_000


def at(ms: int) -> None:
    clock.set_source(lambda: ms / 1000)


def get_sum(api: Api, key: str, window: int | None = None) -> int:
    query = "" if window is None else f"?window={window}"
    result = body(api.get(f"/metric/{key}/sum{query}"))
    assert set(result) == {"value"} and type(result["value"]) is int
    return int(result["value"])


def sum_items(dynamodb: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": TABLE}
    while True:
        page = dynamodb.scan(**request)
        items += [i for i in page["Items"] if i["pk"]["S"].startswith("SUM")]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def store(dynamodb: Any) -> SumStore:
    return SumStore(dynamodb, TABLE, random.Random(3))


# --- the HTTP contract -----------------------------------------------------------


def test_post_then_sum(api: Api) -> None:
    at(T0_MS)
    response = api.post("/metric/cpu.load:eu-1_A/", {"value": 30})  # trailing slash accepted
    assert response.status_code == 200 and json.loads(response.body) == {}
    assert response.headers["Content-Type"] == "application/json"
    for x in (370, 0.4):
        assert api.post("/metric/cpu.load:eu-1_A", {"value": x}).status_code == 200
    at(T0_MS + 1000)
    assert get_sum(api, "cpu.load:eu-1_A") == 400
    assert body(api.get("/metric/cpu.load:eu-1_A/sum/")) == {"value": 400}
    assert get_sum(api, "never-posted") == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2.5, 3), (-2.5, -3), (0.5, 1), (-0.5, -1), (1.4999, 1), (0.49999999999999994, 0), (10**15, 10**15), (-7, -7)],
)
def test_values_are_rounded_half_away_from_zero(api: Api, dynamodb: Any, value: float, expected: int) -> None:
    at(T0_MS)
    assert api.post("/metric/r", {"value": value}).status_code == 200
    assert get_sum(api, "r") == expected
    events = [i for i in sum_items(dynamodb) if i["pk"]["S"].startswith("SUMEV#")]
    assert [int(e["v"]["N"]) for e in events] == [expected]


@pytest.mark.parametrize(
    "raw",
    [
        '{"value": "3"}',
        '{"value": true}',
        '{"value": false}',
        '{"value": null}',
        '{"value": NaN}',
        '{"value": Infinity}',
        '{"value": [1]}',
        '{"value": {"n": 1}}',
        '{"value": 1e16}',
        '{"value": 1000000000000001}',
        '{"other": 1}',
        "{}",
        "[1]",
        "3",
        "not json",
        "",
    ],
)
def test_bad_values_are_400_and_store_nothing(api: Api, dynamodb: Any, raw: str) -> None:
    assert_error(api.post("/metric/k", raw), 400)
    assert sum_items(dynamodb) == []


@pytest.mark.parametrize("key", ["a%23b", "a%20b", "x" * 129, "caf%C3%A9", "a%2Fb"])
def test_bad_keys_are_400(api: Api, dynamodb: Any, key: str) -> None:
    response = api.post(f"/metric/{key}", {"value": 1})
    assert response.status_code in (400, 404), response.body  # a slash makes another path: 404
    assert_error(response, response.status_code)
    assert sum_items(dynamodb) == []
    assert_error(api.get(f"/metric/{key}/sum"), response.status_code)


@pytest.mark.parametrize("window", ["0", "86401", "-1", "abc", "1.5", "", "3600x"])
def test_bad_window_is_400(api: Api, window: str) -> None:
    error = assert_error(api.get(f"/metric/k/sum?window={window}"), 400)
    assert error["field"] == "window"
    assert_error(api.get(f"/metric/k/minutes?window={window}"), 400)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("-1", "window: input should be greater than or equal to 1"),
        ("9" * 30, "window: input should be less than or equal to 86400"),
        ("-" + "9" * 30, "window: input should be greater than or equal to 1"),
        ("+5", "window: must be a whole number"),
    ],
)
def test_a_bad_window_is_told_what_is_wrong(api: Api, window: str, message: str) -> None:
    # A whole number out of range is answered with its bound; only what is not a whole number is called that.
    assert assert_error(api.get(f"/metric/k/sum?window={window}"), 400)["message"] == message


def test_window_bounds_accepted(api: Api) -> None:
    at(T0_MS)
    api.post("/metric/b", {"value": 5})
    assert get_sum(api, "b", 1) == 5
    assert get_sum(api, "b", 86_400) == 5


def test_window_boundary_at_millisecond_precision(api: Api) -> None:
    now = T0_MS
    for t, v in [(now - HOUR_MS, 1), (now - HOUR_MS + 1, 10), (now - 1, 100), (now, 1000), (now + 1, 10_000)]:
        at(t)
        api.post("/metric/edge", {"value": v})
    at(now)
    assert get_sum(api, "edge") == 10 + 100 + 1000  # now - window excluded, now included, the future not yet
    at(now + 1)
    assert get_sum(api, "edge") == 100 + 1000 + 10_000
    at(now)
    assert get_sum(api, "edge", 1) == 100 + 1000  # (now - 1000 ms, now]


def test_minutes_series(api: Api) -> None:
    minute = w.minute_of(T0_MS)
    for offset_min, v in [(0, 5), (0, 6), (-1, 7), (-30, 8), (-60, 9), (-61, 100)]:
        at(T0_MS + offset_min * w.MINUTE_MS)
        api.post("/metric/series", {"value": v})
    at(T0_MS)
    series = body(api.get("/metric/series/minutes"))["minutes"]
    assert len(series) == 61
    assert series[-1] == {"minute": clock.iso(minute * w.MINUTE_MS), "value": 11}
    assert series[-2]["value"] == 7 and series[-31]["value"] == 8 and series[0]["value"] == 9
    assert sum(p["value"] for p in series) == 11 + 7 + 8 + 9


# --- the same sum whatever compaction did ----------------------------------------

NOW = T0_MS + 5 * HOUR_MS
EDGE = NOW + w.MINUTE_MS - (NOW % w.MINUTE_MS) - 1  # the last millisecond of NOW's minute
QUERIES = [
    (NOW, 1),
    (NOW, 61),
    (NOW, 3600),
    (NOW, 86_400),
    (NOW + 777, 59),
    (NOW + 777, 3599),
    (EDGE, 60),
    (EDGE, 7200),
]
LOOKBACK = 75  # minutes: the scenario's last ~70; the events of 2 h ago stay uncompacted (read from sub-totals)


def scenario(store: SumStore) -> list[tuple[int, int]]:
    """~60 events over the last ~70 minutes, some exactly on window edges, some dated 2 h and 25 h ago."""
    rng = random.Random(11)
    events = [(NOW - 4_200_000 + i * 70_017, rng.randint(-1000, 1000)) for i in range(60)]
    events += [(NOW - HOUR_MS, 3), (NOW - HOUR_MS + 1, 5), (NOW, 7), (NOW - 60_000, 11), (NOW - 59_999, 13)]
    events += [(NOW - 2 * HOUR_MS + k, 17) for k in range(3)] + [(NOW - 25 * HOUR_MS, 19)]
    for t, v in events:
        store.post("hot", v, t)
    store.post("other", 1_000_000, NOW - 1000)
    return events


def expected(events: list[tuple[int, int]], now: int, window_s: int) -> int:
    return sum(v for t, v in events if now - window_s * 1000 < t <= now)


def all_sums(api: Api) -> list[int]:
    sums = []
    for now, window in QUERIES:
        at(now)
        sums.append(get_sum(api, "hot", window))
    return sums


def buckets(dynamodb: Any) -> list[dict[str, Any]]:
    """The minute state items compaction wrote a bucket into."""
    return [i for i in sum_items(dynamodb) if i["pk"]["S"].startswith("SUMB#") and "total" in i]


def is_bucket_write(request: dict[str, Any]) -> bool:
    return request["Key"]["pk"]["S"].startswith("SUMB#") and "#total" in request["UpdateExpression"]


def test_sum_is_the_same_before_and_after_compaction_run_once_or_twice(
    api: Api, store: SumStore, dynamodb: Any
) -> None:
    events = scenario(store)
    truth = [expected(events, now, window) for now, window in QUERIES]
    assert all_sums(api) == truth  # compaction never ran: sub-totals and raw edge seconds only
    first = compaction.compact(store, NOW, lookback=LOOKBACK)
    assert first.written > 40 and first.existing == 0  # it did compact (so the next line can fail)
    assert all_sums(api) == truth
    second = compaction.compact(store, NOW, lookback=LOOKBACK)
    assert (second.written, second.existing, second.minutes) == (0, 0, [])  # every minute is done
    assert all_sums(api) == truth
    # A later run seals the minutes that finished meanwhile; sums at the earlier instants do not move.
    later = compaction.compact(store, NOW + 10 * w.MINUTE_MS, lookback=LOOKBACK)
    assert later.minutes and all_sums(api) == truth


class CrashingClient:
    """Delegates to a real client; raises after `limit` bucket writes (a compaction dying halfway)."""

    def __init__(self, client: Any, limit: int) -> None:
        self._client = client
        self.limit = limit
        self.buckets = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        if is_bucket_write(kwargs):
            if self.buckets >= self.limit:
                raise ConnectionError("simulated crash")
            self.buckets += 1
        return self._client.update_item(**kwargs)


def test_sum_is_the_same_after_a_compaction_that_crashed_halfway(api: Api, store: SumStore, dynamodb: Any) -> None:
    events = scenario(store)
    truth = [expected(events, now, window) for now, window in QUERIES]
    crashing = SumStore(CrashingClient(dynamodb, limit=23), TABLE)
    with pytest.raises(ConnectionError):
        compaction.compact(crashing, NOW, lookback=LOOKBACK)
    assert len(buckets(dynamodb)) == 23
    assert all_sums(api) == truth
    resumed = compaction.compact(store, NOW, lookback=LOOKBACK)
    assert resumed.written > 0 and resumed.existing == 0  # the crashed minute was redone; its bucket kept
    assert all_sums(api) == truth


class RendezvousClient(CrashingClient):
    """Holds each run at its first bucket write until the other run gets there too: a true overlap."""

    def __init__(self, client: Any, barrier: threading.Barrier) -> None:
        super().__init__(client, limit=10**9)
        self.barrier = barrier

    def update_item(self, **kwargs: Any) -> Any:
        if is_bucket_write(kwargs) and self.buckets == 0:
            self.barrier.wait(timeout=300)
        return super().update_item(**kwargs)


@pytest.mark.heavy
def test_two_overlapping_compactions(api: Api, store: SumStore, dynamodb: Any) -> None:
    events = scenario(store)
    truth = [expected(events, now, window) for now, window in QUERIES]
    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def run() -> None:
        reports.append(compaction.compact(SumStore(RendezvousClient(dynamodb, barrier), TABLE), NOW, lookback=LOOKBACK))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert len(reports) == 2
    written = sum(r.written for r in reports)
    assert written == len(buckets(dynamodb)) and written + sum(r.existing for r in reports) == 2 * written
    assert all_sums(api) == truth


@pytest.mark.heavy
def test_sum_is_the_same_with_expired_items_present_or_deleted(api: Api, store: SumStore, dynamodb: Any) -> None:
    """moto never deletes TTL-expired items; here they are deleted by hand, as DynamoDB would, days late."""
    events = scenario(store)
    later = NOW + w.RETENTION_S * w.SECOND_MS + HOUR_MS  # every scenario item has expired by now
    recent = [(later - k * 7_001, k) for k in range(20)]
    for t, v in recent:
        store.post("hot", v, t)
    compaction.compact(store, NOW, lookback=LOOKBACK)
    compaction.compact(store, later, lookback=30)
    queries = [(later, window) for window in (1, 60, 3600, 86_400)] + [(later + 2 * w.MINUTE_MS, 86_400)]

    def sums() -> list[int]:
        result = []
        for now, window in queries:
            at(now)
            result.append(get_sum(api, "hot", window))
        return result

    truth = [expected(events + recent, now, window) for now, window in queries]
    assert sums() == truth  # expired items still there (moto; DynamoDB before its sweep)
    expired = [i for i in sum_items(dynamodb) if int(i["expires_at"]["N"]) < later // 1000]
    assert len(expired) > 150
    for item in expired:
        dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    assert sums() == truth


def test_scheduled_compaction_runs_as_lambda(client: Any, store: SumStore, dynamodb: Any) -> None:
    at(NOW)
    scenario(store)
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:rule/compact"]
    )
    result = client.lambda_.invoke("compact_sums", event)
    assert result.payload["written"] > 0
    assert result.payload["minutes"][-1] == w.sealable_through(NOW)
    again = client.lambda_.invoke("compact_sums", event)
    assert result.payload["rollup"]["written"] == 0  # no hour holding values is final yet
    rolled = {"hours": [], "days": [], "written": 0}
    assert again.payload == {"minutes": [], "written": 0, "existing": 0, "stopped": False, "rollup": rolled}


def test_posts_leave_the_sub_total_shape_the_benchmark_builds(store: SumStore, dynamodb: Any) -> None:
    t = T0_MS
    for dt, v in [(0, 5), (1000, -2), (1001, 9), (20_000, 4)]:
        store.post("shape", v, t + dt, shard=2)
    key = {"pk": {"S": keys.sum_sub_pk("shape")}, "sk": {"S": keys.sum_sub_sk(w.minute_of(t), 2)}}
    stored = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    s = w.second_of(t)
    built = store.sub_total_item("shape", w.minute_of(t), 2, 16, 4, {s: 5, s + 1: 7, s + 20: 4}, w.Extremes(-2, 9))

    def normal(item: dict[str, Any]) -> dict[str, str | int]:
        return {k: (v["S"] if "S" in v else int(v["N"])) for k, v in item.items()}

    assert normal(stored) == normal(built)


def test_a_post_is_one_transaction_applied_once(store: SumStore, dynamodb: Any) -> None:
    """Event and sub-total are written together, and a resent post (same event id) changes nothing."""
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    first, second = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]  # DynamoDB Local remembers tokens for 10 min
    store.post("once", 5, T0_MS, event_id=first)
    assert calls[-1] == "TransactWriteItems" and "UpdateItem" not in calls
    store.post("once", 5, T0_MS, event_id=first)  # a retry of the same post (on another shard, likely)
    store.post("once", 6, T0_MS + 1, event_id=second)
    assert store.sum("once", T0_MS + 1, 60_000) == 11
    assert sorted(int(i["n"]["N"]) for i in sum_items(dynamodb) if i["pk"]["S"] == keys.sum_sub_pk("once")) in (
        [2],
        [1, 1],
    )


class ConflictingClient(CrashingClient):
    """Cancels the first `conflicts` transactions as DynamoDB does when another one holds the sub-total item."""

    def __init__(self, client: Any, conflicts: int) -> None:
        super().__init__(client, limit=10**9)
        self.conflicts = conflicts
        self.shards: list[str] = []

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.shards.append(kwargs["TransactItems"][1]["Update"]["Key"]["sk"]["S"])
        if len(self.shards) <= self.conflicts:
            raise self._client.exceptions.TransactionCanceledException(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )
        return self._client.transact_write_items(**kwargs)


def test_conflicting_posts_are_retried_then_busy(api: Api, dynamodb: Any) -> None:
    retried = ConflictingClient(dynamodb, conflicts=3)
    SumStore(retried, TABLE, random.Random(5)).post("busy", 4, T0_MS)
    assert len(retried.shards) == 4 and len(set(retried.shards)) > 1  # each attempt draws a shard anew
    assert SumStore(dynamodb, TABLE).sum("busy", T0_MS, 60_000) == 4
    hopeless = ConflictingClient(dynamodb, conflicts=10**9)
    with pytest.raises(Busy):
        SumStore(hopeless, TABLE).post("busy", 100, T0_MS)
    assert len(hopeless.shards) == POST_ATTEMPTS
    assert SumStore(dynamodb, TABLE).sum("busy", T0_MS, 60_000) == 4  # nothing of the failed post was stored


def test_a_day_of_uncompacted_minutes_costs_a_few_queries(store: SumStore, dynamodb: Any) -> None:
    """Never compacted: a 24 h sum reads sub-totals in a bounded number of Queries, not one per minute."""
    for k in range(0, 1440, 37):
        store.post("day", k, NOW - k * w.MINUTE_MS)
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    assert store.sum("day", NOW, 86_400_000) == sum(range(0, 1440, 37))
    assert calls.count("Query") <= 3 + 2 * 4  # buckets, done, raw edge + two rounds of at most MAX_RUNS


def test_metrics_page_is_served(api: Api) -> None:
    response = api.get("/ui/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    script = api.get("/assets/metrics.js").body.decode()
    assert '<script src="../assets/metrics.js">' in page and "<svg" in page
    assert "`metric/${key()}/sum`" in script and "/minutes?window=3600" in script
