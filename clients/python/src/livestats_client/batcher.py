"""`EventBatcher`: events queued by the caller, sent to `POST /events` in batches by a background thread, retried
with the same Idempotency-Key until applied once, and every event that cannot be reported as a `Failure`."""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from .client import Client
from .errors import LivestatsError
from .models import Accepted, Event
from .retry import (
    MAX_BODY_BYTES,
    MAX_EVENTS,
    STREAM_UNAVAILABLE,
    RetryPolicy,
    body_size,
    encoded_size,
    fits,
    retryable,
    split_rejections,
)

log = logging.getLogger("livestats_client")


class QueueFull(Exception):
    """`add()` waited its timeout for room in the batcher's queue: the service is slower than the events come, or
    unreachable. The event was not queued."""


class BatcherClosed(RuntimeError):
    """`add()` after `close()`."""


@dataclass(frozen=True)
class Failure:
    """An event the batcher could not have applied, and why.

    `reason`: "rejected" (the service refused this event as invalid: `code`, `message`, `field` say why; sending it
    again would not help), "refused" (the service refused the whole request with an error no retry mends, e.g. 401
    or 400: `status` and `code` say which), or "gave_up" (every attempt failed with a retryable error, the last
    one's `status` and `code` given, `status` None when no answer came: whether it was applied is unknown if no
    answer ever came, but a later send of it in a new request could apply it twice)."""

    event: Event
    reason: Literal["rejected", "refused", "gave_up"]
    status: int | None
    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True)
class _Queued:
    seq: int  # its place among every event added, from 0
    event: Event
    size: int  # its encoded bytes
    added_at: float  # time.monotonic() when added


class EventBatcher:
    """Sends events to `POST /events` in batches from a background thread.

    - **Queue.** `add()` puts an event on a queue of at most `max_queue` events. When the queue is full, `add()`
      blocks up to `add_timeout` seconds for room, then raises `QueueFull` (the event is not queued); the thread
      empties it as fast as the service takes the batches.
    - **Batches.** A batch is sent when it holds `max_events` events (500, the endpoint's maximum) or as many as
      fit `max_bytes` (256 KiB, the service's body limit), or `flush_interval` seconds (1 s) after its first event
      was added, whichever comes first. An event that cannot fit a request alone is refused by `add()`
      (ValueError).
    - **Retries.** A batch has one Idempotency-Key, sent with each of its attempts, so the service applies it at
      most once whatever answers are lost. On 503 (502, 504), 429, 409 `idempotency_in_progress`, a connection
      error or a timeout it is sent again after a backoff with full jitter, at least the Retry-After the service
      gave (`RetryPolicy`), up to `retry.max_attempts` attempts; then each of its events is a `Failure` "gave_up".
      Another error answer makes each event a `Failure` "refused".
    - **Refused events.** Events the 202 lists in `rejected` with code `stream_unavailable` are sent again, alone,
      in a new request with a new key, after a backoff (at least its Retry-After), up to `retry.max_attempts`
      times; events rejected with any other code are invalid and reported at once (`Failure` "rejected").
    - **Failures.** Every event is either accepted by the service or reported, never dropped: `on_failure` is
      called with each `Failure` (on the batcher's thread; an exception it raises is logged), and `failures`
      lists them all.
    - **Flush and close.** `flush()` sends everything added before it and waits until each is accepted or
      reported. `close()` (or leaving the `with` block) does the same for everything queued, stops the thread,
      and refuses later `add()`s. A batcher not closed is closed when the interpreter exits.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_queue: int = 10_000,
        add_timeout: float = 5.0,
        flush_interval: float = 1.0,
        max_events: int = MAX_EVENTS,
        max_bytes: int = MAX_BODY_BYTES,
        retry: RetryPolicy | None = None,
        on_failure: Callable[[Failure], None] | None = None,
    ) -> None:
        if not 1 <= max_events <= MAX_EVENTS or max_queue < 1:
            raise ValueError(f"max_events must be from 1 to {MAX_EVENTS}, and max_queue at least 1")
        self.client = client
        self.max_queue = max_queue
        self.add_timeout = add_timeout
        self.flush_interval = flush_interval
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.retry = retry or RetryPolicy()
        self.on_failure = on_failure
        self._cond = threading.Condition()
        self._pending: deque[_Queued] = deque()
        self._added = 0
        self._finished = 0  # events accepted or reported; they finish in the order they were added
        self._flush_target = 0  # every event with a lower seq is to be sent without waiting for its batch to fill
        self._closing = False
        self._failures: list[Failure] = []
        self._accepted = 0
        self._thread = threading.Thread(target=self._run, name="livestats-batcher", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # The caller's side.

    def add(self, event: Event) -> None:
        """Queue an event; see the class's docstring for what happens when the queue is full."""
        size = encoded_size(event)  # not JSON (or NaN): TypeError or ValueError here, in the caller's hands
        if body_size([size]) > self.max_bytes:
            raise ValueError(f"an event of {size} bytes cannot fit a request of at most {self.max_bytes} bytes")
        with self._cond:
            if self._closing:
                raise BatcherClosed("the batcher is closed")
            if not self._cond.wait_for(lambda: len(self._pending) < self.max_queue or self._closing, self.add_timeout):
                raise QueueFull(f"no room in the queue of {self.max_queue} events within {self.add_timeout} s")
            if self._closing:
                raise BatcherClosed("the batcher was closed while add() waited")
            self._pending.append(_Queued(self._added, event, size, time.monotonic()))
            self._added += 1
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Send every event added so far and wait until each is accepted or reported; False if `timeout` (seconds)
        passed first."""
        with self._cond:
            target = self._added
            self._flush_target = max(self._flush_target, target)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._finished >= target, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Send everything queued, wait for each to be accepted or reported, and stop the thread; False if
        `timeout` (seconds) passed first (the thread then goes on in the background)."""
        atexit.unregister(self.close)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> EventBatcher:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    @property
    def failures(self) -> list[Failure]:
        """Every event reported so far, in the order reported."""
        with self._cond:
            return list(self._failures)

    @property
    def accepted(self) -> int:
        """How many events the service accepted (put on its stream) so far."""
        with self._cond:
            return self._accepted

    # The thread's side.

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._deliver([queued.event for queued in batch])
            except Exception as exc:  # a fault of this client: every event of the batch is reported, even one
                # already accepted or reported (rather than one never reported)
                log.exception("livestats batcher: delivering a batch failed")
                for queued in batch:
                    self._report(Failure(queued.event, "gave_up", None, "client_error", repr(exc)))
            with self._cond:
                self._finished += len(batch)
                self._cond.notify_all()

    def _next_batch(self) -> list[_Queued] | None:
        """The next batch, once it is full, due, or asked for; None when closed and everything was sent."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._closing)
            if not self._pending:
                return None
            while True:
                count = fits(
                    [q.size for q in itertools.islice(self._pending, self.max_events)], self.max_events, self.max_bytes
                )
                full = count < len(self._pending) or count == self.max_events
                urgent = self._closing or self._pending[0].seq < self._flush_target
                wait = self._pending[0].added_at + self.flush_interval - time.monotonic()
                if full or urgent or wait <= 0:
                    break
                self._cond.wait(wait)
            batch = [self._pending.popleft() for _ in range(count)]
            self._cond.notify_all()  # room for add()
            return batch

    def _deliver(self, events: list[Event]) -> None:
        """Send the events until each is accepted or reported: the whole batch with one key, then the events the
        stream refused, alone, with a new key each round."""
        for round_ in range(1, self.retry.max_attempts + 1):
            outcome = self._send(events)
            if isinstance(outcome, LivestatsError):
                reason: Literal["refused", "gave_up"] = "gave_up" if retryable(outcome) else "refused"
                for event in events:
                    self._report(Failure(event, reason, outcome.status, outcome.code, outcome.message, outcome.field))
                return
            resend, final = split_rejections(len(events), outcome.rejected)
            for rejection in final:
                self._report(
                    Failure(
                        events[rejection.index], "rejected", 202, rejection.code, rejection.message, rejection.field
                    )
                )
            with self._cond:
                self._accepted += outcome.accepted
            if not resend:
                return
            events = [events[i] for i in resend]
            if round_ < self.retry.max_attempts:
                time.sleep(self.retry.delay(round_, outcome.retry_after))
        for event in events:
            message = f"refused by the stream in each of {self.retry.max_attempts} requests"
            self._report(Failure(event, "gave_up", 202, STREAM_UNAVAILABLE, message, None))

    def _send(self, events: list[Event]) -> Accepted | LivestatsError:
        """One batch, under one Idempotency-Key, until an answer that is not retryable or the last attempt; the
        202's answer, or the last error."""
        key = str(uuid.uuid4())
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                return self.client.send_events(events, idempotency_key=key)
            except LivestatsError as error:
                if not retryable(error) or attempt == self.retry.max_attempts:
                    return error
                log.info(
                    "livestats batcher: attempt %d of %d events failed (%s), retrying", attempt, len(events), error
                )
                time.sleep(self.retry.delay(attempt, error.retry_after))
        raise AssertionError("unreachable: the last attempt returns")

    def _report(self, failure: Failure) -> None:
        with self._cond:
            self._failures.append(failure)
        if self.on_failure is not None:
            try:
                self.on_failure(failure)
            except Exception:
                log.exception("livestats batcher: on_failure raised")
