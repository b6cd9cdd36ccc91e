"""Data access for last-hour sums. Every DynamoDB expression for sums lives here.

Writes:
  0. once per client (process) and key-minute, a SUMDIRTY marker (idempotent Put) listing the key
     under its minute: the compactor's work list. It is written before any sub-total of
     that key-minute can exist, so compaction never misses a key;
  1. ONE TransactWriteItems: Put the event item (conditional on a fresh id) + `ADD` to one of
     SUM_WRITE_SHARDS sub-total items of the key's minute, chosen at random: total, n, and the sum of its
     second (s00..s59). Both or neither: a post that fails stored nothing, and a retry whose event already
     exists is cancelled whole (ConditionalCheckFailed: it was stored). The ClientRequestToken, derived from
     the event id, makes botocore's own retries of a lost response apply once. Two transactions on one
     sub-total item conflict (TransactionConflict): retried with backoff on another random shard, Busy after
     POST_ATTEMPTS.
Sub-totals of a key live in one partition, sorted by minute then shard, so one Query reads every shard of a
whole range of minutes.
Stream events (apply_delivered) count at their own time. Per key, minute and stream shard, per batch, one
conditional UpdateItem (no transaction) of the minute's stream item (SUMSUB# {minute}#ST, read first): ADD the sums
(total, n, s00..s59), SET the sketch of its values merged with the batch's (encoded), SET the stream shard's marker
of the last record applied, and ADD the run's id; on condition the item is as read (its version), the records are
after the marker, and it is not sealed. Before it, the batch's values packed (items of up to 2 s: the raw edge
seconds), each packed item naming its run: it counts only once the run's id is in the item, so packed items of a
write that never happened count nothing. A sealed stream item refuses the write: the same records then go to the state item's late
values (lt, ln, l00..l59, `lsketch`, with its own marker and runs) the same way. A batch that comes too late for
compaction to surely list its key (window.listed_in_time) seals the stream item itself and goes to the late values.
Compaction (chalicelib/metrics/compaction.py, every minute, for minutes that ended SEAL_LAG_MS ago): for each
key listed, it first seals the minute's stream item, then reads the sub-totals (the stream item's among them) and
writes their sum once as the bucket, in the state item; when every key of the minute is done, a SUMDONE marker says
so. A consumer write either lands before the seal (and is in the bucket) or is refused and goes to the late values:
exact however late. Direct posts are not fenced: they count at arrival and commit within the request's budget, well
inside SEAL_LAG_MS.
Reads (see window.plan and window.minute_reads): the state items of every minute read (buckets and late values,
one Query), sub-totals for whole minutes not compacted yet (no bucket: compaction behind, or values that came
after compaction listed the minute, whose state item exists without a bucket) and for the per-second sums of the
two edge minutes (one Query per run of such minutes, not per minute), raw values only for the two edge *seconds*.
A bucket equals the sum of the sub-totals it was made from, late values are in neither, so the answer does not
depend on how far compaction got.
Quantile sketches (chalicelib/pure/sketch.py) follow the same life in their own partition (SUMQ#{key}; reads of sums are
charged by the size of the items they read, so they must not read bins): every post also ADDs its value's bin
(`sketch.bin_key` -> count, no read) to the sketch items of the sub-total it adds to, in the same transaction; the
stream keeps its sketch in the stream item (and the late values' in the state item), encoded, a few hundred bytes;
compaction merges a minute's sub-total sketches and its stream item's, after the seal, into one bounded encoded
bucket and appends it to the key's prefix chain (P{minute}: the merged buckets of every chained minute so far), both
before the sum's bucket, which says whether the minute is in the chain. A quantile read (whole minutes only, see
`quantile_sketch`) takes the compacted minutes as the difference of two prefixes (bins are exact counts), the others
from their sub-total and stream sketches, plus the late values' sketches of the state items; when the prefixes cannot
be shown to hold exactly the compacted minutes (window.prefix_sketch), it merges each minute's bucket as before.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

from chalicelib.ingest import applied
from chalicelib.ingest.records import Delivered
from chalicelib.metrics import batch, window
from chalicelib.metrics.window import MinuteParts, MinuteState, SubTotal, Totals
from chalicelib.process import runtime
from chalicelib.pure import sketch
from chalicelib.pure.sketch import Sketch
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import (
    ITEM_IS_NEW,
    LostRace,
    batch_get,
    cancellation_codes,
    item_key,
    num,
    query_items,
    read_int,
    retry,
    sort_key_between,
    sort_key_of,
)

# Transaction attempts per post under contention (each on a freshly drawn shard) before answering Busy.
POST_ATTEMPTS = 8
# Attempts per run of stream events: each reads what the run writes to, and loses only to a concurrent writer of it.
APPLY_ATTEMPTS = 8

# Attributes of a minute's stream item (SUMSUB# {minute}#ST) besides its sums: compaction's fence, the sketch of the
# values, the committed runs (batch.run_id) and a version that every write of the stream's values moves on.
SEALED = "sealed"
STREAM_SKETCH = "sketch"
RUNS = "runs"
VERSION = "v"
# Attributes of a key's minute state item (SUMB#): the bucket, the stream's values that came after sealing (and its
# RUNS, VERSION and markers, as on a stream item).
BUCKET_TOTAL = "total"
BUCKET_COUNT = "n"
# 1 when the minute's sketch bucket is in the key's prefix chain (see compaction._extend_prefix), else 0.
CHAINED = "q"
LATE_TOTAL = "lt"
LATE_COUNT = "ln"
LATE_SKETCH = "lsketch"
# The least and greatest value: of a sub-total item (posts) or stream item, of a bucket (in the state item), and of
# the late values (also in the state item). Quantiles are kept inside them (Sketch.quantile_within).
LOW = "mn"
HIGH = "mx"
LATE_LOW = "lmn"
LATE_HIGH = "lmx"
# The attribute of a minute's sketch bucket item (SUMQ# B{minute}) holding the encoded, bounded bucket.
SKETCH_BUCKET = "sketch"
# Attributes of a prefix item (SUMQ# P{minute}) and of the chain's head (SUMQ# H), which also names its minute.
PREFIX_SKETCH = "cum"
PREFIX_CHAIN = "chain"
PREFIX_MINUTES = "k"
PREFIX_MINUTE = "minute"
_NOT_BINS = frozenset({table.PARTITION_KEY, table.SORT_KEY, table.TTL_ATTRIBUTE, SKETCH_BUCKET})


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


def late_second_attr(second: int) -> str:
    return f"l{second:02d}"


def consumer_event_shard(shard_id: str) -> int:
    return zlib.crc32(shard_id.encode()) % keys.SUM_EVENT_SHARDS


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


def second_attr(second: int) -> str:
    return f"s{second:02d}"


def sub_total_of(item: dict[str, Any]) -> SubTotal:
    """A sub-total item as read (the per-second sums it was read with)."""
    seconds = {}
    for s in range(window.SECONDS_PER_MINUTE):
        attr = item.get(second_attr(s))
        if attr is not None:
            seconds[s] = read_int(attr)
    count = read_int(item.get("n"))
    return SubTotal(
        keys.sum_sub_minute(sort_key_of(item)),
        read_int(item.get("total")),
        count,
        seconds,
        extremes_in(item, count, LOW, HIGH),
    )


def extremes_in(item: Mapping[str, Any], count: int, low: str, high: str) -> window.Extremes:
    """The extremes an item keeps of its `count` values in attributes `low` and `high`."""
    found = [read_int(item[a]) if a in item else None for a in (low, high)]
    return window.extremes_kept(count, found[0], found[1])


def minute_state_of(item: dict[str, Any]) -> MinuteState:
    """A key's minute state item as read: the bucket if compaction wrote it, and the late values."""
    seconds = {}
    for s in range(window.SECONDS_PER_MINUTE):
        attr = item.get(late_second_attr(s))
        if attr is not None:
            seconds[s] = read_int(attr)
    late_count = read_int(item.get(LATE_COUNT))
    late_extremes = extremes_in(item, late_count, LATE_LOW, LATE_HIGH)
    late = MinuteParts(read_int(item.get(LATE_TOTAL)), late_count, seconds, late_extremes)
    late_sketch = sketch_of(item, LATE_SKETCH)
    if BUCKET_TOTAL not in item:
        return MinuteState(late=late, late_sketch=late_sketch, runs=runs_of(item))
    chained = read_int(item.get(CHAINED)) == 1
    count = read_int(item.get(BUCKET_COUNT))
    return MinuteState(
        read_int(item[BUCKET_TOTAL]),
        count,
        late,
        chained,
        late_sketch,
        runs_of(item),
        extremes_in(item, count, LOW, HIGH),
    )


def sketch_of(item: Mapping[str, Any] | None, attr: str) -> Sketch:
    """An encoded sketch attribute of an item (empty if the item or the attribute is missing)."""
    found = (item or {}).get(attr)
    return sketch.EMPTY if found is None else Sketch.decode(found["B"])


def runs_of(item: Mapping[str, Any] | None) -> frozenset[bytes]:
    """The stream runs an item says are committed (batch.run_id)."""
    found = (item or {}).get(RUNS)
    return frozenset() if found is None else frozenset(found["BS"])


def bins_of(item: Mapping[str, Any]) -> dict[str, int]:
    """The bin counts of a sketch item (its other attributes are its key and TTL)."""
    return {name: read_int(value) for name, value in item.items() if name not in _NOT_BINS}


def prefix_of(item: Mapping[str, Any], minute: int) -> window.Prefix:
    """A prefix item (or the chain's head) as read."""
    return window.Prefix(
        minute, read_int(item[PREFIX_CHAIN]), read_int(item[PREFIX_MINUTES]), Sketch.decode(item[PREFIX_SKETCH]["B"])
    )


def sketch_adds(bins: Mapping[str, int], expires: dict[str, str]) -> dict[str, Any]:
    """The update of one sketch item adding `bins` (bin key -> count): ADD only, no read, no condition."""
    names = {f"#{name}": name for name in bins}
    adds = ", ".join(f"#{name} :{name}" for name in bins)
    return {
        "UpdateExpression": f"ADD {adds} SET #exp = :exp",
        "ExpressionAttributeNames": {**names, "#exp": table.TTL_ATTRIBUTE},
        "ExpressionAttributeValues": {**{f":{name}": num(c) for name, c in bins.items()}, ":exp": expires},
    }


# Attributes of a packed item: its values (batch.encode_pack), and the run that wrote it (batch.run_id), whose values
# count once the run is committed. TEXT_PACKED: the values of a packed item written (in one transaction with its sums)
# before packed items were binary.
PACKED = "eb"
RUN = "run"
TEXT_PACKED = "ev"


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


def _committed_runs(sub_items: Iterable[dict[str, Any]], states: Mapping[int, MinuteState]) -> dict[int, set[bytes]]:
    """Per minute, the stream runs whose packed values count: those its stream item (read with the sub-totals) and
    its state item (late values) record."""
    committed: dict[int, set[bytes]] = {m: set(state.runs) for m, state in states.items()}
    for item in sub_items:
        committed.setdefault(keys.sum_sub_minute(sort_key_of(item)), set()).update(runs_of(item))
    return committed


def _late_sketches(states: Mapping[int, MinuteState], found: Iterable[Mapping[int, Sketch]]) -> dict[int, Sketch]:
    """Each minute's late values' sketch: the state item's, plus `found`, bins older versions wrote to their own
    items."""
    late = {m: state.late_sketch for m, state in states.items() if state.late_sketch.count}
    for bins in found:
        for m, more in bins.items():
            late[m] = late.get(m, sketch.EMPTY).merge(more)
    return late


def _with_sub_total_items(
    sketches: dict[int, Sketch], sub_items: Iterable[dict[str, Any]], wanted: set[int]
) -> tuple[dict[int, Sketch], dict[int, window.Extremes]]:
    """The minutes' sketches plus their stream items', and the extremes of the sub-total items (shards and stream)."""
    extremes: dict[int, window.Extremes] = {}
    for item in sub_items:
        minute = keys.sum_sub_minute(sort_key_of(item))
        if minute not in wanted:
            continue
        if STREAM_SKETCH in item:
            sketches[minute] = sketches.get(minute, sketch.EMPTY).merge(sketch_of(item, STREAM_SKETCH))
        kept = extremes_in(item, read_int(item.get("n")), LOW, HIGH)
        extremes[minute] = extremes.get(minute, window.NO_VALUES).merge(kept)
    return sketches, extremes


def _call(read: Callable[[], Any]) -> Any:
    return read()


class SumStore:
    def __init__(self, client: Any, table: str, rng: random.Random | None = None) -> None:
        self.client = client
        self.table = table
        self.rng = rng or random.Random()

    # --- item shapes (the benchmark loads data with these, so shapes cannot drift) -----

    def event_item(self, key: str, value: int, at_ms: int, event_id: str, shard: int) -> dict[str, Any]:
        return {
            **item_key(keys.sum_event_pk(key, window.minute_of(at_ms), shard), keys.sum_event_sk(at_ms, event_id)),
            "v": num(value),
            "at": num(at_ms),
            table.TTL_ATTRIBUTE: num(window.expires_at(at_ms)),
        }

    def sub_total_item(
        self,
        key: str,
        minute: int,
        shard: int,
        total: int,
        count: int,
        seconds: dict[int, int],
        extremes: window.Extremes = window.NO_VALUES,
    ) -> dict[str, Any]:
        """The sub-total item as the posts' `ADD`s leave it (tests check that the two agree)."""
        item: dict[str, Any] = {
            **item_key(keys.sum_sub_pk(key), keys.sum_sub_sk(minute, shard)),
            "total": num(total),
            "n": num(count),
            table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
        }
        if extremes.low is not None and extremes.high is not None:
            item.update({LOW: num(extremes.low), HIGH: num(extremes.high)})
        item.update({second_attr(s): num(v) for s, v in seconds.items()})
        return item

    def sketch_sub_items(self, key: str, minute: int, shard: int, bins: Mapping[str, int]) -> list[dict[str, Any]]:
        """The sub-total's sketch items as the posts' `ADD`s leave them, one per group of bins."""
        parts: dict[int, dict[str, Any]] = {}
        for name, count in bins.items():
            part = keys.sum_sketch_part(name)
            item = parts.setdefault(
                part,
                {
                    **item_key(keys.sum_sketch_pk(key), keys.sum_sketch_sub_sk(minute, shard, part)),
                    table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
                },
            )
            item[name] = num(count)
        return list(parts.values())

    def dirty_item(self, key: str, minute: int) -> dict[str, Any]:
        return {
            **item_key(keys.sum_dirty_pk(keys.sum_dirty_partition(key)), keys.sum_dirty_sk(minute, key)),
            table.TTL_ATTRIBUTE: num(window.expires_at((minute + 1) * window.MINUTE_MS)),
        }

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
    ) -> dict[str, Any]:
        """The arguments of the post's TransactWriteItems: the event Put, its sub-total ADD (and its extremes, see
        extremes_update) and its bin's ADD to the sub-total's sketch.

        The token is a digest of the event id and everything else the request carries (DynamoDB rejects a token
        reused with other parameters), plus the attempt: a retry after a conflict is a new request, and the event's
        condition keeps it from applying twice. botocore resends the token unchanged on its own retries.
        """
        minute = window.minute_of(at_ms)
        identity = f"{self.table}\0{key}\0{event_id}\0{value}\0{at_ms}\0{shard}\0{event_shard}"
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
            ],
            "ClientRequestToken": f"{digest}-{attempt}",
        }

    # --- writes ---------------------------------------------------------------

    def post(self, key: str, value: int, at_ms: int, event_id: str | None = None, shard: int | None = None) -> None:
        """Store one rounded value posted at `at_ms`: its event item and its shard's sub-totals, atomically."""
        event_id = event_id or uuid.uuid4().hex[:16]
        self._mark_dirty(key, window.minute_of(at_ms), lambda: at_ms)
        event_shard = self.rng.randrange(keys.SUM_EVENT_SHARDS)

        def attempt(n: int) -> None:
            target = self.rng.randrange(keys.SUM_WRITE_SHARDS) if shard is None else shard
            believed: Believed = None
            for tries in range(EXTREMES_READS):
                try:
                    self.client.transact_write_items(
                        **self.post_transaction(
                            key, value, at_ms, event_id, target, event_shard, n * EXTREMES_READS + tries, believed
                        )
                    )
                    return
                except self.client.exceptions.TransactionCanceledException as exc:
                    codes = cancellation_codes(exc)
                    if codes[:1] == ["ConditionalCheckFailed"]:
                        return  # the event exists: an earlier attempt of this post was applied (event and ADD)
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

    # --- stream events ----------------------------------------------------------

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
        groups = batch.group(d for d in delivered if id(d) not in refused)
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

    def packed_item(self, key: str, minute: int, shard_id: str, pack: batch.Pack, run_id: bytes) -> dict[str, Any]:
        return {
            **item_key(
                keys.sum_event_pk(key, minute, consumer_event_shard(shard_id)),
                keys.sum_packed_sk(pack.second_ms, shard_id, pack.sequence_number, pack.chunk),
            ),
            "at": num(pack.second_ms),
            PACKED: {"B": batch.encode_pack(pack.entries)},
            RUN: {"B": run_id},
            table.TTL_ATTRIBUTE: num(window.expires_at(pack.second_ms)),
        }

    # --- reads ----------------------------------------------------------------

    def sum(self, key: str, now_ms: int, window_ms: int) -> int:
        """The sum of the values posted at t with now - window < t <= now."""
        p = window.plan(now_ms, window_ms)
        partial_minutes = [part.minute for part in p.partial]
        seconds = {part.minute: part.seconds for part in p.partial}
        totals = self._minute_totals(key, p.whole, now_ms, also=seconds, raw_ranges=p.raw_ranges)
        return window.combine(
            p,
            {m: t.total for m, t in totals.items() if m in p.whole},
            {m: totals[m].seconds for m in partial_minutes if m in totals},
            totals.raw,
        )

    def quantile_sketch(self, key: str, now_ms: int, window_ms: int) -> Sketch:
        """The sketch of the values of every minute overlapping (now - window, now] (see quantile_values)."""
        return self.quantile_values(key, now_ms, window_ms)[0]

    def quantile_values(self, key: str, now_ms: int, window_ms: int) -> tuple[Sketch, window.Extremes]:
        """The sketch of the values of every minute overlapping (now - window, now] (whole minutes: see the README).

        The compacted minutes come from two prefixes of the key's chain (window.prefix_sketch), the others from
        their sub-total sketches (and their stream item's), plus the late values' sketches of the state items: reads
        that do not grow with the window's values. If the prefixes cannot be shown to hold exactly the compacted
        minutes, it merges each minute's bucket instead (window.window_sketch). Never raw values."""
        span = window.minutes_overlapping(now_ms, window_ms)
        reads = window.minute_reads(span, now_ms, {})
        first: list[Callable[[], Any]] = [
            partial(self._states, key, span[0], span[-1]),
            partial(self.done_minutes, span[0], span[-1]),
            partial(self.prefix_at_or_before, key, span[-1]),
            partial(self.prefix_at_or_before, key, span[0] - 1),
            *(partial(self.sub_sketches_and_extremes, key, range(a, b + 1)) for (a, b), _ in reads.sub_total_runs),
        ]
        states, done, end, start, *fresh = runtime.fan_out(_call, first)
        subs: dict[int, Sketch] = {m: sk for found, _ in fresh for m, sk in found.items()}
        sub_extremes: dict[int, window.Extremes] = {m: e for _, found in fresh for m, e in found.items()}
        missing = reads.missing(states, done)
        # Late bins older versions wrote to their own items: the late values count more than the state's sketch.
        with_late_bins = [m for m, state in states.items() if state.late.count > state.late_sketch.count]
        # Second round, only if a minute is not compacted (as for sums) or has such late bins.
        missing_reads: list[Callable[[], Any]] = (
            [partial(self.sub_sketches_and_extremes, key, missing)] if missing else []
        )
        late_reads: list[Callable[[], Any]] = [
            partial(self._sketch_buckets, key, a, b) for a, b in window.runs(with_late_bins)
        ]
        results = runtime.fan_out(_call, [*missing_reads, *late_reads])
        for found, found_extremes in results[: len(missing_reads)]:
            subs.update(found)
            sub_extremes.update(found_extremes)
        extremes = window.window_extremes(span, states, sub_extremes)
        late = _late_sketches(states, [late_bins for _, late_bins in results[len(missing_reads) :]])
        merged = window.prefix_sketch(span, states, end, start, subs, late)
        if merged is not None:
            return merged, extremes
        buckets, late_bins = self._sketch_buckets(key, span[0], span[-1])
        return window.window_sketch(span, buckets, subs, _late_sketches(states, [late_bins])), extremes

    def prefix_at_or_before(self, key: str, minute: int) -> window.Prefix | None:
        """The latest prefix of the key's chain at or before `minute` (one Query of one item)."""
        lo, hi = keys.sum_sketch_prefix_sk_range(0, minute)
        items = self.client.query(
            TableName=self.table,
            **sort_key_between(keys.sum_sketch_pk(key), lo, hi),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        ).get("Items", [])
        return prefix_of(items[0], keys.sum_sketch_minute(sort_key_of(items[0]))) if items else None

    def prefix_head(self, key: str) -> window.Prefix | None:
        """The head of the key's prefix chain: its last prefix (strongly consistent)."""
        item = self.client.get_item(
            TableName=self.table,
            Key=item_key(keys.sum_sketch_pk(key), keys.SUM_SKETCH_HEAD_SK),
            ConsistentRead=True,
        ).get("Item")
        return prefix_of(item, read_int(item[PREFIX_MINUTE])) if item else None

    def _sketch_buckets(self, key: str, first: int, last: int) -> tuple[dict[int, Sketch], dict[int, Sketch]]:
        """The minutes' sketch buckets (where compaction wrote them) and late bins in their own items, first..last
        (one Query)."""
        items = query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.sum_sketch_pk(key), *keys.sum_sketch_bucket_sk_range(first, last)),
                "ConsistentRead": True,
            },
        )
        buckets: dict[int, Sketch] = {}
        late: dict[int, dict[str, int]] = {}
        for item in items:
            minute = keys.sum_sketch_minute(sort_key_of(item))
            if SKETCH_BUCKET in item:
                buckets[minute] = Sketch.decode(item[SKETCH_BUCKET]["B"])
            into = late.setdefault(minute, {})
            for name, count in bins_of(item).items():
                into[name] = into.get(name, 0) + count
        return buckets, {m: Sketch.from_bins(b) for m, b in late.items() if b}

    def sub_sketches(self, key: str, minutes: Iterable[int]) -> dict[int, Sketch]:
        """The sub-total sketches of a key's minutes (see sub_sketches_and_extremes)."""
        return self.sub_sketches_and_extremes(key, minutes)[0]

    def sub_sketches_and_extremes(
        self, key: str, minutes: Iterable[int]
    ) -> tuple[dict[int, Sketch], dict[int, window.Extremes]]:
        """The sub-total sketches of a key's minutes, merged over shards, groups of bins and the minute's stream item,
        and their extremes (from the sub-total items, read for the stream item's sketch anyway): two strongly
        consistent Queries per run of minutes (at most window.MAX_RUNS); minutes read but not asked for are
        dropped."""
        wanted = set(minutes)

        def run_items(run: tuple[int, int]) -> list[dict[str, Any]]:
            return query_items(
                self.client,
                {
                    "TableName": self.table,
                    **sort_key_between(keys.sum_sketch_pk(key), *keys.sum_sketch_sub_sk_range(*run)),
                    "ConsistentRead": True,
                },
            )

        def stream_items(run: tuple[int, int]) -> list[dict[str, Any]]:
            return self._sub_total_items(key, run, {"#q": STREAM_SKETCH, "#n": "n", "#lo": LOW, "#hi": HIGH})

        runs = window.runs(wanted)
        merged: dict[int, dict[str, int]] = {}
        found = runtime.fan_out(
            _call, [*(partial(run_items, r) for r in runs), *(partial(stream_items, r) for r in runs)]
        )
        for items in found[: len(runs)]:
            for item in items:
                minute = keys.sum_sketch_minute(sort_key_of(item))
                if minute in wanted:
                    into = merged.setdefault(minute, {})
                    for name, count in bins_of(item).items():
                        into[name] = into.get(name, 0) + count
        sketches = {m: Sketch.from_bins(b) for m, b in merged.items()}
        sub_items = [item for items in found[len(runs) :] for item in items]
        return _with_sub_total_items(sketches, sub_items, wanted)

    def minutes(self, key: str, now_ms: int, window_ms: int) -> list[tuple[int, int]]:
        """(minute, that minute's total) for every minute overlapping the window; the last is the minute so far."""
        span = window.minutes_overlapping(now_ms, window_ms)
        totals = self._minute_totals(key, span, now_ms)
        return [(m, totals[m].total if m in totals else 0) for m in span]

    def _minute_totals(
        self,
        key: str,
        whole: range,
        now_ms: int,
        also: Mapping[int, Sequence[int]] | None = None,
        raw_ranges: Sequence[tuple[int, int]] = (),
    ) -> Totals:
        """Totals of the minutes in `whole` (bucket, or sub-totals if not compacted), sub-totals of the minutes
        `also` maps to the seconds wanted of them, and the raw sum over `raw_ranges`, in at most two rounds of
        parallel requests (window.minute_reads decides which)."""
        also = also or {}
        reads = window.minute_reads(whole, now_ms, also)
        # Round 1, in parallel: the minutes' state items (buckets, late values) and the whole minutes' done
        # markers, the sub-totals of the minutes that cannot be compacted yet (and of the edge minutes), the raw
        # edge seconds.
        marker_reads: list[Callable[[], Any]] = []
        if reads.state_span is not None:
            marker_reads.append(partial(self._states, key, *reads.state_span))
        if len(whole):
            marker_reads.append(partial(self.done_minutes, whole[0], whole[-1]))
        run_reads: list[Callable[[], Any]] = [
            partial(self._sub_total_run, key, run, seconds) for run, seconds in reads.sub_total_runs
        ]
        raw_reads: list[Callable[[], Any]] = [partial(self._raw, key, lo, hi) for lo, hi in raw_ranges]
        results = iter(runtime.fan_out(_call, [*marker_reads, *run_reads, *raw_reads]))
        states: dict[int, MinuteState] = next(results) if reads.state_span is not None else {}
        done: set[int] = next(results) if len(whole) else set()
        sub_items = [item for items in islice(results, len(run_reads)) for item in items]
        parts = window.merge_sub_totals((sub_total_of(item) for item in sub_items), set(reads.fresh))
        committed = _committed_runs(sub_items, states)
        raw = sum(
            batch.raw_sum(found, committed.get(window.minute_of(lo), set()), lo, hi)
            for (lo, hi), found in zip(raw_ranges, results, strict=True)
        )
        # Round 2 (only if a minute is not compacted: compaction behind or crashed, or values came after it).
        missing = reads.missing(states, done)
        if missing:
            parts.update(self.sub_totals(key, missing))
        return window.minute_totals(whole, also, states, parts, raw)

    def _states(self, key: str, first: int, last: int) -> dict[int, MinuteState]:
        """The key's minute state items first..last: bucket (if compacted) and late values (one Query)."""
        items = query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.sum_bucket_pk(key), keys.sum_minute_sk(first), keys.sum_minute_sk(last)),
                "ConsistentRead": True,
            },
        )
        return {int(sort_key_of(item)): minute_state_of(item) for item in items}

    def done_minutes(self, first: int, last: int) -> set[int]:
        """The minutes first..last that compaction finished (their SUMDONE markers)."""
        items = query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.SUM_DONE_PK, keys.sum_minute_sk(first), keys.sum_minute_sk(last)),
                "ProjectionExpression": table.SORT_KEY,
                "ConsistentRead": True,
            },
        )
        return {int(sort_key_of(item)) for item in items}

    def sub_totals(self, key: str, minutes: Iterable[int]) -> dict[int, MinuteParts]:
        """Sub-totals of a key's minutes, merged over shards: one strongly consistent Query per run of minutes
        (at most window.MAX_RUNS), whatever their number; minutes read but not asked for are dropped."""
        wanted = set(minutes)
        pages = runtime.fan_out(lambda run: self._sub_total_run(key, run, ()), window.runs(wanted))
        return window.merge_sub_totals((sub_total_of(item) for items in pages for item in items), wanted)

    def _sub_total_run(self, key: str, run: tuple[int, int], seconds: Iterable[int]) -> list[dict[str, Any]]:
        """Every sub-total item of the minutes run[0]..run[1] (one Query) with total, n, the stream item's committed
        runs and only the per-second sums of `seconds` (less to send and parse; the read capacity is the same)."""
        seconds_read = {f"#{second_attr(s)}": second_attr(s) for s in seconds}
        return self._sub_total_items(
            key, run, {"#total": "total", "#n": "n", "#runs": RUNS, "#lo": LOW, "#hi": HIGH, **seconds_read}
        )

    def _sub_total_items(self, key: str, run: tuple[int, int], names: Mapping[str, str]) -> list[dict[str, Any]]:
        """The sub-total items of the minutes run[0]..run[1], every shard's and the stream item, with their sort key
        and the attributes `names` maps (one strongly consistent Query)."""
        lo, hi = keys.sum_sub_sk_range(*run)
        projected = {"#sk": table.SORT_KEY, **names}
        return query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.sum_sub_pk(key), lo, hi),
                "ProjectionExpression": ", ".join(projected),
                "ExpressionAttributeNames": projected,
                "ConsistentRead": True,
            },
        )

    def _raw(self, key: str, lo: int, hi: int) -> list[batch.RawItem]:
        """The items holding raw values with lo <= t <= hi (inclusive ms, inside one second), over every shard:
        posted events, and packed items of stream events (which sort with their first second's first ms, and may
        start up to batch.PACK_SPAN_MS - 1 s earlier, within the minute)."""
        minute = window.minute_of(lo)
        second_ms = max(lo - lo % window.SECOND_MS - batch.PACK_SPAN_MS + window.SECOND_MS, minute * window.MINUTE_MS)

        def one_shard(shard: int) -> list[dict[str, Any]]:
            return query_items(
                self.client,
                {
                    "TableName": self.table,
                    **sort_key_between(
                        keys.sum_event_pk(key, minute, shard),
                        keys.sum_event_sk_bound(second_ms),
                        keys.sum_event_sk_bound(hi + 1),
                    ),
                    "ConsistentRead": True,
                },
            )

        return [raw_item(item) for items in runtime.fan_out(one_shard, range(keys.SUM_EVENT_SHARDS)) for item in items]


def raw_item(item: dict[str, Any]) -> batch.RawItem:
    """An event item's raw values: one for a posted value, every value of a packed item (with the run that wrote it;
    none on the text items of older versions, written in one transaction with their sums)."""
    at = read_int(item["at"])
    if PACKED in item:
        values = [(at + offset, value) for offset, value in batch.decode_pack(item[PACKED]["B"])]
        return batch.RawItem(item[RUN]["B"], values)
    if TEXT_PACKED in item:
        return batch.RawItem(None, [(at + o, v) for o, v in batch.decode_text_pack(item[TEXT_PACKED]["S"])])
    return batch.RawItem(None, [(at, read_int(item["v"]))])
