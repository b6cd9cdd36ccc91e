"""What the process holds across requests: the boto3 clients, the one executor for fan-outs, the caches, and the
one `reset()` that forgets them (tests and the dev server's start-up change the environment).

Clients and caches are created lazily, so that tests can start moto (or point `DDB_ENDPOINT_URL` at DynamoDB
Local) before the first client exists.

Time limits (settings): each attempt connects within db_connect_timeout_s and reads within
db_read_timeout_s; botocore makes at most db_max_attempts attempts; no attempt starts after the request's
budget is spent (request_context.refuse_when_spent). So a request holds at most request_budget_s plus one
attempt in flight (or one retry back-off, which is shorter): settings.Settings.worst_case_s.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.session
from botocore.config import Config

from chalicelib.edge.errors import DatabaseUnavailable, StreamNotConfigured
from chalicelib.process import settings
from chalicelib.process.request_context import ContextThreadPool, refuse_when_spent
from chalicelib.storage import write_once

if TYPE_CHECKING:
    from botocore.config import _RetryDict

T = TypeVar("T")
R = TypeVar("R")

# Reentrant: building one cached value may use another (the SSM provider needs the SSM client).
_lock = threading.RLock()
_cache: dict[str, Any] = {}


def cached(name: str, build: Callable[[], T]) -> T:
    """The process's value called `name`, built on first use (once, whatever the threads); `reset()` forgets it."""
    try:
        return _cache[name]  # type: ignore[no-any-return]
    except KeyError:
        pass
    with _lock:
        if name not in _cache:
            _cache[name] = build()
        return _cache[name]  # type: ignore[no-any-return]


def reset() -> None:
    """Forget the settings, the clients and every cached value (tests change the environment between cases).

    The executor stays: its threads hold nothing of a request, whose context each task carries along.
    """
    with _lock:
        settings.reset()
        _cache.clear()


# --- clients -------------------------------------------------------------------------


def table_name() -> str:
    return settings.get().table_name


def _botocore_session() -> Any:
    """One botocore session for the clients. botocore's, not boto3's: the app needs only low-level clients, and
    importing boto3 (with s3transfer) would add ~50 ms to every cold start. Credentials and region come from the
    same environment."""
    return cached("botocore_session", botocore.session.get_session)


def dynamodb() -> Any:
    """The low-level DynamoDB client (thread-safe, unlike boto3 resources)."""
    return cached("dynamodb", _new_dynamodb)


def dynamodb_single_attempt() -> Any:
    """A DynamoDB client that never resends a call: for a single-item write that is not idempotent (a list append),
    which a resend after a lost answer would apply twice. A lost answer is then the caller's 503: the write was
    applied at most once (chalicelib/storage/write_once.py)."""
    return cached("dynamodb_single_attempt", lambda: _new_dynamodb(attempts=1))


# Seconds a client should wait before retrying after a 503 database_unavailable.
RETRY_AFTER_S = 5


def _new_dynamodb(attempts: int | None = None) -> Any:
    config = settings.get()
    if config.devserver_missing:
        # Not cached: the next request looks again (chalice local restarts anyway when make run writes the file).
        raise DatabaseUnavailable(
            f"No database: `make run` is not running in this project ({config.devserver_file} is missing). "
            "Start `make run` first, in another terminal.",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    client = _botocore_session().create_client(
        "dynamodb",
        endpoint_url=config.ddb_endpoint_url,
        config=Config(
            connect_timeout=config.db_connect_timeout_s,
            read_timeout=config.db_read_timeout_s,
            # "standard", not "adaptive": adaptive's client-side rate limiter can sleep before a
            # send for as long as it likes, which no request budget bounds.
            retries={"max_attempts": attempts or config.db_max_attempts, "mode": "standard"},
            # More than the executor's workers: they and the request threads share the client.
            max_pool_connections=64,
            tcp_keepalive=True,
        ),
    )
    # First, so that it runs even where a stub (moto) answers instead of the network.
    client.meta.events.register_first("before-send.dynamodb", refuse_when_spent)
    # In a request with an Idempotency-Key, every transaction carries its receipt (chalicelib/storage/write_once.py).
    client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", write_once.prepare_transaction)
    client.meta.events.register("after-call.dynamodb.TransactWriteItems", write_once.settle_transaction)
    return client


def dynamodb_endpoint() -> str | None:
    """The endpoint of the DynamoDB client if one exists (for log lines; never creates a client)."""
    client = _cache.get("dynamodb")
    return None if client is None else str(client.meta.endpoint_url)


def ssm() -> Any:
    """The SSM client (the stage's secret parameters)."""
    return cached(
        "ssm",
        lambda: _botocore_session().create_client(
            "ssm", config=Config(retries={"max_attempts": 3, "mode": "standard"})
        ),
    )


def kinesis() -> Any:
    """The Kinesis client (the events stream), with the database's time limits and one attempt per call: the
    producer makes every attempt itself, since it must know which ones may have stored records whose answer was lost
    (chalicelib/ingest/producer.py). (botocore's `max_attempts` counts the retries after the first attempt,
    `total_max_attempts` every attempt.)

    StreamNotConfigured where the events would go nowhere this run can read: a local database (DDB_ENDPOINT_URL)
    without a local Kinesis (KINESIS_ENDPOINT_URL)."""
    if not settings.get().events_stream_configured:
        raise StreamNotConfigured(
            "No events stream is configured: the database is a local one (DDB_ENDPOINT_URL) but KINESIS_ENDPOINT_URL "
            "is not set. Start `make run` (it runs a local Kinesis) and serve with `chalice local --stage local`, or "
            "set KINESIS_ENDPOINT_URL."
        )
    return cached(
        "kinesis",
        lambda: _new_client(
            "kinesis", settings.get().kinesis_endpoint_url, {"total_max_attempts": 1, "mode": "standard"}
        ),
    )


def sqs() -> Any:
    """The SQS client (the events stream's dead-letter queue)."""
    return cached(
        "sqs", lambda: _new_client("sqs", None, {"max_attempts": settings.get().db_max_attempts, "mode": "standard"})
    )


def _new_client(service: str, endpoint_url: str | None, retries: _RetryDict) -> Any:
    config = settings.get()
    client = _botocore_session().create_client(
        service,
        endpoint_url=endpoint_url,
        config=Config(
            connect_timeout=config.db_connect_timeout_s,
            read_timeout=config.db_read_timeout_s,
            retries=retries,
        ),
    )
    client.meta.events.register_first(f"before-send.{client.meta.service_model.endpoint_prefix}", refuse_when_spent)
    return client


def has_clients() -> bool:
    """Whether a boto3 client exists yet (the cold-start benchmark checks that importing the app makes none)."""
    return "dynamodb" in _cache or "ssm" in _cache


# --- the executor --------------------------------------------------------------------

# One executor for every fan-out of the process, so the number of threads has one bound. Its widest users: a hit
# ranking queries HIT_RANK_SHARDS (16) index partitions at once, a load test keeps TEST_WORKERS (16) hits in
# flight, a sum reads up to 8 ranges at once and a compaction SUM_DIRTY_PARTITIONS (8) partitions. Lambda runs
# one request per process, so 32 lets any of them run at full width; the threaded dev server can run two wide
# fan-outs side by side before one waits. The DynamoDB client's 64 connections cover the workers plus the
# request threads.
EXECUTOR_WORKERS = 32

_executor: ContextThreadPool | None = None
_on_executor = threading.local()


def _mark_executor_thread() -> None:
    _on_executor.flag = True


def on_executor() -> bool:
    """Whether the calling thread is one of the executor's."""
    return bool(getattr(_on_executor, "flag", False))


def executor() -> ContextThreadPool:
    """The shared executor. Its tasks run in the submitter's context: its deadline (request budget) and log keys."""
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = ContextThreadPool(
                    max_workers=EXECUTOR_WORKERS, thread_name_prefix="livestats", initializer=_mark_executor_thread
                )
    return _executor


def fan_out(fn: Callable[[T], R], items: Iterable[T], *, most: int | None = None) -> list[R]:
    """fn over items, in parallel on the shared executor, results in the order of items; at most `most` at a time.

    Inline for one item, and inline on an executor thread: a task waiting on tasks queued behind it in the same
    bounded executor could wait forever. The first failure is raised once the tasks already running have ended
    (the others do not start), so no work of a request outlives its answer.
    """
    items = list(items)
    if len(items) <= 1 or on_executor():
        return [fn(item) for item in items]
    pool = executor()
    results: list[Any] = [None] * len(items)
    queued = iter(enumerate(items))
    running: dict[Future[R], int] = {}

    def submit_next(n: int) -> None:
        for index, item in itertools.islice(queued, n):
            running[pool.submit(fn, item)] = index

    try:
        submit_next(most or len(items))
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                results[running.pop(future)] = future.result()
                submit_next(1)
    finally:
        for future in running:
            future.cancel()
        wait(running)
    return results
