"""The dashboard's admin token: one per stage, checked in constant time, failing closed.

Where the expected token comes from, first match wins (read through `chalicelib.stage_secrets`):
  ADMIN_TOKEN            the token itself (local runs: `make run` generates one, see chalicelib/devhooks.py)
  ADMIN_TOKEN_PARAMETER  the name of an SSM SecureString parameter holding it (deployed stages),
                         read on first use and cached for 5 minutes
Neither set, or the parameter unreadable: no token is configured and every admin request is refused.
"""

from __future__ import annotations

import hmac

from chalicelib import settings, stage_secrets
from chalicelib.errors import Unauthorized

MAX_TOKEN_LENGTH = 512


def expected_token() -> str | None:
    current = settings.get()
    try:
        return stage_secrets.value(current.admin_token, current.admin_token_parameter)
    except stage_secrets.SecretUnavailable:
        return None  # fail closed; the next request tries again


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


def require_admin(authorization: str | None) -> None:
    """Raise Unauthorized unless the header carries the stage's admin token."""
    given = bearer(authorization)
    if given is None:
        raise Unauthorized("an admin token is required: send Authorization: Bearer <token>")
    expected = expected_token()
    # Compare even when nothing is configured, so timing does not tell the two cases apart.
    matches = hmac.compare_digest(given.encode(), (expected or "\x00" * 43).encode())
    if expected is None or not matches:
        raise Unauthorized("the admin token is not valid")
