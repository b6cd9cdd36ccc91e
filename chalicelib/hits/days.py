"""Which UTC day a hit counts towards, how long that day's counters live, and which ranking a read names.

Pure: no AWS, no clock (the caller passes the time).
"""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.pure.ranges import RangeRefused
from chalicelib.storage import keys

DAY_SECONDS = 86_400
# A day's counters (and its ranking) are kept this long after the day ends, then expire (TTL); all-time
# counters never do.
DAY_RETENTION_SECONDS = 400 * DAY_SECONDS
DAY_FORMAT = "%Y-%m-%d"


def counting_day(now_s: float) -> tuple[str, int]:
    """The UTC day (YYYY-MM-DD) of the epoch time `now_s`, and the TTL (epoch seconds) of its counters."""
    day = datetime.fromtimestamp(now_s, tz=UTC).strftime(DAY_FORMAT)
    return day, day_start(day) + DAY_SECONDS + DAY_RETENTION_SECONDS


def day_start(day: str) -> int:
    """The epoch second a UTC day (YYYY-MM-DD) begins."""
    return int(datetime.strptime(day, DAY_FORMAT).replace(tzinfo=UTC).timestamp())


def oldest_kept_day(now_s: float) -> str:
    """The oldest day whose counters have not expired at `now_s` (a day's expire DAY_RETENTION_SECONDS after it
    ends): a read of older days could meet expired items that DynamoDB has not deleted yet, or none."""
    return counting_day(now_s - DAY_RETENTION_SECONDS)[0]


def days_from(first: str, last: str) -> list[str]:
    """Every UTC day from `first` to `last`, both included (none when first is after last)."""
    start, end = day_start(first), day_start(last)
    return [counting_day(t)[0] for t in range(start, end + 1, DAY_SECONDS)]


def series_days(first: str, last: str, now_s: float, max_days: int) -> list[str]:
    """The days of a series from `first` to `last`, or RangeRefused naming the parameter: `from` after `to`, before
    the oldest day still kept (no read may meet an expired item), or more than `max_days` in all."""
    if first > last:
        raise RangeRefused("from", "must not be after `to`")
    oldest = oldest_kept_day(now_s)
    if first < oldest:
        raise RangeRefused("from", f"must be {oldest} or later: older day counts have expired")
    every = days_from(first, last)
    if len(every) > max_days:
        raise RangeRefused("to", f"must be within {max_days} days of `from`")
    return every


def scope(day: str | None) -> str:
    """The ranking a read names: one UTC day's, or all time's."""
    return day or keys.HIT_ALL
