"""boto3 clients, created lazily in this one place.

Lazily so that tests can start moto (or point `DDB_ENDPOINT_URL` at DynamoDB
Local) before the first client exists; `reset()` forgets them between tests.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from chalicelib import settings

_lock = threading.Lock()
_client: Any = None


def table_name() -> str:
    return settings.get().table_name


def dynamodb() -> Any:
    """The low-level DynamoDB client (thread-safe, unlike boto3 resources)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = boto3.client(
                    "dynamodb",
                    endpoint_url=settings.get().ddb_endpoint_url,
                    config=Config(
                        retries={"max_attempts": 5, "mode": "adaptive"},
                        max_pool_connections=64,
                        tcp_keepalive=True,
                    ),
                )
    return _client


_ssm: Any = None


def ssm() -> Any:
    """The SSM client (admin token parameter of the survey dashboard, issue 5)."""
    global _ssm
    if _ssm is None:
        with _lock:
            if _ssm is None:
                _ssm = boto3.client("ssm", config=Config(retries={"max_attempts": 3, "mode": "standard"}))
    return _ssm


def reset() -> None:
    """Forget the clients and the settings they were made with (tests change the environment)."""
    global _client, _ssm
    settings.reset()
    with _lock:
        _client = None
        _ssm = None
