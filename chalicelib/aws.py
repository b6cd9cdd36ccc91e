"""boto3 clients, created lazily in this one place, and the one classifier of the database's failures.

Lazily so that tests can start moto (or point `DDB_ENDPOINT_URL` at DynamoDB
Local) before the first client exists; `reset()` forgets them between tests.

Time limits (settings): each attempt connects within db_connect_timeout_s and reads within
db_read_timeout_s; botocore makes at most db_max_attempts attempts; no attempt starts after the request's
budget is spent (request_context.refuse_when_spent). So a request holds at most request_budget_s plus one
attempt in flight (or one retry back-off, which is shorter): settings.Settings.worst_case_s.
"""

from __future__ import annotations

import threading
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from chalicelib import settings
from chalicelib.errors import DatabaseUnavailable
from chalicelib.observability import logger
from chalicelib.request_context import BudgetSpent, refuse_when_spent

_lock = threading.Lock()
_client: Any = None


_session: Any = None


def _botocore_session() -> Any:
    """One botocore session for the clients (called under _lock). botocore's, not boto3's: the app needs only
    low-level clients, and importing boto3 (with s3transfer) would add ~50 ms to every cold start. Credentials
    and region come from the same environment."""
    global _session
    if _session is None:
        _session = botocore.session.get_session()
    return _session


def table_name() -> str:
    return settings.get().table_name


def dynamodb() -> Any:
    """The low-level DynamoDB client (thread-safe, unlike boto3 resources)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                config = settings.get()
                client = _botocore_session().create_client(
                    "dynamodb",
                    endpoint_url=config.ddb_endpoint_url,
                    config=Config(
                        connect_timeout=config.db_connect_timeout_s,
                        read_timeout=config.db_read_timeout_s,
                        # "standard", not "adaptive": adaptive's client-side rate limiter can sleep before a
                        # send for as long as it likes, which no request budget bounds.
                        retries={"max_attempts": config.db_max_attempts, "mode": "standard"},
                        max_pool_connections=64,
                        tcp_keepalive=True,
                    ),
                )
                # First, so that it runs even where a stub (moto) answers instead of the network.
                client.meta.events.register_first("before-send.dynamodb", refuse_when_spent)
                _client = client
    return _client


# Seconds a client should wait before retrying after a 503 database_unavailable.
RETRY_AFTER_S = 5
# Throttling that outlasted botocore's retries, and DynamoDB's own transient failures.
_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The failure in exc's chain that says the database is unreachable, stalled or overloaded, if any.

    Connection errors, timeouts, the spent request budget and throttling after retries, also when wrapped
    (e.g. by Powertools Idempotency).
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (BotocoreConnectionError, HTTPClientError, BudgetSpent)) or (
            isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in _UNAVAILABLE_CODES
        ):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The client's 503 (with Retry-After) for such a failure, its cause logged at warning; None otherwise."""
    cause = unavailable_cause(exc)
    if cause is None:
        return None
    endpoint = getattr(cause, "kwargs", {}).get("endpoint_url") or (_client and _client.meta.endpoint_url)
    logger.warning(
        "database unavailable",
        extra={"cause": type(cause).__name__, "detail": str(cause), "endpoint": endpoint},
    )
    return DatabaseUnavailable(
        "The database is not answering; retry later.", headers={"Retry-After": str(RETRY_AFTER_S)}
    )


_ssm: Any = None


def ssm() -> Any:
    """The SSM client (the stage's secret parameters)."""
    global _ssm
    if _ssm is None:
        with _lock:
            if _ssm is None:
                _ssm = _botocore_session().create_client(
                    "ssm", config=Config(retries={"max_attempts": 3, "mode": "standard"})
                )
    return _ssm


def reset() -> None:
    """Forget the clients and the settings they were made with (tests change the environment)."""
    global _client, _ssm, _session
    settings.reset()
    with _lock:
        _client = None
        _ssm = None
        _session = None
