"""A path's counts: all-time and per UTC day, kept in one counter item. Pure: no AWS, no clock.

The counter holds `n`, the path's all-time count, and the day of its latest hits with `day_base`, the all-time count
before that day's first hit: that day's count is `n - day_base`. So one write counts a hit in both scopes, exactly.
A hit of a later day rolls the counter over: the finished day's count goes to the path's day history (one item per
path and day) and `day_base` becomes `n`. A hit of an earlier day (an event from the stream that arrives after the
path's next day began) adds to that day's history and to both `n` and `day_base`, so the current day's count stays.
Every day's count is then `n - day_base` for the counter's day and the history for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Counter:
    """A path's counter item: all-time count `n`; `day`'s count is `n - day_base`."""

    n: int
    day: str
    day_base: int

    @property
    def day_count(self) -> int:
        return self.n - self.day_base


class Change(Enum):
    """How k hits of a day change a path's counter (and which items they touch)."""

    NEW = "new"  # no counter yet: it starts at this day
    SAME_DAY = "same_day"  # the counter's own day: one increment
    ROLLOVER = "rollover"  # a later day: the finished day goes to history, the counter moves on
    LATE = "late"  # an earlier day: that day's history and the counter's base


def change_of(counter: Counter | None, day: str) -> Change:
    if counter is None:
        return Change.NEW
    if day == counter.day:
        return Change.SAME_DAY
    return Change.ROLLOVER if day > counter.day else Change.LATE


def after(counter: Counter | None, day: str, k: int) -> Counter:
    """The counter once k hits of `day` are counted."""
    change = change_of(counter, day)
    if counter is None:
        return Counter(k, day, 0)
    if change is Change.SAME_DAY:
        return Counter(counter.n + k, day, counter.day_base)
    if change is Change.ROLLOVER:
        return Counter(counter.n + k, day, counter.n)
    return Counter(counter.n + k, counter.day, counter.day_base + k)


def history_added(counter: Counter | None, day: str, k: int) -> tuple[str, int] | None:
    """What the day history gains when k hits of `day` are counted: (day, hits), or None. A rollover files the
    finished day's count; a late hit adds to its own day."""
    change = change_of(counter, day)
    if counter is not None and change is Change.ROLLOVER:
        return counter.day, counter.day_count
    if change is Change.LATE:
        return day, k
    return None


def count_of_day(counter: Counter | None, history: dict[str, int], day: str) -> int:
    """A path's count on `day`: the counter's for its own day, else what the history holds (0 if nothing)."""
    if counter is not None and counter.day == day:
        return counter.day_count
    return history.get(day, 0)
