"""The scheduled rollup of metric values: final minutes into hours, then hours into days (see rollup.py).

Run after each minute compaction, within the same time budget and bounded the same way: keys go in chunks, each
chunk's buckets written before the next, each chunk ending with the period's progress (the last key done), and the
period's done marker last. Buckets are written once from final figures, so a crash, a second run or overlapping runs
write the same or nothing; reads use a period's buckets only once its done marker exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from chalicelib.metrics import rollup
from chalicelib.metrics.compaction import CHUNK_KEYS, Budget
from chalicelib.metrics.rollup import DAY, HOUR
from chalicelib.metrics.rollup_store import RollupStore
from chalicelib.process import runtime


@dataclass
class Rollup:
    hours: list[int] = field(default_factory=list)  # hours this run finished (wrote their done marker)
    days: list[int] = field(default_factory=list)
    written: int = 0  # buckets this run wrote
    stopped: bool = False  # the budget ran low: the next run goes on from the progress


def roll_up(rollups: RollupStore, now_ms: int) -> Rollup:
    """Roll up every final hour whose minutes still exist and is not done, then every day whose hours are all done."""
    report = Rollup()
    budget = Budget()
    hours = rollup.hours_to_roll(now_ms)
    if not len(hours):
        return report
    done_hours = rollups.done(HOUR, hours[0], hours[-1])
    for hour in hours:
        if hour in done_hours:
            continue
        if not _period(
            rollups, HOUR, hour, rollups.keys_of_hour(hour), _hour_bucket(rollups, now_ms), budget, report, now_ms
        ):
            return report
        report.hours.append(hour)
    days = rollup.days_to_roll(hours)
    done_days = rollups.done(DAY, days[0], days[-1])
    done_hours = rollups.done(HOUR, days[0] * 24, days[-1] * 24 + 23)
    for day in days:
        if day in done_days or any(h not in done_hours for h in range(day * 24, day * 24 + 24)):
            continue
        if not _period(rollups, DAY, day, rollups.keys_of_day(day), _day_bucket(rollups), budget, report, now_ms):
            return report
        report.days.append(day)
    return report


def _hour_bucket(rollups: RollupStore, now_ms: int) -> Callable[[str, int], rollup.Bucket]:
    def bucket(key: str, hour: int) -> rollup.Bucket:
        first = hour * 60
        return rollup.merge_all(rollups.minute_buckets(key, first, first + 59, now_ms, with_sketch=True).values())

    return bucket


def _day_bucket(rollups: RollupStore) -> Callable[[str, int], rollup.Bucket]:
    def bucket(key: str, day: int) -> rollup.Bucket:
        return rollup.merge_all(rollups.buckets(key, HOUR, day * 24, day * 24 + 23, with_sketch=True).values())

    return bucket


def _period(
    rollups: RollupStore,
    tier: str,
    period: int,
    listed: Iterable[str],
    bucket_of: Callable[[str, int], rollup.Bucket],
    budget: Budget,
    report: Rollup,
    now_ms: int,
) -> bool:
    """Roll up one period's keys after its progress, in chunks, then mark it done. False if the budget ran out."""
    through = rollups.progress(tier, period)
    todo = sorted(k for k in listed if through is None or k > through)

    def one(key: str) -> bool:
        found = bucket_of(key, period)
        return found.count > 0 and rollups.put_bucket(key, tier, period, found)

    for i in range(0, len(todo), CHUNK_KEYS):
        chunk = todo[i : i + CHUNK_KEYS]
        if not budget.fits():
            report.stopped = True
            return False
        with budget.measured():
            report.written += sum(runtime.fan_out(one, chunk))
        rollups.advance(tier, period, chunk[-1])
    rollups.mark_done(tier, period, now_ms)
    return True
