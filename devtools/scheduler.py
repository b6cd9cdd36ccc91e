"""Run a Chalice app's `@app.schedule` functions locally (plain `chalice local` never does).

Times are UTC, as in EventBridge. Rates first fire one period after start; crons at matching minutes.
Parsing and next-fire computation are pure functions of an injected `now`, so they are tested without sleeping.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chalice.app import Chalice, Cron, Rate, ScheduledEventConfig
from chalice.local import LambdaContext

log = logging.getLogger(__name__)

UTC = dt.UTC
Clock = Callable[[], dt.datetime]

_RATE_RE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$", re.IGNORECASE)
_CRON_RE = re.compile(r"^cron\((.*)\)$", re.IGNORECASE)
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
# EventBridge day-of-week is 1-7 with 1 = Sunday. Month/day names are accepted too.
_MONTHS = {
    m: i
    for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)
}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


class Schedule(Protocol):
    def next_after(self, now: dt.datetime) -> dt.datetime: ...


@dataclass(frozen=True)
class RateSchedule:
    seconds: int

    def next_after(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class CronSchedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None = `?` or `*`: no constraint
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # 1 = Sunday ... 7 = Saturday; None = no constraint
    years: frozenset[int] | None

    def matches(self, t: dt.datetime) -> bool:
        return t.minute in self.minutes and t.hour in self.hours and self._date_matches(t)

    def _date_matches(self, t: dt.datetime) -> bool:
        dow = t.isoweekday() % 7 + 1  # Python Monday=1..Sunday=7 -> EventBridge Sunday=1..Saturday=7
        return (
            t.month in self.months
            and (self.days_of_month is None or t.day in self.days_of_month)
            and (self.days_of_week is None or dow in self.days_of_week)
            and (self.years is None or t.year in self.years)
        )

    def next_after(self, now: dt.datetime) -> dt.datetime:
        """The first matching minute boundary strictly after `now`."""
        t = now.astimezone(UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        # Skip whole days whose date cannot match, then walk minutes: at most ~1,440 steps per matching day.
        limit = t + dt.timedelta(days=366 * 5)
        while t < limit:
            if not self._date_matches(t):
                t = (t + dt.timedelta(days=1)).replace(hour=0, minute=0)
            elif self.matches(t):
                return t
            else:
                t += dt.timedelta(minutes=1)
        raise ValueError("cron expression never fires within 5 years")


def _parse_field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        token = token.upper()
        value = names[token] if names and token in names else int(token)
        if not low <= value <= high:
            raise ValueError(f"{value} outside {low}-{high}")
        return value

    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in {part!r}")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = number(first), number(last)
        else:
            start = number(base)
            end = high if step_text else start  # `5/15` means from 5 every 15
        if start > end:
            raise ValueError(f"empty range {part!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(body: str) -> CronSchedule:
    fields = body.split()
    if len(fields) != 6:
        raise ValueError(f"cron needs 6 fields (min hour day-of-month month day-of-week year), got {body!r}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        # EventBridge requires exactly one of the two day fields to be `?`.
        raise ValueError(f"cron: exactly one of day-of-month/day-of-week must be '?': {body!r}")
    return CronSchedule(
        minutes=_parse_field(minute, 0, 59),
        hours=_parse_field(hour, 0, 23),
        days_of_month=None if dom in ("?", "*") else _parse_field(dom, 1, 31),
        months=_parse_field(month, 1, 12, _MONTHS),
        days_of_week=None if dow in ("?", "*") else _parse_field(dow, 1, 7, _DAYS),
        years=None if year in ("?", "*") else _parse_field(year, 1970, 2199),
    )


def parse_schedule(expression: str | Rate | Cron | Any) -> Schedule:
    """A `rate(...)`/`cron(...)` string or a chalice Rate/Cron object."""
    if isinstance(expression, Rate):
        expression = f"rate({expression.value} {expression.unit.lower()})"  # to_string() would do too
    elif isinstance(expression, Cron):
        expression = expression.to_string()
    text = str(expression).strip()
    rate = _RATE_RE.match(text)
    if rate:
        value = int(rate.group(1))
        if value < 1:
            raise ValueError(f"rate must be positive: {text!r}")
        return RateSchedule(value * _RATE_UNITS[rate.group(2).lower().rstrip("s")])
    cron = _CRON_RE.match(text)
    if cron:
        return parse_cron(cron.group(1))
    raise ValueError(f"unsupported schedule expression: {text!r}")


def scheduled_event(name: str, when: dt.datetime, region: str = "us-east-1") -> dict[str, Any]:
    """An EventBridge "Scheduled Event" as Lambda receives it (chalice wraps it in CloudWatchEvent)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:123456789012:rule/{name}"],
        "detail": {},
    }


@dataclass
class Job:
    name: str
    schedule: Schedule
    handler: Callable[[dict[str, Any], Any], Any]
    next_fire: dt.datetime
    timeout_ms: int = 3000
    running: threading.Thread | None = None


class Scheduler:
    def __init__(
        self,
        app: Chalice,
        clock: Clock = utcnow,
        region: str = "us-east-1",
        timeout_s: Callable[[str], int] = lambda name: 3,
    ) -> None:
        """`timeout_s` gives a function's Lambda timeout (its context's remaining time starts there)."""
        self._clock = clock
        self._region = region
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = clock()
        self.jobs: list[Job] = []
        for source in app.event_sources:
            if not isinstance(source, ScheduledEventConfig):
                continue
            # ScheduledEventConfig carries only a handler *string*; the callable (wrapped so it receives a
            # CloudWatchEvent, with middleware) is registered in app.handler_map under the same name.
            handler = getattr(source, "handler", None) or app.handler_map[source.name]
            schedule = parse_schedule(source.schedule_expression)
            job = Job(source.name, schedule, handler, schedule.next_after(now), 1000 * timeout_s(source.name))
            self.jobs.append(job)

    def next_due(self) -> dt.datetime | None:
        return min((job.next_fire for job in self.jobs), default=None)

    def run_due(self, now: dt.datetime, *, background: bool = False) -> list[str]:
        """Invoke every job due at `now` (once, even if several periods were missed); return their names. In the
        background, each in a thread of its own, as Lambda runs them side by side (a job still running skips)."""
        ran: list[str] = []
        for job in self.jobs:
            if job.next_fire > now:
                continue
            fired_at = job.next_fire
            job.next_fire = job.schedule.next_after(max(now, fired_at))
            if not background:
                self._invoke(job, fired_at)
            elif job.running is not None and job.running.is_alive():
                log.warning("scheduled function %s is still running: this fire is skipped", job.name)
                continue
            else:
                job.running = threading.Thread(
                    target=self._invoke, args=(job, fired_at), name=f"schedule-{job.name}", daemon=True
                )
                job.running.start()
            ran.append(job.name)
        return ran

    def _invoke(self, job: Job, fired_at: dt.datetime) -> None:
        context = LambdaContext(job.name, 128, max_runtime_ms=job.timeout_ms)
        try:
            job.handler(scheduled_event(job.name, fired_at, self._region), context)
        except Exception:
            log.exception("scheduled function %s failed", job.name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_due(self._clock(), background=True)
            due = self.next_due()
            delay = 60.0 if due is None else (due - self._clock()).total_seconds()
            # Event.wait rather than sleep so stop() wakes the thread at once.
            self._stop.wait(min(max(delay, 0.05), 60.0))

    def start(self) -> None:
        if self._thread is not None or not self.jobs:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="chalice-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
