"""Run a Chalice app's `@app.on_kinesis_record` functions locally, as Lambda's event source mapping runs them
(plain `chalice local` never does).

For each registration, each shard of its stream is read in order from a checkpoint kept in a JSON file (a restart
resumes; no file: the registration's starting position). Records are batched up to the registration's batch size,
waiting at most its batching window once a record is in hand, and handed to the function in Lambda's Kinesis event
shape. The answer is honoured as Lambda honours it with ReportBatchItemFailures:
- `{"batchItemFailures": []}` (or no answer): the batch is done, the checkpoint moves past it;
- failures: the records before the lowest failed sequence number are done; the rest is retried on a later poll;
- an exception, or failures that name no record of the batch: the whole batch is retried.
Retries back off; after the template's MaximumRetryAttempts the batch is skipped, as Lambda skips it to its
on-failure destination, and its description (with the records' data) is appended to a dead-letter file.
Resharding: a child shard is read only once its parents have been read to their end.

The decisions (batching, the answer, the next checkpoint) are pure functions of an injected clock.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from chalice.app import Chalice, KinesisEventConfig
from chalice.local import LambdaContext

from deploy.template import EVENTS_MAPPING

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # monotonic seconds
Handler = Callable[[dict[str, Any], Any], Any]

# Lambda polls an idle shard about once a second.
IDLE_POLL_S = 1.0
RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0
SHARD_REFRESH_S = 10.0
# Lambda's function timeout is not modelled: the handler runs to its end.
LAMBDA_MEMORY_MB = 512


@dataclass(frozen=True)
class Registration:
    """One `on_kinesis_record` function of the app."""

    name: str
    stream: str
    batch_size: int
    window_s: float
    starting_position: str
    handler: Handler


def registrations(app: Chalice) -> list[Registration]:
    found = []
    for source in app.event_sources:
        if isinstance(source, KinesisEventConfig):
            # As for schedules: the config names the function; the callable (with middleware) is in handler_map.
            found.append(
                Registration(
                    name=source.name,
                    stream=source.stream,
                    batch_size=source.batch_size,
                    window_s=float(source.maximum_batching_window_in_seconds or 0),
                    starting_position=source.starting_position,
                    handler=app.handler_map[source.name],
                )
            )
    return found


# --- the event Lambda builds ------------------------------------------------------------------


def lambda_record(record: Mapping[str, Any], shard_id: str, stream_arn: str, region: str) -> dict[str, Any]:
    """One GetRecords record as Lambda hands it to a function."""
    arrival: dt.datetime = record["ApproximateArrivalTimestamp"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode("ascii"),
            "approximateArrivalTimestamp": arrival.timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/local-devserver",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


# --- the answer -------------------------------------------------------------------------------


def first_failure(answer: Any, sequence_numbers: Sequence[str]) -> int | None:
    """Index in the batch of the first record to retry (None: the batch is done), from the function's answer.

    As Lambda reads a partial batch response: no answer, no `batchItemFailures` or an empty list is success; a
    failure whose itemIdentifier is missing, empty or not in the batch fails the whole batch.
    """
    failures = answer.get("batchItemFailures") if isinstance(answer, Mapping) else None
    if not failures:
        return None
    position = {seq: i for i, seq in enumerate(sequence_numbers)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if identifier not in position:
            return 0
        indexes.append(position[identifier])
    return min(indexes)


def retry_delay(attempt: int) -> float:
    """The wait before retry number `attempt` (1, 2, ...): doubling from RETRY_BASE_S, capped."""
    return float(min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (attempt - 1)))


# --- checkpoints ------------------------------------------------------------------------------


class Checkpoints:
    """Per function and shard: the last sequence number done, and whether a closed shard was read to its end.

    One JSON file, rewritten whole (write, then rename) after every change, so a crash leaves the old or the new.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._data: dict[str, dict[str, Any]] = json.loads(path.read_text())
        except FileNotFoundError:
            self._data = {}

    @staticmethod
    def _key(function: str, stream_arn: str) -> str:
        return f"{function} {stream_arn}"

    def sequence(self, function: str, stream_arn: str, shard_id: str) -> str | None:
        with self._lock:
            shard = self._data.get(self._key(function, stream_arn), {}).get(shard_id, {})
            return shard.get("sequence")  # type: ignore[no-any-return]

    def finished(self, function: str, stream_arn: str, shard_id: str) -> bool:
        with self._lock:
            return bool(self._data.get(self._key(function, stream_arn), {}).get(shard_id, {}).get("finished"))

    def advance(self, function: str, stream_arn: str, shard_id: str, sequence: str) -> None:
        self._update(function, stream_arn, shard_id, sequence=sequence)

    def finish(self, function: str, stream_arn: str, shard_id: str) -> None:
        self._update(function, stream_arn, shard_id, finished=True)

    def _update(self, function: str, stream_arn: str, shard_id: str, **values: Any) -> None:
        with self._lock:
            self._data.setdefault(self._key(function, stream_arn), {}).setdefault(shard_id, {}).update(values)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)


# --- one shard --------------------------------------------------------------------------------


@dataclass
class ShardReader:
    """What the poller holds for one shard: its iterator, the records read but not done, the retry state."""

    shard_id: str
    parents: tuple[str, ...]
    closed: bool
    iterator: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    first_pending_at: float | None = None  # when the oldest pending record was read (the batching window)
    attempts: int = 0  # failed invocations of the batch at the head of `pending`
    not_before: float = 0.0  # retry back-off
    drained: bool = False  # a closed shard read to its end

    def batch_due(self, now: float, batch_size: int, window_s: float) -> bool:
        """Lambda invokes when the batch is full or the batching window has passed since its first record."""
        if not self.pending or now < self.not_before:
            return False
        assert self.first_pending_at is not None
        return len(self.pending) >= batch_size or now - self.first_pending_at >= window_s


class KinesisPoller:
    """Polls one registration's stream and invokes its function, on a thread of its own (`start`/`stop`)."""

    def __init__(
        self,
        registration: Registration,
        client: Any,
        checkpoints: Checkpoints,
        dead_letters: Path,
        *,
        clock: Clock = time.monotonic,
        region: str = "us-east-1",
        max_retries: int = EVENTS_MAPPING["MaximumRetryAttempts"],
    ) -> None:
        self.registration = registration
        self._client = client
        self._checkpoints = checkpoints
        self.dead_letters = dead_letters
        self._clock = clock
        self._region = region
        self.max_retries = max_retries
        self.stream_arn = client.describe_stream_summary(StreamName=registration.stream)["StreamDescriptionSummary"][
            "StreamARN"
        ]
        self.shards: dict[str, ShardReader] = {}
        self._shards_listed_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- shards

    def refresh_shards(self) -> None:
        """ListShards: new shards are added (a child waits for its parents), closed ones are marked."""
        paginator_token: str | None = None
        while True:
            page = (
                self._client.list_shards(NextToken=paginator_token)
                if paginator_token
                else self._client.list_shards(StreamName=self.registration.stream)
            )
            for shard in page["Shards"]:
                closed = "EndingSequenceNumber" in shard["SequenceNumberRange"]
                reader = self.shards.get(shard["ShardId"])
                if reader is None:
                    parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
                    reader = ShardReader(shard["ShardId"], parents, closed)
                    reader.drained = self._checkpoints.finished(
                        self.registration.name, self.stream_arn, reader.shard_id
                    )
                    self.shards[reader.shard_id] = reader
                reader.closed = closed
            paginator_token = page.get("NextToken")
            if not paginator_token:
                break
        self._shards_listed_at = self._clock()

    def readable(self, reader: ShardReader) -> bool:
        """A shard is read once all of its parents (those the stream still lists) were read to their end."""
        return not reader.drained and all(self.shards[p].drained for p in reader.parents if p in self.shards)

    # --- one poll

    def poll_once(self) -> int:
        """Read every readable shard once and invoke the function for each batch due. The records read."""
        now = self._clock()
        if self._shards_listed_at is None or now - self._shards_listed_at >= SHARD_REFRESH_S:
            self.refresh_shards()
        read = 0
        for reader in list(self.shards.values()):
            if not self.readable(reader):
                continue
            read += self._read(reader)
            if reader.batch_due(self._clock(), self.registration.batch_size, self.registration.window_s):
                self._invoke(reader)
        return read

    def _iterator(self, reader: ShardReader) -> str:
        done = self._checkpoints.sequence(self.registration.name, self.stream_arn, reader.shard_id)
        last = reader.pending[-1]["SequenceNumber"] if reader.pending else done
        if last is not None:
            kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": last}
        else:
            kwargs = {"ShardIteratorType": self.registration.starting_position}
        answer = self._client.get_shard_iterator(StreamName=self.registration.stream, ShardId=reader.shard_id, **kwargs)
        return str(answer["ShardIterator"])

    def _read(self, reader: ShardReader) -> int:
        room = self.registration.batch_size - len(reader.pending)
        if room <= 0:
            return 0
        if reader.iterator is None:
            reader.iterator = self._iterator(reader)
        try:
            page = self._client.get_records(ShardIterator=reader.iterator, Limit=min(room, 10_000))
        except self._client.exceptions.ExpiredIteratorException:
            reader.iterator = None  # a fresh one from where this shard is, on the next poll
            return 0
        records = page["Records"]
        if records and reader.first_pending_at is None:
            reader.first_pending_at = self._clock()
        reader.pending.extend(records)
        reader.iterator = page.get("NextShardIterator")
        # A closed shard ends with no next iterator (AWS) or, on local servers, with an empty read at its tip.
        end = reader.iterator is None or (reader.closed and not records and page.get("MillisBehindLatest") == 0)
        if end and not reader.pending:
            reader.drained = True
            self._checkpoints.finish(self.registration.name, self.stream_arn, reader.shard_id)
            log.info("kinesis consumer %s: shard %s read to its end", self.registration.name, reader.shard_id)
        return len(records)

    # --- one invocation

    def _invoke(self, reader: ShardReader) -> None:
        batch = reader.pending[: self.registration.batch_size]
        sequence_numbers = [r["SequenceNumber"] for r in batch]
        event = {"Records": [lambda_record(r, reader.shard_id, self.stream_arn, self._region) for r in batch]}
        try:
            answer = self.registration.handler(event, LambdaContext(self.registration.name, LAMBDA_MEMORY_MB))
            failed_at = first_failure(answer, sequence_numbers)
        except Exception:
            log.exception(
                "kinesis consumer %s failed on a batch of %d from %s",
                self.registration.name,
                len(batch),
                reader.shard_id,
            )
            failed_at = 0
        done = len(batch) if failed_at is None else failed_at
        if done:
            self._done(reader, done)
        if failed_at is None:
            return
        reader.attempts += 1
        if reader.attempts > self.max_retries:
            self._skip(reader, batch[failed_at:])
            return
        reader.not_before = self._clock() + retry_delay(reader.attempts)
        log.warning(
            "kinesis consumer %s: %d records from %s (%s) failed; retry %d of %d",
            self.registration.name,
            len(batch) - failed_at,
            reader.shard_id,
            sequence_numbers[failed_at],
            reader.attempts,
            self.max_retries,
        )

    def _done(self, reader: ShardReader, count: int) -> None:
        last = reader.pending[count - 1]["SequenceNumber"]
        del reader.pending[:count]
        reader.attempts, reader.not_before = 0, 0.0
        reader.first_pending_at = self._clock() if reader.pending else None
        self._checkpoints.advance(self.registration.name, self.stream_arn, reader.shard_id, last)

    def _skip(self, reader: ShardReader, records: Sequence[dict[str, Any]]) -> None:
        """Retries exhausted: the records leave the shard's way, described where Lambda's destination would be."""
        entry = {
            "condition": "RetryAttemptsExhausted",
            "function": self.registration.name,
            "approximateInvokeCount": reader.attempts,
            "KinesisBatchInfo": {
                "shardId": reader.shard_id,
                "startSequenceNumber": records[0]["SequenceNumber"],
                "endSequenceNumber": records[-1]["SequenceNumber"],
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
            "records": [lambda_record(r, reader.shard_id, self.stream_arn, self._region) for r in records],
        }
        self.dead_letters.parent.mkdir(parents=True, exist_ok=True)
        with self.dead_letters.open("a") as out:
            out.write(json.dumps(entry) + "\n")
        log.error(
            "kinesis consumer %s: gave up on %d records from %s (%s to %s) after %d attempts; described in %s",
            self.registration.name,
            len(records),
            reader.shard_id,
            records[0]["SequenceNumber"],
            records[-1]["SequenceNumber"],
            reader.attempts,
            self.dead_letters,
        )
        self._done(reader, len(records))

    # --- the thread

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                read = self.poll_once()
            except (BotoCoreError, ClientError) as exc:  # the local Kinesis restarting, say: poll again later
                log.warning("kinesis consumer %s: %s", self.registration.name, exc)
                for reader in self.shards.values():
                    reader.iterator = None  # fresh iterators from where each shard is
                read = 0
            except Exception:  # a bug here must not stop the consumer silently: say it, and poll again
                log.exception("kinesis consumer %s: poll failed", self.registration.name)
                read = 0
            # Straight on while records flow; otherwise Lambda's idle pace (a batching window or a back-off is
            # checked on the next poll).
            self._stop.wait(0.0 if read else min(IDLE_POLL_S, self.registration.window_s or IDLE_POLL_S))

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"kinesis-{self.registration.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout)
            self._thread = None
