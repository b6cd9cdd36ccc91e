"""Putting a request's events on the events stream: packed into records with their ids, put with PutRecords, every
attempt made and accounted for here.

Packing (pure, `pack`): the events are grouped by partition key (first appearance first, each group in request
order) and each group is cut into as few records as fit Kinesis's record limit (data plus partition key). With
POST /events' body limit (256 KiB, far below a record's 1 MiB) a key's events of one request are one record, so
retrying failed entries cannot reorder one key's events. Records are put in calls of at most 500 records and
5 MiB (`calls`).

Attempts (`Producer.put`): the Kinesis client makes one attempt per call (runtime.kinesis), so that every attempt
is seen here. A PutRecords call can succeed while some of its entries fail (FailedRecordCount, a per-entry
ErrorCode such as ProvisionedThroughputExceededException): only those entries are sent again. A call that fails
whole is sent again if the failure may pass (throttling, a 5xx, a connection that failed or went quiet). Retries
use the codebase's one retry loop (dynamo.retry: jittered backoff, bounded attempts), and an attempt starts only
while the request's budget leaves time for it to end and for a refusal to be written after it.

A record is then put (an answer gave it a sequence number), not put (every attempt's answer said so, or it was
never sent), or unsure: an attempt that may have stored it lost its answer (a timeout, a connection closed, a 5xx)
and no later one put it. Kinesis may hold copies of a record that was sent more than once; the consumer applies
each event once whatever the copies (chalicelib/ingest/dedupe.py). An unsure record's events are refused for good
in the registry of first copies (dedupe.refusals) unless a copy of them was claimed already, in which case they
are on the stream and answered as accepted. `put` names the refused events, so that the answer can say which to
send again; only when no record can have been stored is the request refused whole (503 `stream_unavailable`, with
Retry-After), which a retry can repeat safely. If the refusals cannot be written, whether those events will apply
is unknown: the error propagates (503 database_unavailable), and a retry with the request's Idempotency-Key sends
the same ids again, so each event still applies once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from chalicelib.edge.errors import Busy, ServiceError
from chalicelib.ingest import dedupe, records
from chalicelib.ingest.records import EventId
from chalicelib.ingest.store import FirstCopyStore
from chalicelib.process import request_context, runtime, settings
from chalicelib.process.observability import count, logger
from chalicelib.process.request_context import BudgetSpent
from chalicelib.storage import dynamo

MAX_RECORD_BYTES = 1 << 20  # a record's data plus its partition key
MAX_CALL_RECORDS = 500
MAX_CALL_BYTES = 5 << 20  # all of a call's data and partition keys
# Seconds before a retry after 503 stream_unavailable: Kinesis' throughput limits are per shard and second.
RETRY_AFTER_S = 1
# Whole-call failures that say "later": throttling. A 5xx and a failed connection may pass too.
_THROTTLED = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "KMSThrottlingException",
    }
)
# Budget kept after a put attempt's longest run (connect plus read timeout): time to start the refusal write.
REFUSAL_MARGIN_S = 1.0


class StreamUnavailable(ServiceError):
    status = 503
    code = "stream_unavailable"


@dataclass(frozen=True)
class Record:
    partition_key: str
    data: bytes
    positions: tuple[int, ...] = ()  # its events' positions in the sequence packed

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode())

    def entry(self) -> dict[str, Any]:
        return {"Data": self.data, "PartitionKey": self.partition_key}


def pack(
    events: Sequence[records.Event], ids: Sequence[EventId], max_record_bytes: int = MAX_RECORD_BYTES
) -> list[Record]:
    """The records for these events and their ids (one origin): per partition key (first appearance first), request
    order kept, as few records as fit `max_record_bytes` each."""
    groups: dict[str, list[int]] = {}
    for position, event in enumerate(events):
        groups.setdefault(records.partition_key(event), []).append(position)
    packed: list[Record] = []
    for key, group in groups.items():
        room = max_record_bytes - len(key.encode()) - _empty_record_bytes(ids[0].origin)
        chunk: list[int] = []
        used = 0
        for position in group:
            # After the first event, a comma before it in `events` and one before its position in `positions`.
            size = _encoded_size(events[position], ids[position]) + (2 if chunk else 0)
            if chunk and used + size > room:
                packed.append(_record(key, events, ids, chunk))
                chunk, used, size = [], 0, size - 2
            if size > room:
                raise ValueError(f"an event of {size} bytes does not fit in a record")
            chunk.append(position)
            used += size
        packed.append(_record(key, events, ids, chunk))
    return packed


def _record(key: str, events: Sequence[records.Event], ids: Sequence[EventId], positions: list[int]) -> Record:
    return Record(key, records.encode([events[p] for p in positions], [ids[p] for p in positions]), tuple(positions))


def _empty_record_bytes(origin: str) -> int:
    """records.encode's bytes for no events: `{"events":[],"origin":"...","positions":[]}`."""
    return len(f'{{"events":[],"origin":{json.dumps(origin)},"positions":[]}}'.encode())


def _encoded_size(event: records.Event, event_id: EventId) -> int:
    """An event's bytes in records.encode's output: the event in `events`, its position in `positions`."""
    return len(json.dumps(asdict(event), separators=(",", ":"), allow_nan=False).encode()) + len(str(event_id.position))


def calls(packed: Sequence[Record]) -> list[list[Record]]:
    """The records in PutRecords calls of at most MAX_CALL_RECORDS records and MAX_CALL_BYTES, in order."""
    result: list[list[Record]] = []
    size = 0
    for record in packed:
        if not result or len(result[-1]) == MAX_CALL_RECORDS or size + record.size > MAX_CALL_BYTES:
            result.append([])
            size = 0
        result[-1].append(record)
        size += record.size
    return result


# --- attempts --------------------------------------------------------------------------------------------------


@dataclass
class CallOutcome:
    """One call's records that were not put: those no attempt can have stored, and the unsure ones."""

    not_put: list[Record] = field(default_factory=list)
    unsure: list[Record] = field(default_factory=list)


class _OutOfTime(Exception):
    """No time left in the request's budget for another attempt and the refusal after it."""


def may_have_stored(exc: Exception) -> bool:
    """Whether the attempt that failed with `exc` may have stored its records: its answer was lost (a timeout, a
    connection closed after the request went out) or is a 5xx. A 4xx, a connection never made, or a request never
    sent (the budget spent) stored nothing."""
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500
    return isinstance(exc, HTTPClientError)


def may_pass(exc: Exception) -> bool:
    """Whether a call that failed whole with `exc` is worth another attempt."""
    if isinstance(exc, ClientError):
        return may_have_stored(exc) or dynamo.error_code(exc) in _THROTTLED
    return isinstance(exc, (HTTPClientError, BotocoreConnectionError))


def time_for_attempt() -> bool:
    """An attempt starts only if, at its slowest, it leaves time in the budget to write refusals after it."""
    left = request_context.remaining()
    current = settings.get()
    return left is None or left >= current.db_connect_timeout_s + current.db_read_timeout_s + REFUSAL_MARGIN_S


class Producer:
    def __init__(self, client: Any, stream: str, first_copies: FirstCopyStore) -> None:
        self.client = client
        self.stream = stream
        self.first_copies = first_copies

    def put(self, events: Sequence[records.Event], ids: Sequence[EventId]) -> list[int]:
        """Put the events on the stream; the positions (their ids') of the events refused.

        StreamUnavailable if no record can have been stored."""
        packed = pack(events, ids)
        outcomes = [self._put_call(call) for call in calls(packed)]
        not_put = [record for outcome in outcomes for record in outcome.not_put]
        unsure = [record for outcome in outcomes for record in outcome.unsure]
        if len(not_put) == len(packed):
            raise StreamUnavailable(
                "The events stream cannot take events right now; retry later.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        count("EventRecordsPut", len(packed) - len(not_put) - len(unsure))
        refused = [ids[p] for record in not_put for p in record.positions]
        if unsure:
            count("EventRecordsUnsure", len(unsure))
            refused += self._refuse([ids[p] for record in unsure for p in record.positions])
        return sorted(event_id.position for event_id in refused)

    def _refuse(self, unsure: list[EventId]) -> list[EventId]:
        """Refuse for good the events of unsure records that no copy claimed yet; those refused."""
        wanted = dedupe.refusals(unsure)
        try:
            outcomes = runtime.fan_out(lambda block: self.first_copies.claim(*block), wanted.items())
        except Exception:
            logger.warning("events that may be on the stream could not be refused", extra={"events": len(unsure)})
            raise
        stored = dict(zip(wanted, outcomes, strict=True))
        refused = dedupe.refused(unsure, stored)
        logger.info("events whose records lost their answers", extra={"events": len(unsure), "refused": len(refused)})
        return refused

    def _put_call(self, call: list[Record]) -> CallOutcome:
        """Put one call's records, retrying what was not put alone; what was not put."""
        pending = list(range(len(call)))  # indexes in `call` of the records not put yet
        unsure: set[int] = set()  # ... of those an attempt may have stored

        def attempt(_: int) -> None:
            nonlocal pending
            if not time_for_attempt():
                raise _OutOfTime
            try:
                response = self.client.put_records(StreamName=self.stream, Records=[call[i].entry() for i in pending])
            except (ClientError, BotoCoreError) as exc:
                if may_have_stored(exc):
                    unsure.update(pending)
                if may_pass(exc):
                    logger.info("event records not answered; retrying them", extra={"cause": type(exc).__name__})
                    raise dynamo.LostRace from exc
                raise
            results = response["Records"]
            pending = [i for i, result in zip(pending, results, strict=True) if "ErrorCode" in result]
            if pending:
                codes = sorted({result["ErrorCode"] for result in results if "ErrorCode" in result})
                logger.info("event records failed; retrying them", extra={"failed": len(pending), "codes": codes})
                count("EventRecordsRetried", len(pending))
                raise dynamo.LostRace

        cause: Exception | None = None
        try:
            dynamo.retry(attempt, lost=lambda _: False, busy="the events stream keeps refusing records")
            return CallOutcome()
        except (Busy, _OutOfTime):
            pass
        except (ClientError, BotoCoreError, BudgetSpent) as exc:
            cause = exc
        outcome = CallOutcome(
            not_put=[call[i] for i in pending if i not in unsure], unsure=[call[i] for i in pending if i in unsure]
        )
        logger.warning(
            "events stream refused records",
            extra={
                "stream": self.stream,
                "cause": type(cause).__name__ if cause else "FailedRecords",
                "detail": str(cause) if cause else "still refused after retries",
                "not_put": len(outcome.not_put),
                "unsure": len(outcome.unsure),
                "of": len(call),
            },
        )
        return outcome
