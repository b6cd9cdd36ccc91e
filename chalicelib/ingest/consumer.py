"""The events stream's consumer: applies each batch of records, aggregated per key, each event exactly once.

A batch is handled in four steps:
1. decode every record (records.decode); a poison record goes to the dead-letter queue and the batch goes on;
2. claim each event's position in the registry of first copies (chalicelib/ingest/dedupe.py, one write per origin
   and block of positions) and drop the copies of events whose first copy was another (a duplicate the producer or
   a client sent again) or that the producer refused; the records from the first one holding an event that could
   not be claimed come back;
3. group the events per (type, key), in stream order, and hand each group to its capability's applier, which
   aggregates it into as few conditional writes as it can and is exactly-once by itself under redelivery (per-item
   markers, chalicelib/ingest/applied.py); the groups are applied in parallel;
4. answer Lambda with the records to retry (`batchItemFailures`): every record holding an event of a group that
   failed transiently. Lambda retries from the lowest, redelivering records already applied, which the appliers
   skip by their markers, and the registry decides each copy as it did. A group that can never apply
   (applied.Unappliable) is dead-lettered instead.

Why not Powertools' BatchProcessor: it calls a handler per record and reports the records whose handler raised.
Here nothing is written per record: a failure is known only after aggregation across records (one key's write
failing names every record holding that key's events), and a poison record is not a failure to report but one to
dead-letter. Using it would mean a second pass that re-raises for records already judged, to produce a dict
that is three lines to build.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from chalice import Blueprint
from chalice.app import KinesisEvent

from chalicelib.averages.store import AverageStore
from chalicelib.hits.store import HitStore
from chalicelib.ingest import dedupe, records
from chalicelib.ingest.applied import Unappliable
from chalicelib.ingest.records import Delivered, PoisonRecord
from chalicelib.ingest.store import FirstCopyStore
from chalicelib.metrics.rollup_store import RollupStore
from chalicelib.metrics.store import SumStore
from chalicelib.process import runtime, settings
from chalicelib.process.observability import count, logger
from chalicelib.pure import clock
from chalicelib.streams.store import StreamStore

bp = Blueprint(__name__)

Applier = Callable[[Sequence[Delivered]], None]


@dataclass(frozen=True)
class Received:
    """One Kinesis record as Lambda delivers it (data still base64)."""

    shard_id: str
    sequence_number: str
    data: str

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Received:
        # eventID is "{shard id}:{sequence number}"; the record itself does not name its shard.
        return cls(raw["eventID"].rsplit(":", 1)[0], raw["kinesis"]["sequenceNumber"], raw["kinesis"]["data"])


# Batch size 1,000 with a 1 s window: a hot key's 1,000 events cost one write per aggregate (the cost goal is set
# at batch 1,000), and a quiet stream's events wait at most a second.
@bp.on_kinesis_record(
    stream=settings.get().events_stream_name,
    batch_size=1000,
    starting_position="TRIM_HORIZON",
    maximum_batching_window_in_seconds=1,
)
def apply_events(event: KinesisEvent) -> dict[str, Any]:
    received = [Received.of(raw) for raw in event.to_dict()["Records"]]
    failed = apply_records(received, appliers())
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}


def appliers() -> dict[str, Applier]:
    """Each event type's applier (each exactly-once by itself)."""
    client, table = runtime.dynamodb(), runtime.table_name()
    sums = SumStore(client, table)
    return {
        "hit": HitStore(client, table).apply_delivered,
        "value": StreamStore(client, table).apply_delivered,
        "average": AverageStore(client, table).apply_delivered,
        "metric": partial(_apply_metrics, sums, RollupStore(sums)),
    }


def _apply_metrics(sums: SumStore, rollups: RollupStore, delivered: Sequence[Delivered]) -> None:
    # Listed for the hour rollup first: a value that comes after its minute was compacted is listed nowhere else.
    rollups.list_stream_hours(delivered)
    # Metric events need the time they are applied at: whether compaction may have listed their minute yet.
    sums.apply_delivered(delivered, clock.now_ms())


def apply_records(received: Sequence[Received], apply: dict[str, Applier]) -> list[str]:
    """Apply a batch's records; the sequence numbers of the records to redeliver, in stream order."""
    delivered: list[Delivered] = []
    failed: set[str] = set()
    for record in received:
        try:
            payload = records.decode(base64.b64decode(record.data))
        except (PoisonRecord, ValueError) as exc:
            failed |= dead_letter([record], str(exc))
            continue
        for event, event_id in zip(payload.events, payload.ids, strict=True):
            delivered.append(Delivered(record.shard_id, record.sequence_number, event, event_id))
    kept, undecided = claim_first_copies(delivered)
    failed |= undecided
    groups: dict[tuple[str, str], list[Delivered]] = {}
    for d in kept:
        groups.setdefault(group_of(d.event), []).append(d)
    outcomes = runtime.fan_out(partial(_apply_group, apply), groups.values())
    for group, outcome in zip(groups.values(), outcomes, strict=True):
        holding = {d.sequence_number for d in group}
        if isinstance(outcome, Unappliable):
            failed |= dead_letter([r for r in received if r.sequence_number in holding], str(outcome))
        elif outcome is not None:
            logger.warning("events not applied; their records come back", extra={"cause": repr(outcome)})
            count("IngestGroupsRetried")
            failed |= holding
    count("IngestEvents", len(kept))
    return [r.sequence_number for r in received if r.sequence_number in failed]


def group_of(event: records.Event) -> tuple[str, str]:
    """The group an event is applied with: its key's, but a batch's hits are one group (their totals are written
    once per batch, so the batch's hit records succeed or come back together: chalicelib/hits/streamed.py)."""
    return (event.type, "" if event.type == "hit" else records.aggregate_key(event))


def claim_first_copies(delivered: list[Delivered]) -> tuple[list[Delivered], set[str]]:
    """The events to apply (dedupe.first_copies), and the records to redeliver because the registry could not be
    written for one of their events: all from the first such record on, none of whose events are applied now (a
    later record's events applied first would move the markers past the earlier one's)."""
    store = FirstCopyStore(runtime.dynamodb(), runtime.table_name())
    wanted = dedupe.claims(delivered)
    outcomes = runtime.fan_out(partial(_claim, store), wanted.items())
    stored = {block: outcome for block, outcome in zip(wanted, outcomes, strict=True) if isinstance(outcome, dict)}
    undecided = {d.sequence_number for d in delivered if d.id is not None and dedupe.block_of(d.id) not in stored}
    cut = next((n for n, d in enumerate(delivered) if d.sequence_number in undecided), len(delivered))
    kept = dedupe.first_copies(delivered[:cut], stored)
    dropped = cut - len(kept)
    if dropped:
        logger.info("copies of events applied or refused before were dropped", extra={"dropped": dropped})
        count("IngestDuplicatesDropped", dropped)
    return kept, {d.sequence_number for d in delivered[cut:]}


def _claim(store: FirstCopyStore, block: tuple[dedupe.Block, dict[str, bytes]]) -> dict[str, bytes] | Exception:
    """One block's claims; what stopped them, if anything (the other blocks go on)."""
    try:
        return store.claim(*block)
    except Exception as exc:  # the events of this block are decided on redelivery
        logger.warning("first copies not claimed; their records come back", extra={"cause": repr(exc)})
        return exc


def _apply_group(apply: dict[str, Applier], delivered: list[Delivered]) -> Exception | None:
    """One key's events through its applier; what stopped it, if anything (the other groups go on)."""
    try:
        apply[delivered[0].event.type](delivered)
    except Exception as exc:  # any failure is the group's: its records are retried or dead-lettered
        return exc
    return None


def dead_letter(received: Sequence[Received], reason: str) -> set[str]:
    """Send records that can never apply to the dead-letter queue; the ones that could not be sent (to retry).

    With no queue configured (make run), each is logged at error level and counted.
    """
    count("IngestDeadLettered", len(received))
    queue_url = settings.get().dead_letter_queue_url
    unsent: set[str] = set()
    for record in received:
        body = {
            "shard_id": record.shard_id,
            "sequence_number": record.sequence_number,
            "data": record.data,
            "reason": reason,
        }
        if queue_url is None:
            logger.error("poison record (no dead-letter queue configured)", extra=body)
            continue
        try:
            runtime.sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
        except Exception as exc:  # not dead-lettered yet: the record comes back and tries again
            logger.warning("dead-letter queue not answering", extra={"cause": repr(exc)})
            unsent.add(record.sequence_number)
    return unsent
