"""Where the key that signs page cursors comes from: CURSOR_SECRET, an SSM SecureString, or a per-process key."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.edge import web
from chalicelib.edge.errors import InvalidInput
from chalicelib.process import devhooks, observability, runtime
from tests.conftest import Environment

PARAMETER = "/livestats/dev/cursor-secret"
POSITION = {"sk": "V#0001", "offset": 2}
FIELDS = {"sk": str, "offset": int}


def listing(cursor: str | None = None, stream: str = "a") -> Any:
    """The parts of a request a cursor is bound to."""
    return SimpleNamespace(
        path="/streams/{stream}/values",
        uri_params={"stream": stream},
        query_params=None if cursor is None else {"cursor": cursor},
    )


def round_trip(cursor: str, stream: str = "a") -> dict[str, Any] | None:
    return web.decode_cursor(listing(cursor, stream), FIELDS)


def test_the_secret_from_the_environment_signs_and_checks(secrets_env: Environment) -> None:
    secrets_env.set("CURSOR_SECRET", "one")
    cursor = web.encode_cursor(listing(), POSITION)
    assert cursor is not None and round_trip(cursor) == POSITION
    with pytest.raises(InvalidInput):
        round_trip(cursor, stream="b")
    secrets_env.set("CURSOR_SECRET", "two")
    with pytest.raises(InvalidInput):
        round_trip(cursor)


def test_the_secret_from_an_ssm_secure_string_is_read_and_cached(secrets_env: Environment) -> None:
    from moto import mock_aws

    with mock_aws():
        ssm = runtime.ssm()
        ssm.put_parameter(Name=PARAMETER, Value="from-ssm", Type="SecureString")
        secrets_env.set("CURSOR_SECRET_PARAMETER", PARAMETER)
        cursor = web.encode_cursor(listing(), POSITION)
        assert cursor is not None and round_trip(cursor) == POSITION
        # The same key as CURSOR_SECRET=from-ssm: the parameter's value is the key.
        secrets_env.set("CURSOR_SECRET", "from-ssm")
        assert round_trip(cursor) == POSITION
        secrets_env.unset("CURSOR_SECRET")
        # Cached: a rotated parameter is read again only when the cache expires (or in a new container).
        ssm.put_parameter(Name=PARAMETER, Value="rotated", Type="SecureString", Overwrite=True)
        assert round_trip(cursor) == POSITION
        runtime.reset()
        with pytest.raises(InvalidInput):
            round_trip(cursor)
        # An unreadable parameter: a 503 the client may retry, never an unsigned cursor.
        ssm.delete_parameter(Name=PARAMETER)
        runtime.reset()
        with pytest.raises(web.CursorKeyUnavailable):
            web.encode_cursor(listing(), POSITION)


def test_without_a_secret_a_random_process_key_is_used_with_one_warning(
    secrets_env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(web, "_process_key", None)
    monkeypatch.setattr(observability.logger, "warning", lambda message, *_, **__: warnings.append(message))
    cursor = web.encode_cursor(listing(), POSITION)
    assert cursor is not None and round_trip(cursor) == POSITION
    assert len(warnings) == 1 and "CURSOR_SECRET" in warnings[0]
    monkeypatch.setattr(web, "_process_key", None)  # another process: another key
    with pytest.raises(InvalidInput):
        round_trip(cursor)


def test_make_run_sets_a_cursor_secret_and_keeps_one_already_set(secrets_env: Environment) -> None:
    secrets_env.set("ADMIN_TOKEN", "kept-token")  # so the hook leaves the admin token alone
    devhooks.on_devserver_start()
    generated = os.environ["CURSOR_SECRET"]
    assert len(generated) >= 40
    secrets_env.set("CURSOR_SECRET", "kept-secret")
    devhooks.on_devserver_start()
    assert os.environ["CURSOR_SECRET"] == "kept-secret"
