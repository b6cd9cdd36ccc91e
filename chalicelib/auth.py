"""Who is asking: every route's credential is checked first, before any replay or cached answer.

A view declares what it needs with `@requires(policy)` under its route decorator. The `authorize`
middleware (registered before idempotency in app.py) runs that policy on every request, and the
principal it returns is kept on the request. An idempotency record is bound to `principal.binding`, so a
replay reaches only the credential that made the original request, and only after that credential
passed its check again.

A policy returns a Principal or raises: Unauthorized (401, no or unusable credential), NotFound (404,
where a wrong credential must not reveal whether the resource exists) or Forbidden (403).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalice import Chalice, Response
from chalice.app import Request

from chalicelib.survey import admin as admin_token

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


def admin(request: Request) -> Principal:
    """The stage's admin bearer token."""
    authorization = request.headers.get("authorization")
    admin_token.require_admin(authorization)
    return Principal("admin", credential_binding("admin", authorization or ""))
