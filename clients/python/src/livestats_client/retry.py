"""The batcher's pure rules: how long to wait before a retry, which errors to retry, how many events make a
batch, and which refused events to send again."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConnectionFailed, LivestatsError, Throttled, Unavailable
from .models import Rejection

MAX_EVENTS = 500  # POST /events takes 1 to 500 events
MAX_BODY_BYTES = 256 * 1024  # the service's body limit (413 body_too_large above it)
# The code of an event the service could not put on its stream (nothing wrong with the event): send it again.
STREAM_UNAVAILABLE = "stream_unavailable"
# 409: a request with this Idempotency-Key is still being answered (our earlier attempt, whose answer was lost).
IN_PROGRESS = "idempotency_in_progress"

_ENVELOPE = len(b'{"events":[]}')


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` sends of a batch (the first included); before attempt k+1 (k from 1) a wait drawn
    uniformly from [0, min(max_delay, base_delay·2^(k-1))] ("full jitter"), and never less than the Retry-After the
    service sent (honoured whole: the service sends 1 or 5 s). With the defaults, and no Retry-After, a batch is
    given up after at most 8 attempts and 31.75 s of waiting."""

    max_attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("max_attempts must be at least 1, and the delays at least 0")

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 for the first)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 60))
        jittered = (rng or random).uniform(0.0, ceiling)
        if retry_after is None:
            return jittered
        return max(retry_after, jittered)


def retryable(error: LivestatsError) -> bool:
    """Whether sending the same batch again, with the same Idempotency-Key, may succeed: 503 (and 502, 504), 429,
    no answer at all, and 409 while our own earlier attempt is still being answered."""
    if isinstance(error, Unavailable | Throttled | ConnectionFailed):
        return True
    return error.status == 409 and error.code == IN_PROGRESS


def encoded_size(event: Any) -> int:
    """The bytes `event` takes in a request body, as the client serialises it."""
    return len(json.dumps(event, separators=(",", ":"), allow_nan=False).encode())


def body_size(sizes: Sequence[int]) -> int:
    """The bytes of `{"events":[...]}` holding events of these encoded sizes."""
    return _ENVELOPE + sum(sizes) + max(0, len(sizes) - 1)


def fits(sizes: Sequence[int], max_events: int = MAX_EVENTS, max_bytes: int = MAX_BODY_BYTES) -> int:
    """How many of the events, from the first, make one request: as many as fit both limits (0 if the first alone
    is over the byte limit)."""
    total = _ENVELOPE
    for n, size in enumerate(sizes[:max_events]):
        total += size + (1 if n else 0)
        if total > max_bytes:
            return n
    return min(len(sizes), max_events)


def split_rejections(count: int, rejected: Sequence[Rejection]) -> tuple[list[int], list[Rejection]]:
    """Of a request's `count` events: the indexes to send again (refused as `stream_unavailable`), and the
    rejections that are final (the event is invalid and would be refused again)."""
    resend: list[int] = []
    final: list[Rejection] = []
    for rejection in rejected:
        if not 0 <= rejection.index < count:
            raise ValueError(f"rejection of event {rejection.index} in a request of {count}")
        if rejection.code == STREAM_UNAVAILABLE:
            resend.append(rejection.index)
        else:
            final.append(rejection)
    return resend, final
