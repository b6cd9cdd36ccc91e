"""Metric events from the stream (SumStore.apply_delivered): aggregated per key-minute, counted at their own time,
exactly once, and exact when they come after their minute was sealed. Injected clock (the now_ms parameters)."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from chalicelib.ingest.records import Delivered, MetricEvent
from chalicelib.metrics import batch, compaction
from chalicelib.metrics import window as w
from chalicelib.metrics.store import SumStore
from chalicelib.metrics.writes import TooOld
from chalicelib.process import settings
from chalicelib.pure.sketch import Sketch
from chalicelib.storage import keys
from tests.conftest import TABLE, partition_items

MINUTE = 28_333_333  # a minute (epoch minutes), mid-2023
T0 = MINUTE * w.MINUTE_MS
HOUR_MS = 3_600_000
SHARD = "shardId-000000000000"


def delivered(events: list[tuple[int, int]], key: str = "k", shard: str = SHARD, first: int = 1) -> list[Delivered]:
    """One record per (time, value), sequence numbers first, first + 1, ..."""
    return [Delivered(shard, str(first + i), MetricEvent(key, v, t)) for i, (t, v) in enumerate(events)]


def truth(events: list[tuple[int, int]], now: int, window_ms: int) -> int:
    return sum(v for t, v in events if now - window_ms < t <= now)


def minutes_truth(events: list[tuple[int, int]], now: int, window_ms: int) -> list[tuple[int, int]]:
    return [(m, sum(v for t, v in events if w.minute_of(t) == m)) for m in w.minutes_overlapping(now, window_ms)]


@pytest.fixture
def store(dynamodb: Any) -> SumStore:
    return SumStore(dynamodb, TABLE, random.Random(7))


class Calls:
    """Every DynamoDB call the client makes (operation name, parameters), from a botocore hook."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("provide-client-params.dynamodb", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, params))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [params for op, params in self.calls if op == name]


def updated(calls: Calls) -> list[str]:
    """The partitions of the items each UpdateItem wrote, in order."""
    return [params["Key"]["pk"]["S"] for params in calls.named("UpdateItem")]


def put(calls: Calls) -> list[str]:
    """The partitions of the items each PutItem wrote, in order."""
    return [params["Item"]["pk"]["S"] for params in calls.named("PutItem")]


# --- aggregation -----------------------------------------------------------------


def test_a_batch_of_one_key_minute_is_one_conditional_update(store: SumStore, dynamodb: Any) -> None:
    events = [(T0 + 17 + i * 37, i - 400) for i in range(1_000)]  # 1,000 values over ~37 s of one minute
    calls = Calls(dynamodb)
    store.apply_delivered(delivered(events), T0 + w.MINUTE_MS)
    assert not calls.named("TransactWriteItems")
    [update] = calls.named("UpdateItem")  # sums, sketch and marker of 1,000 values: one write
    assert update["Key"]["sk"]["S"] == keys.sum_stream_sk(MINUTE) and "#sealed" in update["ConditionExpression"]
    seconds = len({w.second_of(t) for t, _ in events})
    partitions = put(calls)
    assert partitions[0].startswith("SUMDIRTY#")  # listed for compaction, before anything is added
    assert partitions[1:] == [keys.sum_event_pk("k", MINUTE, 0)] * -(-seconds // 2)  # a packed item per 2 s
    now = T0 + w.MINUTE_MS - 1
    for window_ms in (1, 999, 1_000, 7_777, 60_000, HOUR_MS):
        assert store.sum("k", now, window_ms) == truth(events, now, window_ms)


def test_each_key_minute_and_shard_is_its_own_transaction(store: SumStore, dynamodb: Any) -> None:
    a = delivered([(T0 + 5, 1), (T0 + 61_000, 2), (T0 + 6, 4)], key="a")
    b = delivered([(T0 + 7, 8)], key="b", first=10)
    other = delivered([(T0 + 8, 16)], key="a", shard="shardId-000000000001")
    calls = Calls(dynamodb)
    store.apply_delivered(a + b + other, T0 + w.MINUTE_MS)
    # a@M, a@M+1, b@M, and a@M from the other shard: the same stream item, its own marker (two writers of one item
    # may meet: the one that read it before the other wrote tries again)
    written = {
        (u["Key"]["pk"]["S"], u["Key"]["sk"]["S"], u["ExpressionAttributeNames"]["#applied"])
        for u in calls.named("UpdateItem")
    }
    assert written == {
        (keys.sum_sub_pk("a"), keys.sum_stream_sk(MINUTE), "applied#" + SHARD),
        (keys.sum_sub_pk("a"), keys.sum_stream_sk(MINUTE + 1), "applied#" + SHARD),
        (keys.sum_sub_pk("b"), keys.sum_stream_sk(MINUTE), "applied#" + SHARD),
        (keys.sum_sub_pk("a"), keys.sum_stream_sk(MINUTE), "applied#shardId-000000000001"),
    }
    assert store.sum("a", T0 + 2 * w.MINUTE_MS, HOUR_MS) == 1 + 2 + 4 + 16
    assert store.sum("b", T0 + 2 * w.MINUTE_MS, HOUR_MS) == 8


def test_a_second_with_more_values_than_an_item_holds(store: SumStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Packed items split into chunks, written once: a replay of the whole batch changes nothing."""
    monkeypatch.setattr(batch, "PACK_MAX", 3)
    events = [(T0 + 500 + (i % 70) * 850, i) for i in range(400)]  # 70 instants over 59 s, ~6 values a second
    records = delivered(events)
    assert len(batch.packs(records)) > 2 * 60
    now = T0 + w.MINUTE_MS - 1
    store.apply_delivered(records, now)
    store.apply_delivered(records, now)
    for window_ms in (1, 1_234, 30_000, HOUR_MS):
        assert store.sum("k", now, window_ms) == truth(events, now, window_ms)


# --- exactly once ----------------------------------------------------------------


def test_redelivered_and_overlapping_batches_apply_once(store: SumStore, dynamodb: Any) -> None:
    events = [(T0 + i * 977, i * 3 - 50) for i in range(120)]  # two minutes
    records = delivered(events)
    now = T0 + 2 * w.MINUTE_MS
    store.apply_delivered(records[:50], now)
    store.apply_delivered(records[:50], now)  # the same batch again (a retry after a lost answer)
    store.apply_delivered(records[30:90], now)  # a retry from a failed record, overlapping what was applied
    store.apply_delivered(records[60:], now)
    store.apply_delivered(records, now)  # the whole history replayed
    for window_ms in (1_000, 61_000, HOUR_MS):
        assert store.sum("k", now, window_ms) == truth(events, now, window_ms)
    assert store.minutes("k", now, HOUR_MS) == minutes_truth(events, now, HOUR_MS)
    items = dynamodb.scan(TableName=TABLE)["Items"]
    fresh = [int(i.get("n", {"N": 0})["N"]) for i in items if i["pk"]["S"].startswith("SUMSUB#")]
    late = [int(i.get("ln", {"N": 0})["N"]) for i in items if i["pk"]["S"].startswith("SUMB#")]
    assert sum(fresh) + sum(late) == 120 and sum(late) > 0  # the first minute was past its listing: late values
    assert store.quantile_sketch("k", now, HOUR_MS) == Sketch.of(v for _, v in events)  # every bin once too


def test_several_events_of_one_record_apply_together(store: SumStore) -> None:
    """A record carries several events (one request's, one key): its marker is shared, all apply or none."""
    record = [Delivered(SHARD, "5", MetricEvent("k", v, T0 + v)) for v in (1, 2, 3)]
    store.apply_delivered(record, T0 + w.MINUTE_MS)
    store.apply_delivered(record[1:], T0 + w.MINUTE_MS)  # part of an applied record: already in
    assert store.sum("k", T0 + w.MINUTE_MS, HOUR_MS) == 6


# --- event time --------------------------------------------------------------------


BACKLOG_MINUTES = 20


def live_minutes(rng: random.Random) -> list[tuple[int, int]]:
    return sorted((T0 + rng.randrange(BACKLOG_MINUTES * w.MINUTE_MS), rng.randint(-1000, 1000)) for _ in range(120))


@pytest.mark.heavy
def test_an_hour_old_backlog_gives_the_same_sums_and_minutes_as_live_posts(store: SumStore) -> None:
    """ "live" is posted as it happens while compaction runs every minute; "backlog" is the same events from the
    stream, applied an hour after the last of them in one batch, after compaction sealed every one of their
    minutes."""
    events = live_minutes(random.Random(5))
    span = BACKLOG_MINUTES * w.MINUTE_MS
    pending = list(events)
    for minute in range(MINUTE, MINUTE + BACKLOG_MINUTES + 1):
        now = (minute + 1) * w.MINUTE_MS
        while pending and pending[0][0] < now:
            t, v = pending.pop(0)
            store.post("live", v, t)
        store.post("backlog", 0, now - 1)  # the key has values every minute, so each minute gets sealed
        compaction.compact(store, now + w.SEAL_LAG_MS)
    end = T0 + span + 2 * w.MINUTE_MS
    store.apply_delivered(delivered(events, key="backlog"), end + HOUR_MS)
    compaction.compact(store, end + HOUR_MS)
    for now in (T0 + span - 1, T0 + span, end, T0 + span // 2 + 123):
        for window_ms in (1_000, 60_000, 900_500, HOUR_MS, 2 * HOUR_MS):
            assert (
                store.sum("backlog", now, window_ms)
                == store.sum("live", now, window_ms)
                == truth(events, now, window_ms)
            )
        assert store.minutes("backlog", now, HOUR_MS) == store.minutes("live", now, HOUR_MS)
        assert store.minutes("live", now, HOUR_MS) == minutes_truth(events, now, HOUR_MS)


def test_values_after_sealing_are_counted_exactly(store: SumStore, dynamodb: Any) -> None:
    early = [(T0 + 1_000 + i * 500, i) for i in range(60)]
    late = [(T0 + 1_250 + i * 700, 100 + i) for i in range(60)]  # the same minute, later in the stream
    records = delivered(early + late)
    store.apply_delivered(records[:60], T0 + w.MINUTE_MS)
    sealed = compaction.compact(store, T0 + w.MINUTE_MS + w.SEAL_LAG_MS)
    assert MINUTE in sealed.minutes and sealed.written == 1
    calls = Calls(dynamodb)
    store.apply_delivered(records, T0 + 10 * w.MINUTE_MS)  # replays the early ones, adds the late ones
    assert updated(calls) == [keys.sum_bucket_pk("k")]  # the late values, in the state item; the stream item is sealed
    store.apply_delivered(records[70:], T0 + 10 * w.MINUTE_MS)  # a late retry: already in
    compaction.compact(store, T0 + 10 * w.MINUTE_MS)
    everything = early + late
    for now in (T0 + 20_000, T0 + 44_444, T0 + w.MINUTE_MS, T0 + 30 * w.MINUTE_MS, T0 + HOUR_MS + 30_000):
        for window_ms in (1, 1_000, 2_500, 30_000, HOUR_MS):
            assert store.sum("k", now, window_ms) == truth(everything, now, window_ms), (now, window_ms)
        assert store.minutes("k", now, HOUR_MS) == minutes_truth(everything, now, HOUR_MS)


class SealThenApply:
    """A client for compaction that, right after sealing the minute, lets a consumer batch apply: the batch lands
    between the seal and compaction's read of the sub-totals."""

    def __init__(self, client: Any, apply: Any) -> None:
        self._client = client
        self.apply = apply
        self.applied = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        result = self._client.update_item(**kwargs)
        if "#sealed" in kwargs["UpdateExpression"] and not self.applied:
            self.applied += 1
            self.apply()
        return result


def test_a_batch_landing_between_seal_and_read_is_counted_once(store: SumStore, dynamodb: Any) -> None:
    first = delivered([(T0 + 100, 1), (T0 + 200, 2)])
    second = delivered([(T0 + 300, 4), (T0 + 400, 8)], first=3)
    store.apply_delivered(first, T0 + w.MINUTE_MS)
    fenced = SealThenApply(dynamodb, lambda: store.apply_delivered(second, T0 + w.MINUTE_MS + w.SEAL_LAG_MS))
    report = compaction.compact(SumStore(fenced, TABLE), T0 + w.MINUTE_MS + w.SEAL_LAG_MS)
    assert fenced.applied == 1 and report.written == 1
    state = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": keys.sum_bucket_pk("k")}, "sk": {"S": keys.sum_minute_sk(MINUTE)}}
    )["Item"]
    assert (int(state["total"]["N"]), int(state["lt"]["N"])) == (3, 12)  # the bucket froze before the batch
    assert store.sum("k", T0 + 5 * w.MINUTE_MS, HOUR_MS) == 15
    assert store.sum("k", T0 + 350, 1_000) == 1 + 2 + 4  # the edge second reads the late batch's packed values
    assert store.minutes("k", T0 + 5 * w.MINUTE_MS, 300_000)[0] == (MINUTE, 15)


class BeforeStreamWrite:
    """A client for the consumer that runs `meanwhile` once, right before its first write of a run to a minute's stream
    item (after it read the item and put the run's packed values): another writer gets in between."""

    def __init__(self, client: Any, meanwhile: Any) -> None:
        self._client = client
        self.meanwhile = meanwhile
        self.ran = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        if (
            not self.ran
            and kwargs["Key"]["sk"]["S"] == keys.sum_stream_sk(MINUTE)
            and "#v" in kwargs.get("ConditionExpression", "")
        ):
            self.ran = True
            self.meanwhile()
        return self._client.update_item(**kwargs)


def assert_exact(store: SumStore, events: list[tuple[int, int]], nows: tuple[int, ...]) -> None:
    """Sums at millisecond precision (edge seconds read packed values), minutes and quantiles, as the events say."""
    for now in nows:
        for window_ms in (1, 250, 1_000, 2_500, 30_000, HOUR_MS):
            assert store.sum("k", now, window_ms) == truth(events, now, window_ms), (now, window_ms)
        assert store.minutes("k", now, HOUR_MS) == minutes_truth(events, now, HOUR_MS)
        covered = [v for t, v in events if w.minute_of(t) in w.minutes_overlapping(now, HOUR_MS)]
        assert store.quantile_sketch("k", now, HOUR_MS) == Sketch.of(covered)


def test_a_seal_between_the_consumers_read_and_write_sends_the_run_to_the_late_values(
    store: SumStore, dynamodb: Any
) -> None:
    """Compaction seals (and compacts) the minute after the consumer read its open stream item: the consumer's write
    fails its "not sealed" condition, and the same run goes to the late values, once. The packed values the refused
    attempt put count nothing."""
    first = delivered([(T0 + 100, 1), (T0 + 1_200, 2)])
    second = delivered([(T0 + 300, 4), (T0 + 1_400, 8), (T0 + 59_000, 16)], first=3)
    store.apply_delivered(first, T0 + w.MINUTE_MS)
    sealing = T0 + w.MINUTE_MS + w.SEAL_LAG_MS
    racing = BeforeStreamWrite(dynamodb, lambda: compaction.compact(store, sealing))
    SumStore(racing, TABLE).apply_delivered(second, T0 + w.MINUTE_MS)  # its clock: the minute is still open
    assert racing.ran
    state = partition_items(dynamodb, keys.sum_bucket_pk("k"))[0]
    assert (int(state["total"]["N"]), int(state["lt"]["N"])) == (3, 28)  # the bucket froze before the run
    events = [(T0 + 100, 1), (T0 + 1_200, 2), (T0 + 300, 4), (T0 + 1_400, 8), (T0 + 59_000, 16)]
    assert_exact(store, events, (T0 + 350, T0 + 1_300, T0 + 1_450, sealing, T0 + HOUR_MS))


def test_two_writers_of_one_stream_item_lose_nothing(store: SumStore, dynamodb: Any) -> None:
    """Another stream shard's run (after a reshard) lands between the consumer's read and its write of the minute's
    stream item: the write is refused (the item moved on), read again and applied on top; no sum, bin or packed
    value is lost or doubled."""
    ours = delivered([(T0 + 100 + i * 97, i) for i in range(20)])
    theirs = delivered([(T0 + 150 + i * 89, 100 + i) for i in range(20)], shard="shardId-000000000001")
    racing = BeforeStreamWrite(dynamodb, lambda: store.apply_delivered(theirs, T0 + w.MINUTE_MS))
    SumStore(racing, TABLE).apply_delivered(ours, T0 + w.MINUTE_MS)
    assert racing.ran
    events = [(batch.metric(d).time_ms, batch.metric(d).value) for d in ours + theirs]
    assert_exact(store, events, (T0 + 777, T0 + 1_234, T0 + 2_000, T0 + w.MINUTE_MS))
    compaction.compact(store, T0 + w.MINUTE_MS + w.SEAL_LAG_MS)
    assert_exact(store, events, (T0 + 777, T0 + w.MINUTE_MS + w.SEAL_LAG_MS))


class CrashAtStreamWrite:
    """A client whose first write to a stream item fails as if the process died: after the run's packed values."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kwargs: Any) -> Any:
        if not self.crashed and kwargs["Key"]["pk"]["S"].startswith("SUMSUB#"):
            self.crashed = True
            raise ConnectionError("simulated crash")
        return self._client.update_item(**kwargs)


def test_packed_values_of_a_crashed_write_count_nothing_and_a_bisected_retry_applies_once(
    store: SumStore, dynamodb: Any
) -> None:
    """The batch's packed values were put, then the write that commits them never happened. Lambda bisects the
    batch: the first half, then the rest, each applied once; the stale packed values never count."""
    events = [(T0 + 2_000 + i * 53, i * 7 - 40) for i in range(40)]  # ~2 s
    records = delivered(events)
    with pytest.raises(ConnectionError):
        SumStore(CrashAtStreamWrite(dynamodb), TABLE).apply_delivered(records, T0 + 10_000)
    assert len(partition_items(dynamodb, keys.sum_event_pk("k", MINUTE, 0))) >= 2  # put, never committed
    assert store.sum("k", T0 + 2_500, 1_000) == 0 and store.sum("k", T0 + 10_000, HOUR_MS) == 0
    store.apply_delivered(records[:20], T0 + 10_000)
    store.apply_delivered(records[:20], T0 + 10_000)  # and again
    store.apply_delivered(records[20:], T0 + 10_000)
    assert_exact(store, events, (T0 + 2_020, T0 + 2_999, T0 + 3_001, T0 + 3_900, T0 + 10_000))


def test_a_batch_too_late_for_the_minutes_listing_goes_to_the_late_values(store: SumStore, dynamodb: Any) -> None:
    """Applied when compaction may already have listed the minute (its key unlisted: no dirty marker yet), a run
    cannot go where compaction folds: the consumer seals the stream item itself and adds to the late values."""
    events = [(T0 + 500, 3), (T0 + 59_500, 5)]
    late_now = (MINUTE + 1) * w.MINUTE_MS + w.SEAL_LAG_MS - w.CLOCK_SKEW_MS  # not listed in time any more
    assert not w.listed_in_time(MINUTE, late_now) and w.listed_in_time(MINUTE, late_now - 1)
    calls = Calls(dynamodb)
    store.apply_delivered(delivered(events), late_now)
    assert not [pk for pk in put(calls) if pk.startswith("SUMDIRTY#")]  # compaction need not list it
    [stream] = partition_items(dynamodb, keys.sum_sub_pk("k"))
    assert "sealed" in stream and "n" not in stream
    assert_exact(store, events, (T0 + 501, T0 + w.MINUTE_MS, late_now))
    compaction.compact(store, late_now + w.MINUTE_MS)
    assert_exact(store, events, (T0 + 501, late_now + w.MINUTE_MS))


@pytest.mark.real_dynamodb
def test_compaction_racing_the_consumer_loses_and_doubles_nothing(store: SumStore, dynamodb: Any) -> None:
    """Real concurrency on DynamoDB Local: a consumer applies small batches of one minute while compactions
    seal it over and over (as overlapping runs would)."""
    rng = random.Random(9)
    events = [(T0 + rng.randrange(w.MINUTE_MS), rng.randint(-99, 99)) for _ in range(400)]
    records = delivered(events)
    sealing_at = T0 + w.MINUTE_MS + w.SEAL_LAG_MS
    reports: list[compaction.Compaction] = []
    started = threading.Barrier(3)

    def compactor() -> None:
        started.wait(60)
        reports.append(compaction.compact(SumStore(dynamodb, TABLE), sealing_at))

    threads = [threading.Thread(target=compactor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for i in range(0, len(records), 10):
        if i == 200:
            started.wait(60)  # two overlapping compactions start halfway through the stream
        store.apply_delivered(records[max(0, i - 5) : i + 10], sealing_at)  # overlapping retries too
    for thread in threads:
        thread.join(120)
    assert len(reports) == 2 and any(MINUTE in r.minutes for r in reports)  # it was sealed while values came
    for now in (T0 + 30_000, T0 + w.MINUTE_MS, T0 + HOUR_MS):
        for window_ms in (1_000, 20_000, HOUR_MS):
            assert store.sum("k", now, window_ms) == truth(events, now, window_ms)


# --- retention -----------------------------------------------------------------------


def test_events_older_than_retention_are_refused_and_the_rest_applied(store: SumStore, dynamodb: Any) -> None:
    now = T0 + 2 * w.RETENTION_MS
    ok = [(now - w.RETENTION_MS, 1), (now - 5, 2), (now - w.RETENTION_MS + 60_000, 4)]
    old = [(now - w.RETENTION_MS - 1, 100), (T0, 200)]
    records = delivered([old[0], ok[0], old[1], ok[1], ok[2]])
    with pytest.raises(TooOld) as refused:
        store.apply_delivered(records, now)
    assert [d.event for d in refused.value.events] == [records[0].event, records[2].event]
    assert store.sum("k", now, w.MAX_WINDOW_S * 1000) == 2 + 4  # now - RETENTION_MS is in no window
    assert store.sum("k", now - 1, w.MAX_WINDOW_S * 1000) == 1 + 2 + 4
    assert not [i for i in dynamodb.scan(TableName=TABLE)["Items"] if f"#{w.minute_of(T0)}" in i["pk"]["S"]]


def test_retention_keeps_every_window_and_ends_before_ttl() -> None:
    assert w.RETENTION_MS >= w.MAX_WINDOW_S * w.SECOND_MS
    assert w.RETENTION_MS + w.MINUTE_MS <= w.RETENTION_S * w.SECOND_MS  # an accepted minute's items outlive it
    assert not w.too_old(T0 - w.RETENTION_MS, T0) and w.too_old(T0 - w.RETENTION_MS - 1, T0)


def test_a_direct_post_commits_within_the_seal_lag() -> None:
    """Direct posts count at arrival and are not fenced: no database attempt of a request starts after its budget,
    and the budget plus one attempt is capped below API Gateway's timeout, which is below the seal lag."""
    assert (settings.GATEWAY_TIMEOUT_S - settings.ANSWER_MARGIN_S) * 1000 < w.SEAL_LAG_MS
    assert settings.get().worst_case_s * 1000 < w.SEAL_LAG_MS
