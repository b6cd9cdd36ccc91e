"""The service's settings: read from the environment once, validated, in this one place.

Each field is read from the upper-case environment variable of its name (TABLE_NAME, ...). A stage sets
them in .chalice/config.json; `make run` and the tests set their own. An invalid value fails the first
request loudly instead of behaving oddly later. Tests that change the environment call `reset()`.
"""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False, env_ignore_empty=True)

    table_name: str = Field(default="livestats", min_length=3, max_length=255)
    # Another DynamoDB than the region's (DynamoDB Local, moto's server); None in AWS.
    ddb_endpoint_url: str | None = None

    # The survey dashboard's admin token: the token itself (local runs) or the name of an SSM SecureString.
    admin_token: SecretStr | None = None
    admin_token_parameter: str | None = None

    # The key that signs page cursors: the key itself (local runs) or the name of an SSM SecureString.
    cursor_secret: SecretStr | None = None
    cursor_secret_parameter: str | None = None

    # POST /test/{n}/ spends write capacity: open to anyone (make run), the admin token only (the default in
    # a deployed stage), or switched off (prod).
    load_test_access: Literal["open", "admin", "off"] = "admin"

    # DynamoDB client limits. A request gives up within request_budget_s (plus one call in flight), well
    # inside API Gateway's 29 s, and answers 503 with Retry-After.
    db_connect_timeout_s: float = Field(default=2.0, gt=0, le=10)
    db_read_timeout_s: float = Field(default=5.0, gt=0, le=10)
    db_max_attempts: int = Field(default=3, ge=1, le=10)
    request_budget_s: float = Field(default=18.0, gt=0, le=20)


_lock = threading.Lock()
_current: Settings | None = None


def get() -> Settings:
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = Settings()
    return _current


def reset() -> None:
    """Forget the settings read (tests change the environment between cases)."""
    global _current
    with _lock:
        _current = None
