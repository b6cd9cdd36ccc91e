"""Metric history (GET /metric/{key}/series, rollups in the scheduled compaction), on either backend, with an injected
clock: direct posts, stream values (fresh and late, through the app's consumer), compaction, rollups that crash, run
twice and catch up; every point must equal the values posted in it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from chalicelib.ingest.records import Event, MetricEvent
from chalicelib.metrics import compaction, rollup, rollup_run, rollup_store
from chalicelib.metrics.rollup import DAY_MS, HOUR_MS, MINUTE_MS, Bucket
from chalicelib.metrics.rollup_store import RollupStore
from chalicelib.metrics.store import SumStore
from chalicelib.pure import clock
from chalicelib.pure.ranges import RangeRefused
from chalicelib.storage import keys
from tests.conftest import TABLE, Api, assert_error, partition_items
from tests.conftest import ok as body
from tests.test_ingest_consumer import consume

D0 = 20_000 * DAY_MS  # a day's start (2024-10-04)
TIERS = rollup.Retention(48 * HOUR_MS, 90 * DAY_MS, 1_826 * DAY_MS)


def at(ms: int) -> None:
    clock.set_source(lambda: ms / 1000)


class CrashingClient:
    """Delegates to a real client; raises once `limit` rollup buckets are written (a rollup dying half-way)."""

    def __init__(self, client: Any, limit: int) -> None:
        self._client = client
        self.limit = limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **kwargs: Any) -> Any:
        result = self._client.put_item(**kwargs)
        if kwargs["Item"]["pk"]["S"].startswith("SUMR#"):
            self.limit -= 1
            if self.limit == 0:
                raise ConnectionError("simulated crash")  # after the write: a bucket without its done marker
        return result


def points(rollups: RollupStore, key: str, first: int, end: int, step_s: int, now: int) -> list[Bucket]:
    span = rollup.series_range(first, end, step_s, now, TIERS)
    return rollup_store.series(rollups, key, span, now, with_sketch=True)


def truth(values: list[tuple[int, int]], first: int, end: int, step_s: int) -> list[Bucket]:
    step = step_s * 1000
    return [Bucket.of([v for t, v in values if a <= t < a + step]) for a in range(first, end, step)]


def test_every_point_is_exact_through_late_values_crashes_and_repeated_rollups(client: Any, dynamodb: Any) -> None:
    store = SumStore(dynamodb, TABLE, random.Random(5))
    rollups = RollupStore(store, TIERS)
    posted: dict[str, list[tuple[int, int]]] = {"k": [], "late-only": []}

    def post(t: int, value: int) -> None:
        store.post("k", value, t)
        posted["k"].append((t, value))

    def stream(applied_at: int, events: list[tuple[str, int, int]]) -> None:
        at(applied_at)
        batch: list[Event] = [MetricEvent(key, v, t) for key, t, v in events]
        assert consume(client, [(stream.n, batch)]) == []  # type: ignore[attr-defined]
        stream.n += 1  # type: ignore[attr-defined]
        for key, t, v in events:
            posted[key].append((t, v))

    stream.n = 0  # type: ignore[attr-defined]
    for i in range(10):
        post(D0 + 10 * MINUTE_MS + i * 7_000, i * 10 - 20)
        post(D0 + 90 * MINUTE_MS + i * 1_000, 1_000 + i)
    stream(D0 + 11 * MINUTE_MS, [("k", D0 + 10 * MINUTE_MS + 500, 7), ("k", D0 + 10 * MINUTE_MS + 600, 9)])
    compaction.compact(store, D0 + 13 * MINUTE_MS)  # seals minute 10: later values of it are late values
    post(D0 + 30 * HOUR_MS, 5)  # the next day
    # 23 h later: late values into the sealed minute, and into minutes compaction never listed (a key with no other
    # values: only the consumer lists it for the rollup).
    late_at = D0 + 23 * HOUR_MS
    stream(late_at, [("k", D0 + 10 * MINUTE_MS + 3_000, 11), ("late-only", D0 + 125 * MINUTE_MS, 4)])
    stream(late_at, [("late-only", D0 + 23 * HOUR_MS - 1, -3), ("k", D0 + 59 * MINUTE_MS, 1_000_000)])

    def assert_exact(now: int) -> None:
        for key, values in posted.items():
            for first, end, step in ((D0, D0 + 2 * DAY_MS, 86_400), (D0, D0 + 48 * HOUR_MS, 3_600)):
                assert points(rollups, key, first, end, step, now) == truth(values, first, end, step), (key, step)
            if now - D0 <= 48 * HOUR_MS:
                first, end = D0 + 5 * MINUTE_MS, D0 + 3 * HOUR_MS
                for step in (60, 300):
                    assert points(rollups, key, first, end, step, now) == truth(values, first, end, step)

    assert_exact(late_at + MINUTE_MS)  # nothing rolled up: every point from minutes
    assert rollup_run.roll_up(rollups, late_at + MINUTE_MS).written == 0  # nothing is final yet

    now = D0 + 36 * HOUR_MS  # hours 0..10 of the first day are final
    with pytest.raises(ConnectionError):
        rollup_run.roll_up(RollupStore(SumStore(CrashingClient(dynamodb, 2), TABLE), TIERS), now)
    hour0 = D0 // HOUR_MS
    assert len(partition_items(dynamodb, keys.sum_rollup_pk("k"))) == 2  # hours 0 and 1 of k
    assert rollups.done(rollup.HOUR, hour0, hour0 + 10) == {hour0}  # hour 1's bucket is written, not its marker
    assert_exact(now)
    done = rollup_run.roll_up(rollups, now)
    assert done.hours == list(range(hour0 + 1, hour0 + 11)) and done.written == 1  # late-only's hour 2
    assert rollups.done(rollup.HOUR, hour0, hour0 + 10) == set(range(hour0, hour0 + 11))
    assert_exact(now)
    assert rollup_run.roll_up(rollups, now).written == 0  # run twice: nothing more

    now = D0 + 50 * HOUR_MS  # the rest of the first day is final: its hours, then the day
    rolled = rollup_run.roll_up(rollups, now)
    assert rolled.days == [D0 // DAY_MS] and rolled.written == 3  # late-only's hour 22, both keys' day
    assert_exact(now)
    day = rollups.buckets("k", rollup.DAY, D0 // DAY_MS, D0 // DAY_MS, with_sketch=True)[D0 // DAY_MS]
    assert day == Bucket.of([v for t, v in posted["k"] if t < D0 + DAY_MS])
    with pytest.raises(RangeRefused):  # minutes are past their retention now
        points(rollups, "k", D0, D0 + HOUR_MS, 60, now)


def test_series_over_http(api: Api) -> None:
    now = D0 + 2 * HOUR_MS + 30_000
    for i, value in enumerate((5, 15, 10, 1000)):
        at(D0 + HOUR_MS + i * 1000)
        body(api.post("/metric/lat/", {"value": value}))
    at(now)
    answer = body(
        api.get("/metric/lat/series?from=2024-10-04T00:30:00Z&to=2024-10-04T03:00:00%2B01:00&step=3600&q=0.5,1")
    )
    assert answer["key"] == "lat" and answer["step"] == 3600
    empty = {"count": 0, "sum": None, "min": None, "max": None, "mean": None, "quantiles": {"0.5": None, "1": None}}
    assert answer["points"] == [
        {"at": "2024-10-04T00:00:00.000Z", **empty},
        {
            "at": "2024-10-04T01:00:00.000Z",
            "count": 4,
            "sum": 1030,
            "min": 5,
            "max": 1000,
            "mean": 257.5,
            "quantiles": {"0.5": pytest.approx(10, rel=0.01), "1": 1000},
        },
    ]
    minutes = body(api.get("/metric/lat/series?from=2024-10-04T01:00:00Z&to=2024-10-04T01:03:00Z&step=60"))
    assert [p["count"] for p in minutes["points"]] == [4, 0, 0] and "quantiles" not in minutes["points"][0]


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("from=2024-10-04T02:00:00Z&to=2024-10-04T01:00:00Z&step=60", "invalid_range", "from"),
        ("from=2024-10-04T01:00:00Z&to=2024-10-04T02:00:00Z&step=61", "invalid_input", "step"),
        ("from=2024-10-04T01:00:00Z&to=2024-10-04T02:00:00Z&step=x", "invalid_input", "step"),
        ("from=2024-10-02T00:00:00Z&to=2024-10-04T02:00:00Z&step=60", "invalid_range", "to"),  # > 1,500 points
        ("from=2024-10-01T00:00:00Z&to=2024-10-01T01:00:00Z&step=300", "invalid_range", "from"),  # past 48 h
        ("from=2024-02-30T00:00:00Z&to=2024-10-04T01:00:00Z&step=86400", "invalid_range", "from"),  # no such day
        ("from=yesterday&to=2024-10-04T01:00:00Z&step=60", "invalid_input", "from"),
        ("from=2024-10-04T01:00:00&to=2024-10-04T02:00:00Z&step=60", "invalid_input", "from"),  # no zone
        ("to=2024-10-04T02:00:00Z&step=60", "invalid_input", "from"),
        ("from=2024-10-04T01:00:00Z&to=2024-10-04T02:00:00Z&step=60&q=2", "invalid_input", "q"),
    ],
)
def test_refused_series_name_the_field(api: Api, query: str, code: str, field: str) -> None:
    at(D0 + 2 * HOUR_MS)
    error = assert_error(api.get(f"/metric/k/series?{query}"), 400, code)
    assert error["field"] == field
