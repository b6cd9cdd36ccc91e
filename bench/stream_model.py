"""The events stream at 1 B events a day as Kinesis and Lambda would cut it into consumer batches. Pure: no AWS.

- Arrivals: POST /events requests of REQUEST_EVENTS events, evenly spaced at the rate of EVENTS_PER_DAY; each
  event's key is drawn from a distribution (one hot key, Zipf, uniform).
- Records: as chalicelib/ingest/producer.pack packs a request, one record per partition key per request, holding
  that key's events of the request (500 events never fill a record's 1 MB).
- Shards: Kinesis hashes a record's partition key with MD5 into a 128-bit integer; each shard owns an equal range.
  The shard count is what an on-demand stream settles at for a steady rate (`on_demand_shards`).
- Batches: Lambda's event source mapping gathers a shard's records until the batching window has passed since the
  batch's first record, the batch holds `size` records, or the invocation payload would pass 6 MB, whichever comes
  first (one invocation per shard at a time, ParallelizationFactor 1; an invocation is assumed to end before the
  next batch is due).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

EVENTS_PER_DAY = 1_000_000_000
DAY_S = 86_400
REQUEST_EVENTS = 500
EVENTS_PER_S = EVENTS_PER_DAY / DAY_S
REQUESTS_PER_S = EVENTS_PER_S / REQUEST_EVENTS

SHARD_RECORDS_PER_S = 1_000  # a shard's write limit: 1,000 records/s or 1 MB/s
SHARD_BYTES_PER_S = 1 << 20
ON_DEMAND_MIN_SHARDS = 4  # a new on-demand stream's capacity (4 MB/s, 4,000 records/s)
ON_DEMAND_HEADROOM = 2  # on demand keeps room for twice the peak it has seen
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
# What a record adds to the consumer's event besides its base64 data and partition key: eventID, eventSourceARN,
# the sequence number, the role and the field names.
RECORD_ENVELOPE_BYTES = 450
KINESIS_BILLING_BYTES = 1024  # on demand, each record is billed rounded up to 1 KB


@dataclass(frozen=True)
class Distribution:
    """How the keys of events are drawn: one key, Zipf with exponent `zipf_s` over `keys`, or uniform."""

    name: str
    keys: int
    zipf_s: float | None = None

    def cumulative_weights(self) -> list[float]:
        weights = (1.0 / (rank + 1) ** self.zipf_s if self.zipf_s else 1.0 for rank in range(self.keys))
        return list(itertools.accumulate(weights))


HOT = Distribution("one hot key", 1)
ZIPF_1K = Distribution("Zipf s=1.1, 1,000 keys", 1_000, 1.1)
ZIPF_100K = Distribution("Zipf s=1.1, 100,000 keys", 100_000, 1.1)
UNIFORM_100K = Distribution("uniform, 100,000 keys", 100_000)
DISTRIBUTIONS = (HOT, ZIPF_1K, ZIPF_100K, UNIFORM_100K)


@dataclass(frozen=True)
class Requests:
    """A slice of requests: request i's distinct keys (first appearance first) and each one's events, flattened;
    and each record's events' positions in its request (the ids the consumer's registry claims)."""

    keys: array[int]
    events: array[int]
    starts: array[int]  # request i's records are [starts[i], starts[i + 1])
    positions: array[int]  # record j's events' positions are positions[position_starts[j]:position_starts[j + 1]]
    position_starts: array[int]

    @property
    def count(self) -> int:
        return len(self.starts) - 1

    def arrival_ms(self, request: int) -> float:
        return request * 1000 / REQUESTS_PER_S


def draw_requests(distribution: Distribution, seconds: float, rng: random.Random) -> Requests:
    """`seconds` of requests at the daily rate, each of REQUEST_EVENTS events with keys from the distribution."""
    population = range(distribution.keys)
    cumulative = distribution.cumulative_weights()
    keys, events, starts = array("i"), array("i"), array("i", [0])
    positions, position_starts = array("i"), array("i", [0])
    for _ in range(round(seconds * REQUESTS_PER_S)):
        drawn = rng.choices(population, cum_weights=cumulative, k=REQUEST_EVENTS)
        at: dict[int, list[int]] = {}
        for position, key in enumerate(drawn):
            at.setdefault(key, []).append(position)
        for key, where in at.items():
            keys.append(key)
            events.append(len(where))
            positions.extend(where)
            position_starts.append(len(positions))
        starts.append(len(keys))
    return Requests(keys, events, starts, positions, position_starts)


def shard_of(partition_key: str, shards: int) -> int:
    """The shard Kinesis puts a partition key on: MD5 as a 128-bit integer, shards owning equal ranges."""
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big") * shards >> 128


@dataclass(frozen=True)
class Keyspace:
    """What a stream's records of each key look like: its partition key, one event's encoded bytes."""

    partition_keys: Sequence[str]
    event_bytes: Sequence[int]

    def record_bytes(self, key: int, events: int) -> int:
        """Data (`{"events":[...]}`, comma-separated) plus partition key: what Kinesis counts and bills."""
        return len('{"events":[]}') + events * (self.event_bytes[key] + 1) - 1 + len(self.partition_keys[key])

    def payload_bytes(self, key: int, events: int) -> int:
        """What the record adds to the consumer's invocation payload: its data in base64, and its envelope."""
        data = self.record_bytes(key, events) - len(self.partition_keys[key])
        return 4 * math.ceil(data / 3) + len(self.partition_keys[key]) + RECORD_ENVELOPE_BYTES


@dataclass(frozen=True)
class StreamRate:
    """The stream's records at the daily rate, from a slice of requests."""

    records_per_s: float
    bytes_per_s: float
    billed_kb_per_s: float  # each record rounded up to 1 KB

    @property
    def events_per_record(self) -> float:
        return EVENTS_PER_S / self.records_per_s


def stream_rate(requests: Requests, keyspace: Keyspace) -> StreamRate:
    seconds = requests.count / REQUESTS_PER_S
    record_bytes = keyspace.record_bytes
    sizes = [record_bytes(k, n) for k, n in zip(requests.keys, requests.events, strict=True)]
    billed = sum(-(-size // KINESIS_BILLING_BYTES) for size in sizes)
    return StreamRate(len(sizes) / seconds, sum(sizes) / seconds, billed / seconds)


def on_demand_shards(rate: StreamRate) -> int:
    """The shards an on-demand stream holds for a steady rate: room for twice the rate (records and bytes),
    and never fewer than a new stream's four."""
    needed = max(rate.records_per_s / SHARD_RECORDS_PER_S, rate.bytes_per_s / SHARD_BYTES_PER_S)
    return max(ON_DEMAND_MIN_SHARDS, math.ceil(ON_DEMAND_HEADROOM * needed))


# --- records on shards, cut into batches ---------------------------------------------------------------------------


class Record(NamedTuple):
    """One record on its shard: the n-th of that shard (`sequence`), one key's events of one request (the `request`-th,
    its `record`-th record: Requests.positions says where its events are in the request)."""

    shard: int
    sequence: int
    key: int
    events: int
    arrival_ms: float
    request: int = -1
    record: int = -1


@dataclass(frozen=True)
class ShardRecords:
    """Every record of a slice in arrival order, as columns (millions of records: no object each)."""

    shard: array[int]
    sequence: array[int]  # the record's position on its shard
    key: array[int]
    events: array[int]
    arrival_ms: array[float]
    payload_bytes: array[int]  # what it adds to the consumer's invocation payload
    request: array[int]
    record: array[int]  # its index in the slice's Requests

    def __len__(self) -> int:
        return len(self.key)

    def __getitem__(self, i: int) -> Record:
        return Record(
            self.shard[i],
            self.sequence[i],
            self.key[i],
            self.events[i],
            self.arrival_ms[i],
            self.request[i],
            self.record[i],
        )


def shard_records(requests: Requests, shard_of_key: Sequence[int], keyspace: Keyspace) -> ShardRecords:
    """Every record of the slice, in arrival order, numbered per shard."""
    columns = ShardRecords(
        array("i"), array("i"), array("i"), array("i"), array("d"), array("i"), array("i"), array("i")
    )
    next_sequence = [0] * (max(shard_of_key, default=0) + 1)
    payload = keyspace.payload_bytes
    keys, events, starts = requests.keys, requests.events, requests.starts
    for request in range(requests.count):
        arrival = requests.arrival_ms(request)
        for i in range(starts[request], starts[request + 1]):
            key, shard = keys[i], shard_of_key[keys[i]]
            columns.shard.append(shard)
            columns.sequence.append(next_sequence[shard])
            columns.key.append(key)
            columns.events.append(events[i])
            columns.arrival_ms.append(arrival)
            columns.payload_bytes.append(payload(key, events[i]))
            columns.request.append(request)
            columns.record.append(i)
            next_sequence[shard] += 1
    return columns


@dataclass(frozen=True)
class Batching:
    """An event source mapping's settings: MaximumBatchingWindowInSeconds and BatchSize (records)."""

    window_s: float
    size: int

    @property
    def label(self) -> str:
        return f"{self.window_s:g} s, {self.size:,}"


@dataclass
class Batch:
    """One consumer invocation's records from one shard: their sequence range and what they hold."""

    shard: int
    first_sequence: int
    opened_ms: float
    closed_ms: float = 0.0
    records: int = 0
    events: int = 0
    payload_bytes: int = 0
    keys: dict[int, int] = field(default_factory=dict)  # key -> its events in the batch


@dataclass(frozen=True)
class Cut:
    """A slice's batches, closed by its end, by close time; and each record's batch (-1: none)."""

    batches: list[Batch]
    batch_of: array[int]


def cut(records: ShardRecords, batching: Batching, until_ms: float) -> Cut:
    """Each shard's records cut into batches as Lambda cuts them: at the window after a batch's first record, at
    the batch size, or before the payload passes 6 MB. A batch still gathering at `until_ms` is left out."""
    window_ms = batching.window_s * 1000
    open_batches: dict[int, Batch] = {}
    closed: list[Batch] = []
    holder: list[Batch | None] = []
    for i in range(len(records)):
        shard, arrival, payload = records.shard[i], records.arrival_ms[i], records.payload_bytes[i]
        if arrival >= until_ms:
            holder.append(None)
            continue
        batch = open_batches.get(shard)
        if batch is not None and (
            arrival >= batch.opened_ms + window_ms or batch.payload_bytes + payload > LAMBDA_PAYLOAD_BYTES
        ):
            batch.closed_ms = min(arrival, batch.opened_ms + window_ms)
            closed.append(open_batches.pop(shard))
            batch = None
        if batch is None:
            batch = open_batches[shard] = Batch(shard, records.sequence[i], arrival)
        key = records.key[i]
        batch.records += 1
        batch.events += records.events[i]
        batch.payload_bytes += payload
        batch.keys[key] = batch.keys.get(key, 0) + records.events[i]
        holder.append(batch)
        if batch.records == batching.size:
            batch.closed_ms = arrival
            closed.append(open_batches.pop(shard))
    for batch in open_batches.values():
        if batch.opened_ms + window_ms <= until_ms:
            batch.closed_ms = batch.opened_ms + window_ms
            closed.append(batch)
    closed.sort(key=lambda b: (b.closed_ms, b.shard))
    index = {id(b): n for n, b in enumerate(closed)}
    return Cut(closed, array("i", (-1 if b is None else index.get(id(b), -1) for b in holder)))


# --- which keys to apply: a sample that stands for all of them -----------------------------------------------------


@dataclass(frozen=True)
class KeyFigures:
    """A key's share of a slice: the batches it appears in, and its events in them."""

    touches: int
    events: int


def key_figures(batches: Iterable[Batch]) -> dict[int, KeyFigures]:
    touches: Counter[int] = Counter()
    events: Counter[int] = Counter()
    for batch in batches:
        touches.update(batch.keys.keys())
        events.update(batch.keys)
    return {key: KeyFigures(t, events[key]) for key, t in touches.items()}


@dataclass(frozen=True)
class KeySample:
    """Drawn keys: each is metered in a run of `metered[key]` consecutive batches of the `touches[key]` it appears
    in, and stands for `weight(key)` times that run (Horvitz-Thompson: 1 / probability, times the batches the run
    stands for)."""

    probability: dict[int, float]
    metered: dict[int, int]
    touches: dict[int, int]

    def drawn(self) -> list[int]:
        return sorted(self.probability)

    def weight(self, key: int) -> float:
        return self.touches[key] / self.metered[key] / self.probability[key]


def run_length(figures: KeyFigures, run: int, run_events: int) -> int:
    """Batches to meter of a key: up to `run`, fewer where its batches are large (at least one)."""
    per_batch = figures.events / figures.touches
    return max(1, min(figures.touches, run, int(run_events // per_batch)))


def draw_keys(figures: dict[int, KeyFigures], budget: int, run: int, run_events: int, seed: str) -> KeySample:
    """Keys whose metered runs add up to about `budget` (key, batch) groups.

    A key's cost is mostly per batch it appears in, so a key is drawn with probability proportional to the batches
    it would be metered in, up to 1: every drawn key then stands for about the same cost, and the estimate is
    steady. `run` bounds the batches metered per key, so that a sample holds many keys even where a few keys appear
    in every batch; `run_events` bounds them where a key's batches hold many events (one hot key)."""
    metered = {key: run_length(f, run, run_events) for key, f in figures.items()}
    keys_metered = Counter(metered.values())  # how many keys would be metered in m batches

    def expected(tau: float) -> float:
        return sum(n * m * min(1.0, m / tau) for m, n in keys_metered.items())

    tau = 1e-9
    if expected(tau) > budget:
        low, high = tau, float(sum(metered.values()))
        for _ in range(60):
            tau = math.sqrt(low * high)
            low, high = (tau, high) if expected(tau) > budget else (low, tau)
        tau = high
    chances = {key: min(1.0, m / tau) for key, m in metered.items()}
    drawn = {key: p for key, p in chances.items() if _uniform(seed, key) < p}
    return KeySample(drawn, {k: metered[k] for k in drawn}, {k: figures[k].touches for k in drawn})


def _uniform(seed: str, key: int) -> float:
    """A stable draw in [0, 1) per key."""
    return int.from_bytes(hashlib.md5(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
