"""Who is asking: every route's credential is checked first, before any replay or cached answer.

A view declares what it needs with `@requires(policy)` under its route decorator. The `authorize`
middleware (registered before idempotency in app.py) runs that policy on every request, and the
principal it returns is kept on the request. An idempotency record is bound to `principal.binding`, so a
replay reaches only the credential that made the original request, and only after that credential
passed its check again.

A policy returns a Principal or raises: Unauthorized (401, no or unusable credential), NotFound (404,
where a wrong credential must not reveal whether the resource exists) or Forbidden (403).

The stage's two bearer tokens are checked here, in constant time, failing closed:
  admin  the survey dashboard and the admin API (ADMIN_TOKEN, or the SSM SecureString ADMIN_TOKEN_PARAMETER names)
  write  whatever changes or destroys data, when the stage's WRITE_ACCESS is `token` (WRITE_TOKEN, or
         WRITE_TOKEN_PARAMETER); the admin token passes there too
A parameter is read through `chalicelib.storage.stage_secrets` (cached 5 minutes, so a rotation takes effect within that).
Neither set: that token is configured nowhere and every request needing it is refused (401). The parameter
unreadable: 503 `unavailable`, since the credential can't be checked (and the client's may well be right).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from chalice import Chalice, Response
from chalice.app import Request

from chalicelib.edge.errors import ServiceError, Unauthorized
from chalicelib.process import settings
from chalicelib.storage import stage_secrets

GetResponse = Callable[[Request], Response]


@dataclass(frozen=True)
class Principal:
    kind: str  # "anonymous", "admin", "respondent", ...
    # What an idempotency record is bound to: the kind plus a hash of the credential, never the credential.
    binding: str
    # What the policy had to read to decide (e.g. the survey response): the view need not read it again.
    resource: Any = None


ANONYMOUS = Principal("anonymous", "anonymous")

Policy = Callable[[Request], Principal]


def credential_binding(kind: str, credential: str) -> str:
    return f"{kind}:{hashlib.sha256(credential.encode()).hexdigest()[:32]}"


def public(request: Request) -> Principal:
    return ANONYMOUS


def requires(policy: Policy) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the view's policy (under @bp.route, so the route registers the marked function)."""

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        view.authorization = policy  # type: ignore[attr-defined]
        return view

    return mark


def policy_of(view: Callable[..., Any]) -> Policy:
    policy: Policy = getattr(view, "authorization", public)
    return policy


_PRINCIPAL = "livestats_principal"


def principal(request: Request) -> Principal:
    """The principal `authorize` found for this request."""
    found: Principal = getattr(request, _PRINCIPAL, ANONYMOUS)
    return found


def authorizer(app: Chalice) -> Callable[[Request, GetResponse], Response]:
    """Middleware: run the matched view's policy before anything else answers for the request."""

    def authorize(event: Request, get_response: GetResponse) -> Response:
        entry = app.routes.get(event.path, {}).get(event.method)
        policy = public if entry is None else policy_of(entry.view_function)
        setattr(event, _PRINCIPAL, policy(event))
        return get_response(event)

    return authorize


# --- the stage's bearer tokens ---------------------------------------------------------------------------------

MAX_TOKEN_LENGTH = 512
TokenKind = Literal["admin", "write"]


class CredentialsUnavailable(ServiceError):
    status = 503
    code = "unavailable"


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


def expected_token(kind: TokenKind) -> str | None:
    """The stage's token of this kind; None when none is configured."""
    current = settings.get()
    if kind == "admin":
        direct, parameter = current.admin_token, current.admin_token_parameter
    else:
        direct, parameter = current.write_token, current.write_token_parameter
    try:
        return stage_secrets.value(direct, parameter)
    except stage_secrets.SecretUnavailable as error:
        raise CredentialsUnavailable(
            error.unconfigured or "credentials cannot be checked right now; retry shortly", headers={"Retry-After": "5"}
        ) from None


def _matches(given: str, kind: TokenKind) -> bool:
    expected = expected_token(kind)
    # Compared even when nothing is configured, so timing does not tell the two cases apart.
    matches = hmac.compare_digest(given.encode(), (expected or "\x00" * 43).encode())
    return expected is not None and matches


def token_holder(request: Request, kinds: tuple[TokenKind, ...], needed: str) -> Principal:
    """The principal of the first of `kinds` whose token the request carries; 401 naming what is `needed`."""
    if settings.get().devserver_missing:
        # The local stage takes its tokens from `make run`: none is valid until it runs, whatever is sent.
        raise CredentialsUnavailable(
            f"{needed} is required, and the tokens are those of `make run`, which is not running in this project. "
            "Start `make run` first, in another terminal.",
            headers={"Retry-After": "5"},
        )
    given = bearer(request.headers.get("authorization"))
    if given is None:
        raise Unauthorized(f"{needed} is required: send Authorization: Bearer <token>")
    # Every kind is compared, so timing does not tell which one matched.
    matched = [kind for kind in kinds if _matches(given, kind)]
    if not matched:
        raise Unauthorized(f"the token is not valid here: {needed} is required")
    return Principal(matched[0], credential_binding(matched[0], given))


def admin(request: Request) -> Principal:
    """The stage's admin bearer token."""
    return token_holder(request, ("admin",), "an admin token")


def writer(request: Request) -> Principal:
    """Changing data: anyone where the stage's WRITE_ACCESS is `open`; else the write token or the admin token."""
    if settings.get().write_access == "open":
        return ANONYMOUS
    return token_holder(request, ("write", "admin"), "a write token")
