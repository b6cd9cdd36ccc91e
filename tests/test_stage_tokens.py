"""The stage's bearer tokens (admin, write): where each comes from (env, SSM SecureString), how a header is read, and
`make run`'s generated tokens."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.edge import auth
from chalicelib.edge.errors import Unauthorized
from chalicelib.process import devhooks, runtime
from devtools import devserver
from tests.conftest import Environment

POLICIES: dict[str, tuple[Callable[[Any], auth.Principal], str]] = {
    "admin": (auth.admin, "ADMIN_TOKEN"),
    "write": (auth.writer, "WRITE_TOKEN"),
}


class Request:
    """What a policy reads of a request: its headers."""

    def __init__(self, authorization: str | None) -> None:
        self.headers = {} if authorization is None else {"authorization": authorization}


def check(policy: Callable[[Any], auth.Principal], authorization: str | None) -> auth.Principal:
    return policy(Request(authorization))


def test_bearer_parsing() -> None:
    assert auth.bearer("Bearer abc") == "abc"
    assert auth.bearer("bearer   abc ") == "abc"
    for header in (None, "", "Bearer", "Bearer ", "Basic abc", "abc", "Bearer " + "x" * 600):
        assert auth.bearer(header) is None


@pytest.fixture
def token_env(secrets_env: Environment) -> Environment:
    secrets_env.set("WRITE_ACCESS", "token")
    return secrets_env


@pytest.mark.parametrize("kind", POLICIES)
def test_a_token_from_the_environment(token_env: Environment, kind: str) -> None:
    policy, variable = POLICIES[kind]
    with pytest.raises(Unauthorized):
        check(policy, "Bearer anything")  # nothing configured: closed
    token_env.set(variable, "s3cret-token")
    assert check(policy, "Bearer s3cret-token").kind == kind
    for header in (None, "Bearer s3cret-tokeN", "Bearer s3cret-token2", "Token s3cret-token"):
        with pytest.raises(Unauthorized):
            check(policy, header)


def test_the_admin_token_writes_too_and_the_write_token_is_no_admin(token_env: Environment) -> None:
    token_env.set("ADMIN_TOKEN", "the-admin-token")
    token_env.set("WRITE_TOKEN", "the-write-token")
    assert check(auth.writer, "Bearer the-admin-token").kind == "admin"
    assert check(auth.writer, "Bearer the-write-token").kind == "write"
    with pytest.raises(Unauthorized):
        check(auth.admin, "Bearer the-write-token")
    # Each principal is bound to its own credential (idempotency records are keyed by it).
    assert check(auth.writer, "Bearer the-admin-token").binding != check(auth.writer, "Bearer the-write-token").binding


def test_open_writes_need_no_token(token_env: Environment) -> None:
    token_env.set("WRITE_ACCESS", "open")
    assert check(auth.writer, None) is auth.ANONYMOUS
    assert check(auth.writer, "Bearer whatever") is auth.ANONYMOUS


@pytest.mark.parametrize("kind", POLICIES)
def test_a_token_from_an_ssm_secure_string_read_once(token_env: Environment, kind: str) -> None:
    from moto import mock_aws

    policy, variable = POLICIES[kind]
    parameter = f"/livestats/dev/{kind}-token"
    with mock_aws():
        ssm = runtime.ssm()
        ssm.put_parameter(Name=parameter, Value="from-ssm-token", Type="SecureString")
        token_env.set(f"{variable}_PARAMETER", parameter)
        check(policy, "Bearer from-ssm-token")
        with pytest.raises(Unauthorized):
            check(policy, "Bearer from-ssm-tokenx")
        # Cached: a deleted parameter does not matter until the cache expires (or a new container starts).
        ssm.delete_parameter(Name=parameter)
        check(policy, "Bearer from-ssm-token")
        runtime.reset()  # forgets the SSM client, its provider and the value it cached
        # Unreadable: the credential can't be checked, so nothing passes, and the client may retry.
        with pytest.raises(auth.CredentialsUnavailable) as unavailable:
            check(policy, "Bearer from-ssm-token")
        assert unavailable.value.status == 503 and unavailable.value.headers["Retry-After"]
        # The environment's own token wins (local runs).
        token_env.set(variable, "env-token")
        check(policy, "Bearer env-token")


def test_make_run_generates_and_prints_an_admin_token_and_leaves_writes_open(secrets_env: Environment) -> None:
    lines = devhooks.on_devserver_start()
    token = os.environ["ADMIN_TOKEN"]
    assert len(token) >= 40 and any(token in line for line in lines)
    assert any("/dashboard" in line for line in lines)
    assert os.environ["WRITE_ACCESS"] == "open" and not any("Write token" in line for line in lines)
    # The dev server finds the hook and prints its lines.
    assert devserver.devhook_lines()[0] == f"Admin token: {token}"
    # A token already set is kept.
    secrets_env.set("ADMIN_TOKEN", "kept-token")
    assert "Admin token: kept-token" in devhooks.on_devserver_start()


def test_make_run_with_write_access_token_prints_a_write_token(secrets_env: Environment) -> None:
    secrets_env.set("WRITE_ACCESS", "token")
    lines = devhooks.on_devserver_start()
    token = os.environ["WRITE_TOKEN"]
    assert len(token) >= 40 and any(line.startswith(f"Write token: {token}") for line in lines)
    secrets_env.set("WRITE_TOKEN", "kept-write-token")
    assert any(line.startswith("Write token: kept-write-token") for line in devhooks.on_devserver_start())
