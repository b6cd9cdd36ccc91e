"""Wall-clock time, replaceable so tests can inject a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

_source: Callable[[], float] = time.time


def now() -> float:
    """Seconds since the epoch."""
    return _source()


def now_ms() -> int:
    return round(_source() * 1000)


def set_source(source: Callable[[], float] | None) -> None:
    """Replace the clock (None restores the real one)."""
    global _source
    _source = source or time.time


def iso(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds, e.g. 2026-11-23T17:26:18.123Z."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
