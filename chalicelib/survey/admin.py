"""The dashboard's admin token: one per stage, checked in constant time, failing closed.

Where the expected token comes from, first match wins:
  ADMIN_TOKEN            the token itself (local runs: `make run` generates one, see chalicelib/devhooks.py)
  ADMIN_TOKEN_PARAMETER  the name of an SSM SecureString parameter holding it (deployed stages),
                         read on first use and cached for CACHE_SECONDS (so a rotation takes effect
                         within that time without a redeploy)
Neither set, or the parameter unreadable: no token is configured and every admin request is refused.
"""

from __future__ import annotations

import hmac
import threading
import time

from chalicelib import aws, settings
from chalicelib.errors import Unauthorized
from chalicelib.observability import logger

CACHE_SECONDS = 300.0
MAX_TOKEN_LENGTH = 512

_lock = threading.Lock()
_cached: tuple[str, str, float] | None = None  # (parameter name, token, monotonic time read)


def reset() -> None:
    global _cached
    with _lock:
        _cached = None


def _from_parameter(name: str) -> str | None:
    global _cached
    with _lock:
        if _cached is not None and _cached[0] == name and time.monotonic() - _cached[2] < CACHE_SECONDS:
            return _cached[1]
    try:
        response = aws.ssm().get_parameter(Name=name, WithDecryption=True)
        token = str(response["Parameter"]["Value"])
    except Exception:  # missing parameter, no permission, no network: fail closed, try again next request
        logger.exception("cannot read the admin token parameter", extra={"parameter": name})
        return None
    with _lock:
        _cached = (name, token, time.monotonic())
    return token


def expected_token() -> str | None:
    current = settings.get()
    if current.admin_token is not None:
        return current.admin_token.get_secret_value()
    if current.admin_token_parameter:
        return _from_parameter(current.admin_token_parameter)
    return None


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
