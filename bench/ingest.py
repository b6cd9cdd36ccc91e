"""What ingest through the events stream costs at 1 B events a day, for realistic key distributions, priced by
AWS's rules (bench/pricing.py) next to DynamoDB Local's figures; then throughput and equal results against the
direct endpoints (bench/ingest_throughput.py).

For each event type (hits, metric values, stream values), each key distribution (bench/stream_model.py: one hot
key, Zipf s=1.1 over 1,000 and over 100,000 keys, uniform over 100,000) and each consumer batching (window and
batch size):
1. A slice of the stream at the daily rate is simulated whole (pure Python): requests of 500 events, packed into
   records, hashed to the shards an on-demand stream holds for that rate, cut into each shard's batches.
2. A sample of keys is applied through the real consumer (consumer.apply_records with consumer.appliers, on
   DynamoDB Local) with the pricing meter attached. Keys are drawn with a probability proportional to the batches
   they appear in, up to RUN_BATCHES (stream_model.draw_keys). Each drawn key is metered in a run of up to
   RUN_BATCHES consecutive batches of its own, each batch's records of the key in one apply_records call; before
   the run, its latest events (up to WARM_UP_EVENTS) are applied unmetered, so that its items exist and hold what
   they would (this minute's sub-totals, its sketch), or, with no events before the run, one event in the minute
   before the slice. The bill of each key is charged to it alone (PricingMeter.charging), so keys run in parallel.
3. A drawn key stands for (its batches / its metered batches) / its probability keys' runs. Units per (key, batch)
   are the weighted bills over the weighted metered groups (a ratio estimate: a key's cost is mostly per batch it
   appears in); units per event are that times the slice's exact groups over its exact events.

    python -m bench ingest
"""

from __future__ import annotations

import base64
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from bench import ingest_report, ingest_throughput
from bench.common import fresh_table, local_gateway, set_env, unmetered_client, use_endpoint
from bench.ingest_throughput import gateway_request
from bench.pricing import Bill, PricingMeter, unmetered
from bench.stream_model import (
    DISTRIBUTIONS,
    Batch,
    Batching,
    Cut,
    Distribution,
    KeySample,
    Keyspace,
    Record,
    Requests,
    ShardRecords,
    StreamRate,
    cut,
    draw_keys,
    draw_requests,
    key_figures,
    on_demand_shards,
    shard_of,
    shard_records,
    stream_rate,
)
from chalicelib.hits import slots, sweep
from chalicelib.hits.store import HitStore
from chalicelib.ingest import consumer, records
from chalicelib.process import observability, runtime, settings
from chalicelib.process.observability import SERVICE
from chalicelib.pure import clock

BATCHINGS = (Batching(1, 1_000), Batching(60, 1_000), Batching(60, 10_000))
# Seconds of stream per batching window, from a minute's start: a minute of 1 s batches (a metric key's items are
# per minute), and at least four batches per shard with a 60 s window (at this rate they fill in ~20 s at most).
SLICE_S = {1: 60, 60: 90}
# (key, batch) groups applied per case: the sample's size. Its estimate's error is about 1 / sqrt(groups).
GROUP_BUDGET = 80
# Batches metered per drawn key at most (consecutive ones): a sample holds many keys even where a few keys appear in
# every batch.
RUN_BATCHES = 6
# Events metered per drawn key at most, unless one batch holds more: one hot key's batches are all alike.
RUN_EVENTS = 20_000
KEY_WORKERS = 4  # drawn keys applied at once (each key's batches in order, on one thread)
SAMPLE_TEXT = (
    f"A sample of keys stands for each case: about {GROUP_BUDGET} metered (key, batch) groups. Keys are drawn with a "
    f"probability proportional to the batches they would be metered in: a run of up to {RUN_BATCHES} consecutive "
    f"batches of the key (fewer where they hold over {RUN_EVENTS:,} events, one at least), metered after the key's "
    "latest events before the run were applied unmetered (so its items hold what they would). Units per (key, "
    "batch) are the drawn keys' weighted bills over their weighted groups, times the slice's exact groups over its "
    "exact events. The error is a few percent where a key's cost per batch varies (metric and stream values), none "
    "where it is fixed (hits)."
)
SEED = 11

# --- the events of each type ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventKind:
    """One event type as the bench draws it: the events of key number `key` at `time_ms`."""

    type: str
    label: str
    make: Callable[[int, int, random.Random], records.Event]

    def event(self, key: int, time_ms: int, rng: random.Random) -> records.Event:
        return self.make(key, time_ms, rng)


KINDS = (
    EventKind("hit", "hits", lambda key, at, _: records.HitEvent(f"/api/products/{key}/", at)),
    EventKind(
        "metric",
        "metric values",
        lambda key, at, rng: records.MetricEvent(f"api.latency.{key}", round(rng.lognormvariate(5, 1.5)), at),
    ),
    EventKind(
        "value",
        "stream values",
        lambda key, at, rng: records.ValueEvent(f"sensor-{key}", round(rng.lognormvariate(3, 1), 3), at, "bench"),
    ),
)


@functools.cache
def keyspace(kind: EventKind, keys: int) -> Keyspace:
    """The partition keys and event sizes of keys 0..keys-1 (the same for every distribution over as many keys)."""
    rng = random.Random(SEED)
    events = [kind.event(key, clock.now_ms(), rng) for key in range(keys)]
    empty = len(records.encode([]))
    return Keyspace([records.partition_key(e) for e in events], [len(records.encode([e])) - empty for e in events])


# --- one case: a type, a distribution, a batching ------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """A type's events of one distribution on the stream: its records, shards, and each batching's batches."""

    kind: EventKind
    distribution: Distribution
    keyspace: Keyspace
    requests: Requests
    rate: StreamRate
    shards: int
    shard_of_key: list[int]
    records: ShardRecords
    cuts: dict[Batching, Cut]

    def batches(self, batching: Batching) -> list[Batch]:
        return self.cuts[batching].batches


def stream(kind: EventKind, distribution: Distribution, requests: Requests) -> Stream:
    space = keyspace(kind, distribution.keys)
    rate = stream_rate(requests, space)
    shards = on_demand_shards(rate)
    shard_of_key = [shard_of(pk, shards) for pk in space.partition_keys]
    records = shard_records(requests, shard_of_key, space)
    cuts = {b: cut(records, b, SLICE_S[int(b.window_s)] * 1000) for b in BATCHINGS}
    return Stream(kind, distribution, space, requests, rate, shards, shard_of_key, records, cuts)


@dataclass
class Case:
    """What one case measured: the slice's exact figures, and the sample's bill weighted to the whole slice."""

    kind: EventKind
    distribution: Distribution
    batching: Batching
    shards: int
    rate: StreamRate
    slice_s: float
    batches: int
    records: int
    events: int
    groups: int  # (key, batch) pairs of the slice
    bill: Bill = field(default_factory=Bill)  # estimated for the whole slice
    drawn_keys: int = 0
    metered_groups: int = 0

    def per_event(self, units: float) -> float:
        return units / self.events

    @property
    def batches_per_s(self) -> float:
        return self.batches / self.slice_s


Located = list[tuple[Record, int | None]]  # a key's records in arrival order, each with its batch's index


def locate_drawn(s: Stream, samples: dict[Batching, KeySample]) -> dict[Batching, dict[int, Located]]:
    """Every record of each batching's drawn keys, with the batch holding it (None: none)."""
    drawn = {b: set(sample.drawn()) for b, sample in samples.items()}
    found: dict[Batching, dict[int, Located]] = {b: {} for b in samples}
    wanted = set().union(*drawn.values())
    for i, key in enumerate(s.records.key):
        if key in wanted:
            for b, keys in drawn.items():
                if key in keys:
                    index = s.cuts[b].batch_of[i]
                    found[b].setdefault(key, []).append((s.records[i], None if index < 0 else index))
    return found


WARM_UP_EVENTS = 2_000  # of a key's latest events before its metered run: its items hold what they would hold


class Applier:
    """Applies drawn keys' records through the real consumer into one table, with the meter attached; the events'
    times are counted from `anchor_ms`."""

    def __init__(self, meter: PricingMeter, s: Stream, batches: Sequence[Batch], anchor_ms: int) -> None:
        self.meter, self.stream, self.batches, self.anchor_ms = meter, s, batches, anchor_ms

    def received(
        self, record: Record, rng: random.Random, sequence: str | None = None, ids: bool = False
    ) -> consumer.Received:
        """The record as the consumer receives it: one key's events of one request, as the API packs them; with
        their ids (its request's origin and the events' positions in it) when `ids`, which makes the consumer claim
        them in its registry of first copies: only whole batches can show what those claims cost."""
        at = self.anchor_ms + int(record.arrival_ms)
        events = [self.stream.kind.event(record.key, at, rng) for _ in range(record.events)]
        event_ids: list[records.EventId] = []
        if ids:
            requests = self.stream.requests
            where = requests.positions[
                requests.position_starts[record.record] : requests.position_starts[record.record + 1]
            ]
            event_ids = [records.EventId(f"bench-{SEED}-{record.request:08d}", p) for p in where]
        data = base64.b64encode(records.encode(events, event_ids)).decode()
        return consumer.Received(shard_id(record.shard), sequence or f"49{record.sequence:054d}", data)

    def key(self, key: int, located: Located, sample: KeySample) -> Bill:
        """Warm the key up, then apply its metered run of batches: the run's bill."""
        rng = random.Random(f"{SEED}:{key}")
        order = list(dict.fromkeys(i for _, i in located if i is not None))  # its batches, in stream order
        start = rng.randrange(len(order) - sample.metered[key] + 1)
        run = order[start : start + sample.metered[key]]
        first = next(n for n, (_, i) in enumerate(located) if i == run[0])
        with unmetered():
            self.warm_up(key, [r for r, _ in located[:first]], rng)
        with self.meter.charging() as bill:
            for index in run:
                received = [self.received(r, rng) for r, i in located if i == index]
                self.apply(received, self.anchor_ms + int(self.batches[index].closed_ms))
        return bill

    def warm_up(self, key: int, history: list[Record], rng: random.Random) -> None:
        """The key's latest events before its run, or one event in the minute before the slice: its items exist
        and hold what they would, with the marker of its shard."""
        kept: list[Record] = []
        for record in reversed(history):
            left = WARM_UP_EVENTS - sum(r.events for r in kept)
            if left <= 0:
                break
            kept.append(record._replace(events=min(record.events, left)))
        if not kept:
            earlier = Record(self.stream.shard_of_key[key], 0, key, 1, -30_000.0)
            self.apply([self.received(earlier, rng, f"48{0:054d}")], self.anchor_ms - 29_000)
            return
        received = [self.received(r, rng) for r in reversed(kept)]
        self.apply(received, self.anchor_ms + int(kept[0].arrival_ms) + 1)

    @staticmethod
    def apply(received: list[consumer.Received], now_ms: int) -> None:
        # At the batch's own time (what "this minute" is to the consumer), through the Lambda's metrics middleware,
        # which flushes (here: drops) the consumer's counts.
        clock.set_source(lambda: now_ms / 1000)
        try:
            failed = observability.flush_metrics(None, lambda _: consumer.apply_records(received, consumer.appliers()))
        finally:
            clock.set_source(None)
        assert not failed, f"{len(failed)} records not applied"


def shard_id(shard: int) -> str:
    return f"shardId-{shard:012d}"


def _anchor_ms(slice_s: float) -> int:
    """The slice's start: a minute's start, far enough back that the whole slice is in the past."""
    start = clock.now_ms() - int(slice_s * 1000) - 120_000
    return start - start % 60_000


def measure_stream(client: Any, reader: Any, s: Stream) -> list[Case]:
    """Every batching of one stream: hits by whole batches of a shard (their totals, ranking lists and registry
    claims are per batch), the other types by a sample of keys (their writes are per key and batch)."""
    if s.kind.type == "hit":
        return [measure_shard(client, reader, s, b)[0] for b in BATCHINGS]
    seed = f"{SEED}:{s.kind.type}:{s.distribution.name}"
    samples = {b: draw_keys(key_figures(s.batches(b)), GROUP_BUDGET, RUN_BATCHES, RUN_EVENTS, seed) for b in BATCHINGS}
    located = locate_drawn(s, samples)
    cases: dict[tuple[tuple[int, int, int], ...], Case] = {}
    measured = []
    for b in BATCHINGS:
        # Batchings that cut the same batches (one hot key's, cut by the payload limit) are measured once.
        same = tuple((batch.shard, batch.first_sequence, batch.records) for batch in s.batches(b))
        if same not in cases:
            cases[same] = measure(client, reader, s, b, samples[b], located[b])
        measured.append(replace(cases[same], batching=b))
    return measured


def measure(
    client: Any, reader: Any, s: Stream, batching: Batching, sample: KeySample, located: dict[int, Located]
) -> Case:
    batches = s.batches(batching)
    case = Case(
        s.kind,
        s.distribution,
        batching,
        s.shards,
        s.rate,
        SLICE_S[int(batching.window_s)],
        len(batches),
        sum(b.records for b in batches),
        sum(b.events for b in batches),
        sum(len(b.keys) for b in batches),
    )
    table = fresh_table(client, "ingest-cost")
    set_env("TABLE_NAME", table)
    weighted, weighted_groups = Bill(), 0.0
    try:
        meter = PricingMeter(client, reader, remember_items=True)  # every write goes through the app's client
        with meter, ThreadPoolExecutor(KEY_WORKERS) as pool:
            applier = Applier(meter, s, batches, _anchor_ms(case.slice_s))
            drawn = sample.drawn()
            for key, bill in zip(drawn, pool.map(lambda k: applier.key(k, located[k], sample), drawn), strict=True):
                weight = sample.weight(key)
                weighted.charge(bill, weight)
                weighted_groups += sample.metered[key] * weight
                case.metered_groups += sample.metered[key]
    finally:
        client.delete_table(TableName=table)
    case.drawn_keys = len(sample.drawn())
    # A ratio estimate: the drawn keys' bill per (key, batch), times the slice's exact groups.
    case.bill = weighted.scaled(case.groups / weighted_groups) if weighted_groups else Bill()
    return case


def typical_shard(batches: Sequence[Batch]) -> int:
    """The shard whose events are nearest the mean of the shards that hold any (the busiest, for one hot key)."""
    events: dict[int, int] = {}
    for batch in batches:
        events[batch.shard] = events.get(batch.shard, 0) + batch.events
    mean = sum(events.values()) / len(events)
    return min(events, key=lambda shard: (abs(events[shard] - mean) if len(events) > 1 else 0, shard))


def measure_shard(
    client: Any, reader: Any, s: Stream, batching: Batching, passes: int | None = None
) -> tuple[Case, Bill]:
    """One shard's whole slice, batch after batch in the order the consumer gets them, each batch's records (with
    their ids) in one apply_records call at its close time, all metered: units per event of that shard. Between
    the batches, the hits' sweep passes (`passes` a minute, the setting's by default) at their own times, and after
    the slice until the ranking has caught up: the case's bill includes them; the second value is theirs alone.
    The sweep ranks what this shard's batches listed: paths are hashed to shards, so no other shard lists them."""
    every = s.batches(batching)
    shard = typical_shard(every)
    batches = [b for b in every if b.shard == shard]
    case = Case(
        s.kind,
        s.distribution,
        batching,
        s.shards,
        s.rate,
        SLICE_S[int(batching.window_s)],
        len(batches),
        sum(b.records for b in batches),
        sum(b.events for b in batches),
        sum(len(b.keys) for b in batches),
    )
    wanted = {id(b): n for n, b in enumerate(batches)}
    of_batch: list[list[Record]] = [[] for _ in batches]
    index = s.cuts[batching].batch_of
    for i in range(len(s.records)):
        if s.records.shard[i] == shard and index[i] >= 0 and id(every[index[i]]) in wanted:
            of_batch[wanted[id(every[index[i]])]].append(s.records[i])
    table = fresh_table(client, "ingest-cost")
    set_env("TABLE_NAME", table)
    passes = passes or settings.get().hit_rank_passes
    swept = Bill()
    try:
        meter = PricingMeter(client, reader, remember_items=True)
        with meter:
            applier = Applier(meter, s, batches, _anchor_ms(case.slice_s))
            sweeps = _sweep_times(applier.anchor_ms, case.slice_s, passes)
            rng = random.Random(f"{SEED}:{shard}")
            for batch, held in zip(batches, of_batch, strict=True):
                closed_ms = applier.anchor_ms + int(batch.closed_ms)
                while sweeps and sweeps[0] <= closed_ms:
                    swept.charge(_sweep_at(meter, sweeps.pop(0)))
                received = [applier.received(r, rng, ids=True) for r in held]
                applier.apply(received, closed_ms)
            for at_ms in sweeps:
                swept.charge(_sweep_at(meter, at_ms))
        case.bill = meter.bill
    finally:
        client.delete_table(TableName=table)
    case.drawn_keys = len({key for b in batches for key in b.keys})
    case.metered_groups = case.groups
    return case, swept


def _sweep_times(anchor_ms: int, slice_s: float, passes: int) -> list[int]:
    """The sweep's passes through the slice (evenly spaced, from a minute's start) and on until everything listed
    in it is rankable (the slot of its last batch plus the listing's wait, then LAG_S)."""
    interval_ms = 60_000 // passes
    drained_ms = anchor_ms + int(1000 * (slice_s + settings.get().worst_case_s + slots.SLOT_S + slots.LAG_S))
    return list(range(anchor_ms + interval_ms, drained_ms + 2 * interval_ms, interval_ms))


def _sweep_at(meter: PricingMeter, at_ms: int) -> Bill:
    """One sweep pass at `at_ms`, metered: its bill."""
    before = meter.bill.scaled(1.0)
    clock.set_source(lambda: at_ms / 1000)
    try:
        sweep.sweep(HitStore(runtime.dynamodb(), runtime.table_name()), at_ms / 1000)
    finally:
        clock.set_source(None)
    return meter.bill + before.scaled(-1.0)


# --- direct writes, for reference ----------------------------------------------------------------------------------

_DIRECT: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "hit": ("GET", "/api/hot", None),
    "value": ("POST", "/streams/hot/values", {"value": 1.5, "user": "bench"}),
    "metric": ("POST", "/metric/hot", {"value": 3}),
}


def direct_costs(gateway: Any, client: Any, reader: Any) -> dict[str, Bill]:
    """A repeated direct write of each type (one request per event), priced: the bill per event."""
    costs = {}
    for kind, (method, path, body) in _DIRECT.items():
        table = fresh_table(client, "ingest-direct")
        set_env("TABLE_NAME", table)
        gateway_request(gateway, method, path, body)  # the first write creates items; measure repeated ones
        with PricingMeter(client, reader) as meter:
            for _ in range(10):
                gateway_request(gateway, method, path, body)
            costs[kind] = meter.bill.scaled(1 / 10)
        client.delete_table(TableName=table)
    return costs


# --- the report ----------------------------------------------------------------------------------------------------


def run(endpoint_url: str) -> str:
    logging.getLogger(SERVICE).setLevel(logging.WARNING)  # thousands of batches: no log lines
    set_env("POWERTOOLS_METRICS_DISABLED", "true")
    client = use_endpoint(endpoint_url)
    reader = unmetered_client(endpoint_url)
    gateway = local_gateway()
    started = time.perf_counter()
    direct = direct_costs(gateway, client, reader)
    cases: list[Case] = []
    for distribution in DISTRIBUTIONS:
        requests = draw_requests(distribution, max(SLICE_S.values()), random.Random(SEED))
        for kind in KINDS:
            cases += measure_stream(client, reader, stream(kind, distribution, requests))
            print(f"  {kind.label}, {distribution.name}: {time.perf_counter() - started:.0f} s", flush=True)
    cost_s = time.perf_counter() - started
    throughput = ingest_throughput.report(gateway, client)
    section = ingest_report.section(cases, direct, cost_s, KINDS, SAMPLE_TEXT)
    return f"{section}\n\n**Throughput and equal results.** {throughput}"


if __name__ == "__main__":
    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        print(run(database.endpoint_url))
