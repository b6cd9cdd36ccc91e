"""The process's runtime: its one executor (order, bounds, nesting, the request's context) and its one reset."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.process import request_context, runtime
from chalicelib.process.request_context import BudgetSpent
from tests.conftest import Environment

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend

# A bound for failure detection (a deadlock), not a timing assertion.
HANG_S = 30


@pytest.fixture
def fresh_runtime(env: Environment) -> Iterator[Environment]:
    env.set("AWS_ACCESS_KEY_ID", "local")
    env.set("AWS_SECRET_ACCESS_KEY", "local")
    env.set("AWS_DEFAULT_REGION", "us-east-1")
    # A closed loopback port: nothing here may reach a database.
    env.set("DDB_ENDPOINT_URL", "http://127.0.0.1:9")
    runtime.reset()
    yield env
    runtime.reset()


def test_fan_out_keeps_the_order_of_its_items_and_runs_them_on_the_executor() -> None:
    where = runtime.fan_out(lambda n: (n * n, runtime.on_executor()), range(50))
    assert [square for square, _ in where] == [n * n for n in range(50)]
    assert all(on_executor for _, on_executor in where)
    assert not runtime.on_executor()
    assert runtime.fan_out(lambda n: n + 1, []) == []


def test_one_item_runs_inline() -> None:
    assert runtime.fan_out(lambda _: threading.get_ident(), ["only"]) == [threading.get_ident()]


def test_a_task_that_fans_out_again_runs_its_items_inline_instead_of_deadlocking() -> None:
    """More outer tasks than workers, each fanning out again: waiting on the same pool would block every worker."""
    outer = 2 * runtime.EXECUTOR_WORKERS
    results: list[Any] = []

    def task(n: int) -> tuple[int, bool]:
        me = threading.get_ident()
        inner = runtime.fan_out(lambda k: (k, threading.get_ident()), range(3))
        return n, all(thread == me for _, thread in inner)

    worker = threading.Thread(target=lambda: results.extend(runtime.fan_out(task, range(outer))), daemon=True)
    worker.start()
    worker.join(HANG_S)
    assert not worker.is_alive(), "nested fan-out deadlocked"
    assert results == [(n, True) for n in range(outer)]


def test_at_most_most_items_run_at_once() -> None:
    most = 3
    lock = threading.Lock()
    running = peak = 0
    # Each group of `most` tasks meets at the barrier: it breaks (and the run fails) unless `most` run together.
    barrier = threading.Barrier(most, timeout=HANG_S)

    def task(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        barrier.wait()
        with lock:
            running -= 1
        return n

    assert runtime.fan_out(task, range(4 * most), most=most) == list(range(4 * most))
    assert peak == most


def test_the_first_failure_is_raised_and_the_items_after_it_do_not_start() -> None:
    started: list[int] = []

    def task(n: int) -> int:
        started.append(n)
        if n == 2:
            raise ValueError(n)
        return n

    with pytest.raises(ValueError):
        runtime.fan_out(task, range(10), most=1)
    assert started == [0, 1, 2]


def test_tasks_run_in_the_submitters_context_and_budget(fresh_runtime: Environment) -> None:
    tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="none")
    tag.set("request-1")
    with request_context.budget(60):
        seen = runtime.fan_out(lambda _: (tag.get(), request_context.remaining()), range(4))
    assert all(value == "request-1" and left is not None and 0 < left <= 60 for value, left in seen)
    assert all(left is None for left in runtime.fan_out(lambda _: request_context.remaining(), range(4)))

    client = runtime.dynamodb()
    # A spent budget: no database call starts, in the executor's threads either.
    with request_context.budget(-1), pytest.raises(BudgetSpent):
        runtime.fan_out(lambda _: client.describe_table(TableName="t"), range(4))


def test_reset_forgets_settings_clients_and_cached_values(fresh_runtime: Environment) -> None:
    client = runtime.dynamodb()
    assert runtime.dynamodb() is client and runtime.has_clients()
    built: list[int] = []

    def build(value: int) -> int:
        built.append(value)
        return value

    assert runtime.cached("answer", lambda: build(42)) == 42
    assert runtime.cached("answer", lambda: build(43)) == 42
    pool = runtime.executor()
    fresh_runtime.monkeypatch.setenv("TABLE_NAME", "another-table")  # not through env: only reset re-reads it
    assert runtime.table_name() != "another-table"

    runtime.reset()

    assert not runtime.has_clients()
    assert runtime.table_name() == "another-table"
    assert runtime.dynamodb() is not client
    assert runtime.cached("answer", lambda: build(43)) == 43 and built == [42, 43]
    assert runtime.executor() is pool  # threads carry no state of their own


def test_a_value_is_built_once_whatever_the_threads() -> None:
    built: list[int] = []
    start = threading.Barrier(8, timeout=HANG_S)

    def build() -> int:
        built.append(1)
        return len(built)

    def get(_: int) -> int:
        start.wait()
        return runtime.cached("built-once", build)

    try:
        threads = [threading.Thread(target=get, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HANG_S)
        assert built == [1]
    finally:
        runtime.reset()
