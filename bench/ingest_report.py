"""The ingest cost section of the benchmark report (bench/ingest.py measures; this writes it up): the stream as
modelled, units per event by AWS's rules and as DynamoDB Local reports them, the goals, and the cost of 1 B events
a day at list prices."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.common import table_md
from bench.pricing import Bill
from bench.stream_model import (
    DAY_S,
    EVENTS_PER_DAY,
    EVENTS_PER_S,
    REQUEST_EVENTS,
    UNIFORM_100K,
    ZIPF_100K,
    Batching,
    Distribution,
)

if TYPE_CHECKING:
    from bench.ingest import Case, EventKind

# List prices, us-east-1 (../shared/notes/aws-billing-and-delivery.md).
WRITE_UNIT_USD = 0.625 / 1e6
READ_UNIT_USD = 0.125 / 1e6
KINESIS_GB_USD = 0.08
KINESIS_STREAM_HOUR_USD = 0.04
LAMBDA_REQUEST_USD = 0.20 / 1e6
LAMBDA_GB_S_USD = 0.0000166667
API_REQUEST_USD = 3.50 / 1e6
CONSUMER_MEMORY_GB = 0.5  # lambda_memory_size in .chalice/config.json
# The consumer's duration is not measured (DynamoDB Local's latency is not AWS's): a round trip to DynamoDB is taken
# as 8 ms, 32 at a time (the consumer's executor, runtime.EXECUTOR_WORKERS), plus 20 ms per invocation.
ROUND_TRIP_S = 0.008
PARALLEL_ROUND_TRIPS = 32
INVOCATION_S = 0.02

DEFAULT_BATCHING = Batching(1, 1_000)  # the consumer's own (chalicelib/ingest/consumer.py)
SEPARATOR = "; "


def section(
    cases: Sequence[Case],
    direct: dict[str, Bill],
    seconds: float,
    kinds: Sequence[EventKind],
    sample_text: str,
) -> str:
    return "\n\n".join(
        [
            # Kept as it was: the docs link to this heading's anchor (#ingest-the-events-stream-against-the-direct-endpoints).
            "### Ingest: the events stream against the direct endpoints",
            f"_Measured {time.strftime('%Y-%m-%d')}._",
            _model_text(),
            _stream_table(cases),
            _units_text(seconds, len(cases), sample_text),
            *(_units_table(kind, cases, direct[kind.type]) for kind in kinds),
            "**Goals**, in write units per event by AWS's rules:",
            _goals_table(cases, direct),
            _cost_text(),
            _cost_table(cases),
        ]
    )


def _model_text() -> str:
    return (
        f"**The stream as modelled** (bench/stream_model.py). 1 B events a day are {EVENTS_PER_S:,.0f} a second: "
        f"`POST /events` of {REQUEST_EVENTS} events, evenly spaced, each event's key drawn from the distribution, "
        "each request packed as the producer packs it (one record per partition key). Records go to shards by the "
        "MD5 of their partition key (equal hash ranges). There are as many shards as an on-demand stream holds for "
        "the steady rate: room for twice the records/s (1,000 a shard) and bytes/s (1 MB a shard), at least 4; "
        "fewer would break the per-shard limits, more would spread each key's events thinner. One hot key is one "
        "shard however many there are. Each shard's records are cut into batches as Lambda's event source mapping "
        "cuts them: at the batching window after a batch's first record, at the batch size (records), or before "
        "the invocation payload passes 6 MB (base64 data plus ~450 bytes a record), whichever comes first. A slice "
        "of the stream (60 s for the 1 s window, 90 s for 60 s, starting on a minute) is simulated on every shard; "
        "this table is exact for it."
    )


def _stream_table(cases: Sequence[Case]) -> str:
    rows = []
    streams = {(c.kind.type, c.distribution.name): c for c in cases}  # the first case of each stream
    for s in streams.values():
        mine = [c for c in cases if c.kind is s.kind and c.distribution is s.distribution]
        cuts = SEPARATOR.join(
            f"{c.batching.label}: {c.batches_per_s:,.1f}/s, {c.events / c.batches:,.0f} events, "
            f"{c.groups / c.batches:,.0f} keys, {c.records / c.batches:,.0f} records"
            for c in mine
        )
        rows.append(
            [
                s.kind.label,
                s.distribution.name,
                f"{s.rate.events_per_record:,.1f}",
                f"{s.rate.records_per_s:,.0f}",
                str(s.shards),
                f"{s.rate.billed_kb_per_s / EVENTS_PER_S:.3f}",
                cuts,
            ]
        )
    headers = ["events", "distribution", "events/record", "records/s", "shards", "billed KB/event"]
    return table_md([*headers, "batches (window, batch size): per s, and per batch"], rows)


def _units_text(seconds: float, cases: int, sample_text: str) -> str:
    return (
        "**Units per event** through the consumer (`consumer.apply_records` with the real appliers, on DynamoDB "
        "Local), priced by AWS's rules from the items' sizes before and after each write (bench/pricing.py). AWS's "
        "rules govern, because they are the bill; DynamoDB Local's own figures are beside them (it misprices "
        f"transactions and index writes). {sample_text} Direct: one request per event through the HTTP stack, "
        f"repeated, priced the same way. {cases} cases in {seconds:.0f} s."
    )


def _units_table(kind: EventKind, cases: Sequence[Case], direct: Bill) -> str:
    rows = []
    for c in (c for c in cases if c.kind is kind):
        rows.append(
            [
                c.distribution.name,
                c.batching.label,
                f"**{c.per_event(c.bill.write_units):.3g}**",
                f"{c.per_event(c.bill.index_write_units):.3g}",
                f"{c.per_event(c.bill.read_units):.3g}",
                f"{c.per_event(c.bill.local_write_units):.3g}",
                f"{c.per_event(c.bill.local_read_units):.3g}",
                f"{c.bill.write_units / c.groups:.2f}",
                f"{c.drawn_keys:,} / {c.metered_groups:,}",
            ]
        )
    headers = ["distribution", "window, batch size", "write units/event", "of which index", "read units/event"]
    headers += ["write (Local)", "read (Local)", "write units per key per batch", "keys / groups metered"]
    direct_line = (
        f"**{kind.label.capitalize()}.** Direct, one request per event: {direct.write_units:.2f} write units "
        f"({direct.index_write_units:.2f} of them index) and {direct.read_units:.2f} read units by AWS's rules; "
        f"DynamoDB Local: {direct.local_write_units:.2f} and {direct.local_read_units:.2f}."
    )
    return direct_line + "\n\n" + table_md(headers, rows)


def _find(cases: Sequence[Case], kind: str, distribution: Distribution, batching: Batching) -> Case | None:
    return next(
        (c for c in cases if c.kind.type == kind and c.distribution is distribution and c.batching == batching), None
    )


def _goals_table(cases: Sequence[Case], direct: dict[str, Bill]) -> str:
    per_event = [
        (ZIPF_100K, DEFAULT_BATCHING, 1.0),
        (ZIPF_100K, Batching(60, 1_000), 0.3),
        (ZIPF_100K, Batching(60, 10_000), 0.3),
        (UNIFORM_100K, DEFAULT_BATCHING, 4.0),
    ]
    rows = []
    for distribution, batching, goal in per_event:
        case = _find(cases, "hit", distribution, batching)
        if case is not None:
            units = case.per_event(case.bill.write_units)
            rows.append(
                [
                    f"hits, {distribution.name}, {batching.label}",
                    f"<= {goal:g} per event",
                    f"{units:.3g}",
                    _met(units, goal),
                ]
            )
    if rows:  # the uniform case's goal is set below a direct request's cost
        rows[-1][1] += f" (direct: {direct['hit'].write_units:.0f})"
    for case in (c for c in cases if c.kind.type == "metric"):
        units = case.bill.write_units / case.groups
        rows.append(
            [
                f"metrics, {case.distribution.name}, {case.batching.label}",
                "<= 5 per key per batch",
                f"{units:.3g} ({case.per_event(case.bill.write_units):.3g} per event)",
                _met(units, 5.0),
            ]
        )
    return table_md(["case", "goal", "measured", "met"], rows)


def _met(value: float, goal: float) -> str:
    return "yes" if value <= goal else "**no**"


# --- 1 B events a day at list prices -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyCost:
    writes: float
    reads: float
    kinesis: float
    lambda_: float
    api: float

    @property
    def total(self) -> float:
        return self.writes + self.reads + self.kinesis + self.lambda_ + self.api

    def dominant(self) -> str:
        parts = {
            "DynamoDB writes": self.writes,
            "DynamoDB reads": self.reads,
            "Kinesis": self.kinesis,
            "Lambda": self.lambda_,
            "API Gateway": self.api,
        }
        name = max(parts, key=lambda k: parts[k])
        return f"{name} ({parts[name] / self.total:.0%})"


def daily_cost(c: Case) -> DailyCost:
    """1 B events a day of the case's type, distribution and batching, at list prices."""
    invocations = c.batches_per_s * DAY_S
    round_trips = c.bill.round_trips / c.batches
    groups = c.groups / c.batches
    duration_s = INVOCATION_S + round_trips * ROUND_TRIP_S / min(PARALLEL_ROUND_TRIPS, max(1.0, groups))
    kinesis_gb = c.rate.billed_kb_per_s * DAY_S / (1024 * 1024)
    return DailyCost(
        writes=c.per_event(c.bill.write_units) * EVENTS_PER_DAY * WRITE_UNIT_USD,
        reads=c.per_event(c.bill.read_units) * EVENTS_PER_DAY * READ_UNIT_USD,
        kinesis=kinesis_gb * KINESIS_GB_USD + 24 * KINESIS_STREAM_HOUR_USD,
        lambda_=invocations * (LAMBDA_REQUEST_USD + duration_s * CONSUMER_MEMORY_GB * LAMBDA_GB_S_USD),
        api=EVENTS_PER_DAY / REQUEST_EVENTS * API_REQUEST_USD,
    )


def _cost_text() -> str:
    return (
        "**1 B events a day at list prices** (us-east-1, on demand): DynamoDB $0.625 per million write units and "
        "$0.125 per million read units; Kinesis $0.08 per GB in, each record rounded up to 1 KB, plus $0.04 per "
        "stream-hour; Lambda $0.20 per million invocations plus $0.0000166667 per GB-second (the consumer at "
        f"{CONSUMER_MEMORY_GB * 1024:.0f} MB; its duration estimated, not measured, at {ROUND_TRIP_S * 1000:.0f} ms "
        f"per DynamoDB round trip, {PARALLEL_ROUND_TRIPS} at a time, plus {INVOCATION_S * 1000:.0f} ms per "
        f"invocation); API Gateway $3.50 per million `POST /events` of {REQUEST_EVENTS}. Each row is 1 B events a "
        f"day of that type alone, with the consumer's batching ({DEFAULT_BATCHING.label}); the last columns give "
        "the total with a 60 s window. Left out: the API's own Lambda (2 M invocations a day, $0.40 plus duration), "
        "compaction of metric minutes, CloudWatch, and reads by clients (their units are in the hit counters' and "
        "the last-hour sums' sections)."
    )


def _cost_table(cases: Sequence[Case]) -> str:
    rows = []
    for c in (c for c in cases if c.batching == DEFAULT_BATCHING):
        cost = daily_cost(c)
        others = [_find(cases, c.kind.type, c.distribution, b) for b in (Batching(60, 1_000), Batching(60, 10_000))]
        rows.append(
            [
                c.kind.label,
                c.distribution.name,
                *(f"{v:,.2f}" for v in (cost.writes, cost.reads, cost.kinesis, cost.lambda_, cost.api)),
                f"**{cost.total:,.0f}**",
                f"{cost.total * 30:,.0f}",
                cost.dominant(),
                *(f"{daily_cost(o).total:,.0f}" if o else "" for o in others),
            ]
        )
    headers = ["events", "distribution", "DynamoDB writes $/day", "reads $/day", "Kinesis $/day", "Lambda $/day"]
    headers += ["API Gateway $/day", "total $/day", "$/month (30 days)", "dominant"]
    return table_md([*headers, "total $/day at 60 s, 1,000", "at 60 s, 10,000"], rows)
