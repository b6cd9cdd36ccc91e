"""Where the admin token comes from (env, SSM SecureString), and `make run`'s generated token."""

from __future__ import annotations

import os

import pytest

from chalicelib import devhooks, runtime
from chalicelib.errors import Unauthorized
from chalicelib.survey import admin
from devtools import devserver
from tests.conftest import Environment

PARAMETER = "/livestats/dev/admin-token"


def test_bearer_parsing() -> None:
    assert admin.bearer("Bearer abc") == "abc"
    assert admin.bearer("bearer   abc ") == "abc"
    for header in (None, "", "Bearer", "Bearer ", "Basic abc", "abc", "Bearer " + "x" * 600):
        assert admin.bearer(header) is None


def test_env_token(secrets_env: Environment) -> None:
    with pytest.raises(Unauthorized):
        admin.require_admin("Bearer anything")  # nothing configured: closed
    secrets_env.set("ADMIN_TOKEN", "s3cret-token")
    admin.require_admin("Bearer s3cret-token")
    for header in (None, "Bearer s3cret-tokeN", "Bearer s3cret-token2", "Token s3cret-token"):
        with pytest.raises(Unauthorized):
            admin.require_admin(header)


def test_token_from_an_ssm_secure_string_read_once(secrets_env: Environment) -> None:
    from moto import mock_aws

    with mock_aws():
        ssm = runtime.ssm()
        ssm.put_parameter(Name=PARAMETER, Value="from-ssm-token", Type="SecureString")
        secrets_env.set("ADMIN_TOKEN_PARAMETER", PARAMETER)
        admin.require_admin("Bearer from-ssm-token")
        with pytest.raises(Unauthorized):
            admin.require_admin("Bearer from-ssm-tokenx")
        # Cached: a deleted parameter does not matter until the cache expires (or a new container starts).
        ssm.delete_parameter(Name=PARAMETER)
        admin.require_admin("Bearer from-ssm-token")
        runtime.reset()  # forgets the SSM client, its provider and the value it cached
        with pytest.raises(Unauthorized):  # unreadable parameter: closed
            admin.require_admin("Bearer from-ssm-token")
        # The environment's own token wins (local runs).
        secrets_env.set("ADMIN_TOKEN", "env-token")
        admin.require_admin("Bearer env-token")


def test_make_run_generates_and_prints_a_token(secrets_env: Environment) -> None:
    lines = devhooks.on_devserver_start()
    token = os.environ["ADMIN_TOKEN"]
    assert len(token) >= 40 and any(token in line for line in lines)
    assert any("/dashboard" in line for line in lines)
    # The dev server finds the hook and prints its lines.
    assert devserver.devhook_lines()[0] == f"Admin token: {token}"
    # A token already set is kept.
    secrets_env.set("ADMIN_TOKEN", "kept-token")
    assert "Admin token: kept-token" in devhooks.on_devserver_start()
