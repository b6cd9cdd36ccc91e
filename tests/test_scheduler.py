"""devtools.scheduler: expression parsing, next-fire computation and invocation, with an injected clock."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

import pytest
from chalice import Chalice, Cron, Rate

from devtools.scheduler import CronSchedule, RateSchedule, Scheduler, parse_schedule

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 23, 17, 29, 30, tzinfo=UTC)  # a Monday


def at(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(1 hour)", 3600),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
        ("rate(3 days)", 3 * 86400),
        (Rate(1, unit=Rate.MINUTES), 60),
        (Rate(10, unit=Rate.MINUTES), 600),
        (Rate(2, unit=Rate.HOURS), 7200),
        (Rate(1, unit=Rate.DAYS), 86400),
    ],
)
def test_rates(expression: Any, seconds: int) -> None:
    schedule = parse_schedule(expression)
    assert schedule == RateSchedule(seconds)
    assert schedule.next_after(T0) == T0 + dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(* * * * ? *)", at(2026, 11, 23, 17, 30)),
        ("cron(0/15 * * * ? *)", at(2026, 11, 23, 17, 30)),
        ("cron(5/15 * * * ? *)", at(2026, 11, 23, 17, 35)),
        ("cron(10,20,40 * * * ? *)", at(2026, 11, 23, 17, 40)),
        ("cron(0 9-17/4 * * ? *)", at(2026, 11, 24, 9, 0)),  # 9, 13, 17: 17:00 has passed today
        ("cron(0 10 ? * MON-FRI *)", at(2026, 11, 24, 10, 0)),
        ("cron(0 10 ? * 1 *)", at(2026, 11, 29, 10, 0)),  # 1 = Sunday in EventBridge
        ("cron(0 10 ? * 7 *)", at(2026, 11, 28, 10, 0)),  # 7 = Saturday
        ("cron(0 12 1 * ? *)", at(2026, 12, 1, 12, 0)),
        ("cron(0 0 1 JAN,JUL ? *)", at(2027, 1, 1, 0, 0)),
        ("cron(30 2 29 2 ? *)", at(2028, 2, 29, 2, 30)),  # next leap day
        ("cron(0 0 1 1 ? 2030)", at(2030, 1, 1, 0, 0)),
        (Cron(0, 12, 1, "*", "?", "*"), at(2026, 12, 1, 12, 0)),
        (Cron("0/30", "*", "?", "*", "MON", "*"), at(2026, 11, 23, 17, 30)),
    ],
)
def test_cron_next_fire(expression: Any, expected: dt.datetime) -> None:
    assert parse_schedule(expression).next_after(T0) == expected


def test_cron_fires_strictly_after_now_on_a_minute_boundary() -> None:
    schedule = parse_schedule("cron(30 17 * * ? *)")
    assert schedule.next_after(at(2026, 11, 23, 17, 30)) == at(2026, 11, 24, 17, 30)
    assert schedule.next_after(at(2026, 11, 23, 17, 29, 59)) == at(2026, 11, 23, 17, 30)


def test_cron_fields() -> None:
    schedule = parse_schedule("cron(0/20 8-10 ? 3-4 2,6 *)")
    assert isinstance(schedule, CronSchedule)
    assert schedule.minutes == {0, 20, 40}
    assert schedule.hours == {8, 9, 10}
    assert schedule.months == {3, 4}
    assert schedule.days_of_week == frozenset({2, 6})
    assert schedule.days_of_month is None


@pytest.mark.parametrize(
    "expression",
    [
        "rate(0 minutes)",
        "rate(5 seconds)",
        "every 5 minutes",
        "cron(* * * * *)",  # 5 fields
        "cron(* * * * * *)",  # neither day field is `?`
        "cron(* * ? * ? *)",  # both are
        "cron(60 * * * ? *)",
        "cron(* 24 * * ? *)",
        "cron(* * * 13 ? *)",
        "cron(* * ? * 8 *)",
        "cron(10-5 * * * ? *)",
        "cron(*/0 * * * ? *)",
    ],
)
def test_invalid_expressions(expression: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(expression)


def make_app(calls: list[tuple[str, Any]]) -> Chalice:
    app = Chalice(app_name="sched")

    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def every_minute(event: Any) -> None:
        calls.append(("every_minute", event))

    @app.schedule("cron(0/5 * * * ? *)", name="five")
    def every_five(event: Any) -> None:
        calls.append(("five", event))

    @app.schedule("rate(1 minute)")
    def broken(event: Any) -> None:
        raise RuntimeError("boom")

    @app.route("/")
    def index() -> dict[str, str]:
        return {}

    return app


def test_scheduler_finds_jobs_and_first_fire_times() -> None:
    scheduler = Scheduler(make_app([]), clock=lambda: T0)
    fires = {job.name: job.next_fire for job in scheduler.jobs}
    assert fires == {
        "every_minute": T0 + dt.timedelta(minutes=1),  # one period after start
        "five": at(2026, 11, 23, 17, 30),
        "broken": T0 + dt.timedelta(minutes=1),
    }
    assert scheduler.next_due() == at(2026, 11, 23, 17, 30)


def test_run_due_invokes_with_a_scheduled_event(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[str, Any]] = []
    scheduler = Scheduler(make_app(calls), clock=lambda: T0)

    assert scheduler.run_due(T0) == []
    assert scheduler.run_due(at(2026, 11, 23, 17, 30)) == ["five"]
    with caplog.at_level(logging.ERROR, logger="devtools.scheduler"):
        ran = scheduler.run_due(T0 + dt.timedelta(minutes=1))
    assert ran == ["every_minute", "broken"]
    assert "scheduled function broken failed" in caplog.text and "RuntimeError: boom" in caplog.text

    name, event = calls[-1]
    assert name == "every_minute"  # the failure of `broken` did not stop anything
    assert event.detail_type == "Scheduled Event"
    assert event.source == "aws.events"
    assert event.time == "2026-11-23T17:30:30Z"
    assert event.resources == ["arn:aws:events:us-east-1:123456789012:rule/every_minute"]
    assert event.detail == {}
    assert event.context.function_name == "every_minute"


def test_missed_periods_run_once_and_reschedule_after_now() -> None:
    calls: list[tuple[str, Any]] = []
    scheduler = Scheduler(make_app(calls), clock=lambda: T0)
    later = T0 + dt.timedelta(minutes=10, seconds=5)
    scheduler.run_due(later)
    assert [name for name, _ in calls] == ["every_minute", "five"]
    assert all(job.next_fire > later for job in scheduler.jobs)


def test_start_and_stop_without_waiting_for_a_fire() -> None:
    scheduler = Scheduler(make_app([]), clock=lambda: T0)  # frozen clock: nothing ever becomes due
    scheduler.start()
    thread = scheduler._thread
    assert thread is not None and thread.is_alive()
    scheduler.stop()  # the Event wakes the thread at once
    assert not thread.is_alive()


def test_app_without_schedules_starts_no_thread() -> None:
    app = Chalice(app_name="plain")
    scheduler = Scheduler(app, clock=lambda: T0)
    scheduler.start()
    assert scheduler.jobs == [] and scheduler._thread is None
    scheduler.stop()


def test_in_the_background_each_job_runs_in_its_own_thread_with_its_timeout() -> None:
    # A long job (the hits' sweep waits between its passes) must not hold back the others, as on Lambda.
    release, started = threading.Event(), threading.Event()
    seen: list[tuple[str, int]] = []
    app = Chalice(app_name="sched")

    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def slow(event: Any) -> None:
        seen.append(("slow", event.context.get_remaining_time_in_millis()))
        started.set()
        release.wait(10)

    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def quick(event: Any) -> None:
        seen.append(("quick", event.context.get_remaining_time_in_millis()))

    scheduler = Scheduler(app, clock=lambda: T0, timeout_s=lambda name: 120 if name == "slow" else 30)
    due = T0 + dt.timedelta(minutes=1)
    assert scheduler.run_due(due, background=True) == ["slow", "quick"]
    assert started.wait(10)
    for job in scheduler.jobs:
        if job.name == "quick":
            assert job.running is not None
            job.running.join(10)
    slow_job = next(job for job in scheduler.jobs if job.name == "slow")
    assert slow_job.running is not None and slow_job.running.is_alive()  # quick finished while slow still runs
    assert 110_000 < dict(seen)["slow"] <= 120_000 and 20_000 < dict(seen)["quick"] <= 30_000
    # Due again while still running: that fire is skipped, as the next one is not.
    assert scheduler.run_due(due + dt.timedelta(minutes=1), background=True) == ["quick"]
    release.set()
