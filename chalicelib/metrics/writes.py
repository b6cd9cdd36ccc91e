"""The sums' writes: a post (one transaction: its event, its sub-total and its sketch bin, retried on
another shard under contention) and the consumer's batches of stream events (per key, minute and stream shard, one
conditional update of the minute's stream item, or of its late values once sealed). See chalicelib/metrics/store.py."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.ingest import applied
from chalicelib.ingest.records import Delivered
from chalicelib.metrics import batch, window
from chalicelib.metrics.generations import Generations
from chalicelib.metrics.items import (
    HIGH,
    LATE_COUNT,
    LATE_HIGH,
    LATE_LOW,
    LATE_SKETCH,
    LATE_TOTAL,
    LOW,
    RUNS,
    SEALED,
    STREAM_SKETCH,
    VERSION,
    SumItems,
    extremes_in,
    late_second_attr,
    second_attr,
    sketch_of,
)
from chalicelib.process import runtime
from chalicelib.pure import sketch
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import (
    ITEM_IS_NEW,
    LostRace,
    batch_get,
    cancellation_codes,
    item_key,
    num,
    read_int,
    retry,
    sort_key_of,
)

# Transaction attempts per post under contention (each on a freshly drawn shard) before answering Busy.
POST_ATTEMPTS = 8
# Attempts per run of stream events: each reads what the run writes to, and loses only to a concurrent writer of it.
APPLY_ATTEMPTS = 8

# A sub-total's extremes as a post last read them (low, high, the value posted; None where the item keeps none) and
# whether the item can keep them (False: it holds values posted before extremes were kept), or None before any read:
# the post then assumes its value lies inside them, and reads them only if it does not.
Believed = tuple[int | None, int | None, int, bool] | None
# Reads of a sub-total's extremes per post attempt: each follows a transaction refused because they had moved.
EXTREMES_READS = 3


def extremes_update(believed: Believed) -> tuple[str, str]:
    """What a post adds to its sub-total's update for the extremes: the SET clauses (after SET ..., with a leading
    comma) and the condition, for the value :v. DynamoDB has no min() in updates, so a post SETs an extreme only when
    its value is beyond the one it read, on condition it still is; otherwise it asserts the value lies inside. A
    refused condition cancels the whole transaction (nothing stored), and the post reads and tries again. An item
    without extremes (none yet, or posted to before they were kept) gets the value's as a start."""
    if believed is None:  # a new item starts with the value's; one that has values must already span it
        return ", #lo = if_not_exists(#lo, :v), #hi = if_not_exists(#hi, :v)", (
            "attribute_not_exists(#n) OR (#lo <= :v AND #hi >= :v)"
        )
    low, high, value, keeps = believed
    if not keeps:  # extremes of only some of its values would be wrong ones: it keeps none
        return "", ""
    sets: list[str] = []
    conditions: list[str] = []
    if low is None or value < low:
        sets.append("#lo = :v")
        conditions.append("(attribute_not_exists(#lo) OR #lo > :v)")
    else:
        conditions.append("#lo <= :v")
    if high is None or value > high:
        sets.append("#hi = :v")
        conditions.append("(attribute_not_exists(#hi) OR #hi < :v)")
    else:
        conditions.append("#hi >= :v")
    return "".join(f", {clause}" for clause in sets), " AND ".join(conditions)


class TooOld(applied.Unappliable):
    """Metric events older than retention (window.RETENTION_MS) when they were applied: they can never be stored."""

    def __init__(self, events: Sequence[Delivered]) -> None:
        super().__init__(f"{len(events)} metric event(s) older than retention ({window.RETENTION_MS} ms)")
        self.events = list(events)


# Per client (one per process in Lambda): the (table, key, minute) whose SUMDIRTY marker it wrote, and when (epoch ms)
# it was known written. Bounded, forgotten wholesale; a new client (tests, another database) starts empty.
_marked: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, int], int]] = weakref.WeakKeyDictionary()
_MARKED_MAX = 100_000
_marked_lock = threading.Lock()


def sketch_adds(bins: Mapping[str, int], expires: dict[str, str]) -> dict[str, Any]:
    """The update of one sketch item adding `bins` (bin key -> count): ADD only, no read, no condition."""
    names = {f"#{name}": name for name in bins}
    adds = ", ".join(f"#{name} :{name}" for name in bins)
    return {
        "UpdateExpression": f"ADD {adds} SET #exp = :exp",
        "ExpressionAttributeNames": {**names, "#exp": table.TTL_ATTRIBUTE},
        "ExpressionAttributeValues": {**{f":{name}": num(c) for name, c in bins.items()}, ":exp": expires},
    }


@dataclass(frozen=True)
class Tally:
    """Where the stream adds a run's values: a minute's stream item, only while it is not sealed (`fenced`: compaction
    folds it), or the minute's late values in its state item. The names of the attributes added to."""

    total: str
    count: str
    second: Callable[[int], str]
    sketch: str
    low: str
    high: str
    fenced: bool

    def update(self, item: Mapping[str, Any], shard_id: str, run: Sequence[Delivered], run_id: bytes) -> dict[str, Any]:
        """UpdateItem arguments adding `run` to `item` as read: ADD the sums, the version and the run's id, SET the
        merged sketch, the marker and the TTL; on condition the item is as read (its version), none of the records
        is applied and, if fenced, the item is not sealed."""
        sums = batch.sums(run)
        merged = sketch_of(item, self.sketch).merge(batch.sketch(run))
        # Extremes are SET from the item as read (the version condition makes that exact); an item that holds values
        # without extremes (written before them) keeps none, so its minute's quantiles are not clamped.
        extremes = extremes_in(item, read_int(item.get(self.count)), self.low, self.high).merge(
            window.extremes_of(batch.metric(d).value for d in run)
        )
        marker_names, marker_values = applied.marker_condition(shard_id, run)
        minute = window.minute_of(batch.metric(run[0]).time_ms)
        names = {
            "#t": self.total,
            "#n": self.count,
            "#q": self.sketch,
            "#v": VERSION,
            "#runs": RUNS,
            "#exp": table.TTL_ATTRIBUTE,
            **marker_names,
            **{f"#s{s}": self.second(s) for s in sums.seconds},
        }
        values = {
            ":t": num(sums.total),
            ":n": num(sums.count),
            ":q": {"B": merged.encode()},
            ":one": num(1),
            ":run": {"BS": [run_id]},
            ":exp": num(window.expires_at((minute + 1) * window.MINUTE_MS)),
            **marker_values,
            **{f":s{s}": num(v) for s, v in sums.seconds.items()},
        }
        conditions = [applied.NOT_APPLIED, "attribute_not_exists(#v)" if VERSION not in item else "#v = :v"]
        if VERSION in item:
            values[":v"] = item[VERSION]
        if self.fenced:
            conditions.append("attribute_not_exists(#sealed)")
            names["#sealed"] = SEALED
        adds = "".join(f", #s{s} :s{s}" for s in sums.seconds)
        sets = ""
        if extremes.known and extremes.low is not None and extremes.high is not None:
            names.update({"#lo": self.low, "#hi": self.high})
            values.update({":lo": num(extremes.low), ":hi": num(extremes.high)})
            sets = ", #lo = :lo, #hi = :hi"
        return {
            "UpdateExpression": (
                f"ADD #t :t, #n :n{adds}, #v :one, #runs :run SET #q = :q, #applied = :last, #exp = :exp{sets}"
            ),
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }


FRESH = Tally("total", "n", second_attr, STREAM_SKETCH, LOW, HIGH, fenced=True)
LATE = Tally(LATE_TOTAL, LATE_COUNT, late_second_attr, LATE_SKETCH, LATE_LOW, LATE_HIGH, fenced=False)


class SumWrites(SumItems):
    """A post, and the stream events of a consumer batch."""

    def post_transaction(
        self,
        key: str,
        value: int,
        at_ms: int,
        event_id: str,
        shard: int,
        event_shard: int = 0,
        attempt: int = 0,
        believed: Believed = None,
        gen: int = 0,
        logical: str | None = None,
    ) -> dict[str, Any]:
        """The arguments of the post's TransactWriteItems: the event Put, its sub-total ADD (and its extremes, see
        extremes_update) and its bin's ADD to the sub-total's sketch.

        The token is a digest of the event id and everything else the request carries (DynamoDB rejects a token
        reused with other parameters), plus the attempt: a retry after a conflict is a new request, and the event's
        condition keeps it from applying twice. botocore resends the token unchanged on its own retries.
        """
        minute = window.minute_of(at_ms)
        identity = f"{self.table}\0{key}\0{event_id}\0{value}\0{at_ms}\0{shard}\0{event_shard}\0{gen}"
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        expires = num(window.expires_at((minute + 1) * window.MINUTE_MS))
        bin_name = sketch.bin_key(value)
        extremes_set, extremes_condition = extremes_update(believed)
        return {
            "TransactItems": [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": self.event_item(key, value, at_ms, event_id, event_shard),
                        "ConditionExpression": ITEM_IS_NEW,
                    }
                },
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": item_key(keys.sum_sub_pk(key), keys.sum_sub_sk(minute, shard)),
                        "UpdateExpression": f"ADD #total :v, #n :one, #sec :v SET #exp = :exp{extremes_set}",
                        **({"ConditionExpression": extremes_condition} if extremes_condition else {}),
                        "ExpressionAttributeNames": {
                            "#total": "total",
                            "#n": "n",
                            "#sec": second_attr(window.second_of(at_ms)),
                            "#exp": table.TTL_ATTRIBUTE,
                            **({"#lo": LOW, "#hi": HIGH} if extremes_condition else {}),
                        },
                        "ExpressionAttributeValues": {":v": num(value), ":one": num(1), ":exp": expires},
                    }
                },
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": item_key(
                            keys.sum_sketch_pk(key),
                            keys.sum_sketch_sub_sk(minute, shard, keys.sum_sketch_part(bin_name)),
                        ),
                        **sketch_adds({bin_name: 1}, expires),
                    }
                },
                # Last: the key is still in the incarnation `key` belongs to (metrics/generations.py).
                {"ConditionCheck": Generations(self.client, self.table).check(logical or key, gen, shard)},
            ],
            "ClientRequestToken": f"{digest}-{attempt}",
        }

    def post(self, logical: str, value: int, at_ms: int, event_id: str | None = None, shard: int | None = None) -> None:
        """Store one rounded value posted at `at_ms` under the key's current incarnation: its event item and its
        shard's sub-totals, atomically, with a check of the incarnation (metrics/generations.py)."""
        event_id = event_id or uuid.uuid4().hex[:16]
        event_shard = self.rng.randrange(keys.SUM_EVENT_SHARDS)
        generations = Generations(self.client, self.table)

        def attempt(n: int) -> None:
            gen = generations.remembered(logical)
            key = keys.metric_physical(logical, gen)
            self._mark_dirty(key, window.minute_of(at_ms), lambda: at_ms)
            target = self.rng.randrange(keys.SUM_WRITE_SHARDS) if shard is None else shard
            believed: Believed = None
            for tries in range(EXTREMES_READS):
                try:
                    self.client.transact_write_items(
                        **self.post_transaction(
                            key,
                            value,
                            at_ms,
                            event_id,
                            target,
                            event_shard,
                            n * EXTREMES_READS + tries,
                            believed,
                            gen=gen,
                            logical=logical,
                        )
                    )
                    return
                except self.client.exceptions.TransactionCanceledException as exc:
                    codes = cancellation_codes(exc)
                    if codes[:1] == ["ConditionalCheckFailed"]:
                        return  # the event exists: an earlier attempt of this post was applied (event and ADD)
                    if codes[3:4] == ["ConditionalCheckFailed"]:  # another incarnation now: read it, post again
                        generations.current(logical)
                        raise LostRace from exc
                    if codes[1:2] != ["ConditionalCheckFailed"]:
                        raise
                # The value is a new extreme of the sub-total (or the extremes moved since read): read them and say.
                believed = self._sub_total_extremes(key, window.minute_of(at_ms), target, value)
            raise LostRace

        retry(attempt, attempts=POST_ATTEMPTS, busy="too many concurrent posters on this key; retry")

    def _sub_total_extremes(self, key: str, minute: int, shard: int, value: int) -> Believed:
        """The sub-total item's extremes as stored (None where it keeps none), the value to post, and whether the
        item can keep them: not if it holds values but no extremes (posted before extremes were kept)."""
        item = self.client.get_item(
            TableName=self.table,
            Key=item_key(keys.sum_sub_pk(key), keys.sum_sub_sk(minute, shard)),
            ProjectionExpression="#lo, #hi, #n",
            ExpressionAttributeNames={"#lo": LOW, "#hi": HIGH, "#n": "n"},
            ConsistentRead=True,
        ).get("Item", {})
        low, high = (read_int(item[a]) if a in item else None for a in (LOW, HIGH))
        keeps = read_int(item.get("n")) == 0 or (low is not None and high is not None)
        return low, high, value, keeps

    def _mark_dirty(self, key: str, minute: int, now: Callable[[], int]) -> int:
        """The key-minute's SUMDIRTY marker (compaction's work list), once per client, before any sub-total; when
        it was known written (by `now`)."""
        marker = (self.table, key, minute)
        marked = self._dirty_marks()
        written = marked.get(marker)
        if written is None:
            self.client.put_item(TableName=self.table, Item=self.dirty_item(key, minute))
            written = now()
            if len(marked) >= _MARKED_MAX:
                marked.clear()
            marked[marker] = written
        return written

    def _dirty_marks(self) -> dict[tuple[str, str, int], int]:
        with _marked_lock:
            return _marked.setdefault(self.client, {})

    def apply_delivered(self, delivered: Sequence[Delivered], now_ms: int) -> None:
        """Apply a consumer batch's metric events (stream order), each at its own time, exactly once.

        Per key, minute and stream shard, one conditional UpdateItem (no transaction) adds the values, their
        sketch and the run's marker to the minute's stream item, on condition it is not sealed; after its packed
        raw values (see batch). Once the minute is sealed, the same goes to its state item's late values instead
        (see the module docstring). Events older than retention are not applied: TooOld lists them, after the rest
        was applied. `now_ms`: when the batch started to be applied (the time spent since is added to it).
        """
        too_old = [d for d in delivered if window.too_old(batch.metric(d).time_ms, now_ms)]
        refused = {id(d) for d in too_old}
        grouped = batch.group(d for d in delivered if id(d) not in refused)
        # Each key's current incarnation (metrics/generations.py): the values go under its physical key.
        gens = Generations(self.client, self.table).many(key for key, _, _ in grouped)
        groups = {
            (keys.metric_physical(key, gens[key]), minute, shard_id): run
            for (key, minute, shard_id), run in grouped.items()
        }
        started = time.monotonic()

        def now() -> int:
            return now_ms + int((time.monotonic() - started) * 1000)

        runtime.fan_out(lambda item: self._apply_run(*item, now), list(groups.items()))
        if too_old:
            raise TooOld(too_old)

    def _apply_run(self, group: batch.GroupKey, run: list[Delivered], now: Callable[[], int]) -> None:
        """One group's records, retried until applied: each attempt reads the minute's stream and state items, skips
        the records they mark applied and writes the rest to the stream item while it is open, else to the late
        values. A write refused by its condition (another writer came first) starts over."""
        key, minute, _ = group
        fresh = self._listed_in_time(key, minute, now)
        stream_key = item_key(keys.sum_sub_pk(key), keys.sum_stream_sk(minute))
        state_key = item_key(keys.sum_bucket_pk(key), keys.sum_minute_sk(minute))

        def attempt(_: int) -> None:
            stream, state = self._stream_and_state(stream_key, state_key)
            if fresh and stream.get(SEALED) is None:
                self._add_run(group, run, FRESH, stream_key, stream)
                return
            if stream.get(SEALED) is None:  # compaction may miss the key: close the stream item before adding late
                stream = self.seal_stream(key, minute, now())
            self._add_run(group, run, LATE, state_key, state, also_applied=stream)

        retry(attempt, attempts=APPLY_ATTEMPTS, busy="metric events kept meeting other writers; retry the batch")

    def _listed_in_time(self, key: str, minute: int, now: Callable[[], int]) -> bool:
        """Whether every compaction of the minute lists the key: its dirty marker was written in time. Writes the
        marker if that can still be so."""
        written = self._dirty_marks().get((self.table, key, minute))
        if written is None and window.listed_in_time(minute, now()):
            written = self._mark_dirty(key, minute, now)
        return written is not None and window.listed_in_time(minute, written)

    def _stream_and_state(
        self, stream_key: dict[str, Any], state_key: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The minute's stream item and state item as stored (empty when absent): one strongly consistent read."""
        items = {
            sort_key_of(i): i for i in batch_get(self.client, self.table, [stream_key, state_key], consistent=True)
        }
        return items.get(stream_key[table.SORT_KEY]["S"], {}), items.get(state_key[table.SORT_KEY]["S"], {})

    def seal_stream(self, key: str, minute: int, now_ms: int) -> dict[str, Any]:
        """Mark the minute's stream item sealed (the first seal's time is kept): from then on the stream's values of
        the minute go to its late values. The item as sealed."""
        result = self.client.update_item(
            TableName=self.table,
            Key=item_key(keys.sum_sub_pk(key), keys.sum_stream_sk(minute)),
            UpdateExpression="SET #sealed = if_not_exists(#sealed, :now), #exp = :exp",
            ExpressionAttributeNames={"#sealed": SEALED, "#exp": table.TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":now": num(now_ms),
                ":exp": num(window.expires_at((minute + 1) * window.MINUTE_MS)),
            },
            ReturnValues="ALL_NEW",
        )
        sealed: dict[str, Any] = result["Attributes"]
        return sealed

    def _add_run(
        self,
        group: batch.GroupKey,
        run: Sequence[Delivered],
        tally: Tally,
        key: dict[str, Any],
        item: Mapping[str, Any],
        also_applied: Mapping[str, Any] | None = None,
    ) -> None:
        """Add the records of `run` that `item` (and `also_applied`) do not mark applied: their packed values, then
        one conditional write of the sums, the merged sketch, the marker and the run's id (LostRace if refused)."""
        metric_key, minute, shard_id = group
        marker = max(
            (m for m in (applied.applied_marker(i, shard_id) for i in (item, also_applied)) if m is not None),
            default=None,
        )
        todo = applied.unapplied(run, marker)
        if not todo:
            return
        run_id = batch.run_id(shard_id, todo)
        for pack in batch.packs(todo):
            self.client.put_item(
                TableName=self.table, Item=self.packed_item(metric_key, minute, shard_id, pack, run_id)
            )
        try:
            self.client.update_item(TableName=self.table, Key=key, **tally.update(item, shard_id, todo, run_id))
        except self.client.exceptions.ConditionalCheckFailedException:
            raise LostRace from None
