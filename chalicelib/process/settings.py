"""The service's settings: read from the environment once, validated, in this one place.

Each field is read from the upper-case environment variable of its name (TABLE_NAME, ...). A stage sets
them in .chalice/config.json; `make run` and the tests set their own. An invalid value fails the first
request loudly instead of behaving oddly later. Tests that change the environment call `reset()`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator

GATEWAY_TIMEOUT_S = 29  # API Gateway's integration timeout (Lambda's is 30 s)
# Room left after the worst database wait: a cold start (imports) and building the answer.
ANSWER_MARGIN_S = 4.0
# A relative DEVSERVER_FILE is the project's (app.py's folder), wherever `chalice local` was started.
PROJECT_DIR = Path(__file__).resolve().parents[2]

# An origin as a browser sends it: scheme, host, and a port only when it is not the scheme's default.
_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?")


def _origin_list(value: Any) -> Any:
    """CORS_ORIGINS: origins separated by commas (or a list); each exactly as a browser's Origin header names it."""
    if not isinstance(value, str):
        return value
    origins = tuple(_without_default_port(part.strip().lower()) for part in value.split(",") if part.strip())
    for origin in origins:
        if origin == "*":
            raise ValueError("cors_origins lists origins; '*' would let any site's scripts read and write")
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(f"cors_origins: {origin!r} is not an origin such as https://dash.example.com (no path)")
    return origins


def _without_default_port(origin: str) -> str:
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin.removesuffix(port)
    return origin


class Settings(BaseModel):
    # A plain model read from a mapping (no pydantic-settings: its import alone costs a cold start ~60 ms).
    model_config = ConfigDict(frozen=True, extra="forbid")

    table_name: str = Field(default="livestats", min_length=3, max_length=255)
    # Another DynamoDB than the region's (DynamoDB Local, moto's server); None in AWS.
    ddb_endpoint_url: str | None = None

    # The events stream (POST /events puts records on it; its consumer applies them) and another Kinesis than the
    # region's (kinesalite, moto's server; None in AWS). Poison records go to the dead-letter queue, when set.
    events_stream_name: str = Field(default="livestats-events", pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    kinesis_endpoint_url: str | None = None
    dead_letter_queue_url: str | None = None

    # The file `make run` writes while it runs, with the endpoints it started and its secrets as variables
    # (devtools/devserver.py). The `local` stage names it, so that `chalice local --stage local` serves make run's
    # data as make run does: its variables win over the environment's. None anywhere else.
    devserver_file: str | None = None

    # The survey dashboard's admin token: the token itself (local runs) or the name of an SSM SecureString.
    admin_token: SecretStr | None = None
    admin_token_parameter: str | None = None

    # The key that signs page cursors: the key itself (local runs) or the name of an SSM SecureString.
    cursor_secret: SecretStr | None = None
    cursor_secret_parameter: str | None = None

    # Who may change or destroy data (stream values and resets, metric posts, moving averages, POST /events, an
    # open load generator): anyone (`make run`), or only a bearer of the write token or the admin token (the
    # default, so every deployed stage is closed unless it says otherwise). Counting a hit, reads and the survey
    # respondent's own routes stay public.
    write_access: Literal["open", "token"] = "token"
    # The write token: the token itself (local runs) or the name of an SSM SecureString.
    write_token: SecretStr | None = None
    write_token_parameter: str | None = None

    # POST /test/{n}/ spends write capacity: open to anyone who may write (make run), the admin token only (the
    # default in a deployed stage), or switched off (prod).
    load_test_access: Literal["open", "admin", "off"] = "admin"

    # Web origins (`https://dash.example.com`, comma-separated) whose pages may call the API from a browser: read,
    # and write with the token (chalicelib/edge/cors.py). None by default: a browser keeps every answer from other
    # origins' scripts, as before. The tracking snippet needs none (it sends without CORS).
    cors_origins: Annotated[tuple[str, ...], BeforeValidator(_origin_list)] = ()

    # How many times a minute the hits' sweep ranks what it was told about (chalicelib/hits/sweep.py). The ranking's
    # lag bound (chalicelib/hits/slots.py) is worst_case_s + 15 s + 60 s / passes: 57 s at 3; 47 s at 6; 97 s at 1. Its
    # run lasts the minute's passes, so it costs Lambda time even at rest (docs/deploy.md), and each pass moves the
    # entries of what changed since the last (bench/hits_ranking.py).
    hit_rank_passes: int = Field(default=3, ge=1, le=6)

    # How far back a metric's series answers, per tier (chalicelib/metrics/rollup.py): minutes (steps of 60 and 300 s;
    # their items live window.RETENTION_S, 48 h), hours (3,600 s) and days (86,400 s). Hour and day buckets are
    # written with a TTL of their tier's retention plus a day.
    metric_minutes_retention_h: int = Field(default=48, ge=1, le=48)
    metric_hours_retention_d: int = Field(default=90, ge=3, le=3_660)
    metric_days_retention_d: int = Field(default=1_826, ge=3, le=36_600)

    # Powertools Tracer (X-Ray): set by the deployed template where the stage's Chalice `xray` is on.
    tracing: bool = False

    # DynamoDB client limits. No database attempt starts after request_budget_s, so a request that meets a
    # stalled database answers 503 (Retry-After) within worst_case_s, which must leave API Gateway's 29 s
    # some room (ANSWER_MARGIN_S). Defaults: 15 + max(2 + 5, 2) = 22 s. DynamoDB answers in milliseconds:
    # 2 s to connect and 5 s to read are generous; 3 attempts ride out a dropped connection.
    db_connect_timeout_s: float = Field(default=2.0, gt=0, le=10)
    db_read_timeout_s: float = Field(default=5.0, gt=0, le=10)
    db_max_attempts: int = Field(default=3, ge=1, le=10)
    request_budget_s: float = Field(default=15.0, gt=0, le=20)

    @property
    def worst_case_s(self) -> float:
        """The longest a request waits for the database: its budget, then one attempt in flight or one
        retry back-off, whichever is longer (botocore's throttling back-off before attempt n is at most
        2^(n-2) s, capped at 20 s)."""
        backoff = min(20.0, 2.0 ** (self.db_max_attempts - 2)) if self.db_max_attempts > 1 else 0.0
        return self.request_budget_s + max(self.db_connect_timeout_s + self.db_read_timeout_s, backoff)

    @model_validator(mode="after")
    def _answers_before_the_gateway_gives_up(self) -> Settings:
        if self.worst_case_s > GATEWAY_TIMEOUT_S - ANSWER_MARGIN_S:
            raise ValueError(
                f"request_budget_s plus one database attempt ({self.worst_case_s:g} s) must stay within "
                f"{GATEWAY_TIMEOUT_S - ANSWER_MARGIN_S:g} s (API Gateway gives up at {GATEWAY_TIMEOUT_S} s)"
            )
        return self

    @property
    def devserver_missing(self) -> bool:
        """A stage that serves `make run`'s data (the `local` one) while make run is not running: no database."""
        return self.devserver_file is not None and self.ddb_endpoint_url is None

    @property
    def events_stream_configured(self) -> bool:
        """False for a local database (DDB_ENDPOINT_URL) without a local Kinesis (KINESIS_ENDPOINT_URL): the events
        would go to the region's Kinesis, where no stream of this run is."""
        return self.ddb_endpoint_url is None or self.kinesis_endpoint_url is not None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        """Each field from its upper-case variable; an empty variable counts as unset. With DEVSERVER_FILE, the
        file's variables over the environment's (whose own then serve while make run is not running)."""
        given = {name: environ[name.upper()] for name in cls.model_fields if environ.get(name.upper())}
        if "devserver_file" in given:
            given = {**given, **devserver_variables(given["devserver_file"])}
        return cls.model_validate(given)


def devserver_variables(name: str) -> dict[str, Any]:
    """The settings `make run` wrote to the file `name` while it runs, by field; none when it is not running."""
    try:
        written = json.loads((PROJECT_DIR / name).read_text())
    except FileNotFoundError:
        return {}
    variables: dict[str, str] = written["environment"]
    return {field: variables[field.upper()] for field in Settings.model_fields if variables.get(field.upper())}


_lock = threading.Lock()
_current: Settings | None = None


def get() -> Settings:
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = Settings.from_environment(os.environ)
    return _current


def reset() -> None:
    """Forget the settings read (tests change the environment between cases)."""
    global _current
    with _lock:
        _current = None
