"""Putting a request's events on the events stream: packed into records, put with PutRecords, failed entries
retried.

Packing (pure, `pack`): the events are grouped by partition key (first appearance first, each group in request
order) and each group is cut into as few records as fit Kinesis's record limit (data plus partition key). With
POST /events' body limit (256 KiB, far below a record's 1 MiB) a key's events of one request are one record, so
retrying failed entries cannot reorder one key's events. Records are put in calls of at most 500 records and
5 MiB (`calls`).

A PutRecords call can succeed while some of its entries fail (FailedRecordCount, a per-entry ErrorCode such as
ProvisionedThroughputExceededException): only those entries are put again, with the codebase's one retry loop
(dynamo.retry: jittered backoff, bounded attempts; the Kinesis client refuses to start a call once the request's
budget is spent). Records that still fail are refused: `put` names their events, so that the answer can say which
events to send again, and a retry of the request never puts the others twice. Only when no record was put at all
is the request refused whole (503 `stream_unavailable`, with Retry-After), which a retry can repeat safely.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import dynamo
from chalicelib.errors import Busy, ServiceError
from chalicelib.ingest import records
from chalicelib.observability import count, logger
from chalicelib.request_context import BudgetSpent

MAX_RECORD_BYTES = 1 << 20  # a record's data plus its partition key
MAX_CALL_RECORDS = 500
MAX_CALL_BYTES = 5 << 20  # all of a call's data and partition keys
# Seconds before a retry after 503 stream_unavailable: Kinesis' throughput limits are per shard and second.
RETRY_AFTER_S = 1

_EMPTY_RECORD_BYTES = len(records.encode([]))  # {"events":[]}


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


def pack(events: Sequence[records.Event], max_record_bytes: int = MAX_RECORD_BYTES) -> list[Record]:
    """The records for these events: per partition key (first appearance first), request order kept, as few records
    as fit `max_record_bytes` each."""
    groups: dict[str, list[int]] = {}
    for position, event in enumerate(events):
        groups.setdefault(records.partition_key(event), []).append(position)
    packed: list[Record] = []
    for key, group in groups.items():
        room = max_record_bytes - len(key.encode()) - _EMPTY_RECORD_BYTES
        chunk: list[int] = []
        used = 0
        for position in group:
            size = _encoded_size(events[position]) + (1 if chunk else 0)  # a comma after the first
            if chunk and used + size > room:
                packed.append(_record(key, events, chunk))
                chunk, used, size = [], 0, size - 1
            if size > room:
                raise ValueError(f"an event of {size} bytes does not fit in a record")
            chunk.append(position)
            used += size
        packed.append(_record(key, events, chunk))
    return packed


def _record(key: str, events: Sequence[records.Event], positions: list[int]) -> Record:
    return Record(key, records.encode([events[p] for p in positions]), tuple(positions))


def _encoded_size(event: records.Event) -> int:
    # The same encoding as records.encode, one event at a time.
    return len(json.dumps(asdict(event), separators=(",", ":"), allow_nan=False).encode())


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


class Producer:
    def __init__(self, client: Any, stream: str) -> None:
        self.client = client
        self.stream = stream

    def put(self, events: Sequence[records.Event]) -> list[int]:
        """Put the events on the stream; the positions of the events refused (their records could not be put).

        StreamUnavailable if none could be."""
        packed = pack(events)
        refused = [record for call in calls(packed) for record in self._put_call(call)]
        if len(refused) == len(packed):
            raise StreamUnavailable(
                "The events stream cannot take events right now; retry later.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        count("EventRecordsPut", len(packed) - len(refused))
        return sorted(position for record in refused for position in record.positions)

    def _put_call(self, call: list[Record]) -> list[Record]:
        """Put one call's records, retrying failed entries alone; the records still refused."""
        pending = call

        def attempt(n: int) -> None:
            nonlocal pending
            response = self.client.put_records(StreamName=self.stream, Records=[r.entry() for r in pending])
            if response.get("FailedRecordCount", 0):
                results = response["Records"]
                codes = sorted({result["ErrorCode"] for result in results if "ErrorCode" in result})
                pending = [record for record, result in zip(pending, results, strict=True) if "ErrorCode" in result]
                logger.info("event records failed; retrying them", extra={"failed": len(pending), "codes": codes})
                count("EventRecordsRetried", len(pending))
                raise dynamo.LostRace

        cause: Exception | None = None
        try:
            dynamo.retry(attempt, lost=lambda _: False, busy="the events stream keeps refusing records")
            return []
        except Busy:
            pass
        except (ClientError, BotoCoreError, BudgetSpent) as exc:
            cause = exc
        logger.warning(
            "events stream refused records",
            extra={
                "stream": self.stream,
                "cause": type(cause).__name__ if cause else "FailedRecords",
                "detail": str(cause) if cause else "still refused after retries",
                "refused": len(pending),
                "of": len(call),
            },
        )
        return pending
