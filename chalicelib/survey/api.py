"""HTTP layer for the survey and its admin dashboard: parse, authorise, call the store, shape the answer.

Respondent API (the response's own token: `X-Response-Token: <token>` or `Authorization: Bearer <token>`):
  POST  /survey/responses        start a response (optionally with answers) -> 201 {id, token, ...}
  GET   /survey/responses/{id}   the answers, current step, completed
  PATCH /survey/responses/{id}   any subset of the 8 fields, `step`, and `"complete": true` on step 4
A missing token is 401; an unknown id and a wrong token are the same 404 (existence is not revealed).
A completed response cannot change: 409 already_submitted, "Survey already submitted.".

Admin API (`Authorization: Bearer <admin token>`; none configured -> always 401):
  GET    /dashboard/data?sort=&order=&size=&page=   summary + one page of responses; ETag / 304
  DELETE /dashboard/responses/{id}
Pages: GET /survey and GET /dashboard; their files are served at GET /assets/{name} (app.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import pages
from chalicelib.edge import auth, contract, web
from chalicelib.edge.errors import Conflict, InvalidInput, NotFound, Unauthorized
from chalicelib.edge.middleware import IDEMPOTENCY_HEADER
from chalicelib.process import runtime
from chalicelib.process.observability import count
from chalicelib.pure import clock
from chalicelib.storage import write_once
from chalicelib.survey import listing, rules
from chalicelib.survey.models import (
    AnswerBody,
    DashboardPage,
    DashboardQuery,
    Deleted,
    ResponsePath,
    StartBody,
    Started,
    SurveyResponse,
)
from chalicelib.survey.store import Change, Listed, StoredResponse, SurveyStore

bp: Blueprint = Blueprint(__name__)

TOKEN = re.compile(r"[A-Za-z0-9_-]{20,128}")
# A token a client generates for itself: at least 32 base64url characters (192 bits when random).
CLIENT_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")
CLIENT_TOKEN_DESCRIPTION = "32 to 128 characters of A-Z a-z 0-9 _ - (e.g. 32 random bytes, base64url)"


# A response's answers are personal data: no browser or proxy keeps a copy (a shared computer's cache, a proxy).
# The dashboard's ETag survives it: its page sends If-None-Match itself.
NO_STORE = {"Cache-Control": "no-store"}


def _store() -> SurveyStore:
    return SurveyStore(runtime.dynamodb(), runtime.table_name())


def _iso(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else clock.iso(epoch_ms)


def _incomplete(error: rules.AnswerError) -> InvalidInput:
    # Its own code: whether a response may be completed depends on the answers stored before, which no schema of
    # this request can say (the page shows it next to the field, as any 400 with a field).
    return InvalidInput(error.message, code="incomplete_response", field=error.field)


# --- pages --------------------------------------------------------------------


@bp.route("/survey", methods=["GET"])
@contract.operation("The survey page", tags=("pages",), responses=contract.PAGE)
def survey_page() -> Response:
    return pages.page("survey.html")


@bp.route("/dashboard", methods=["GET"])
@contract.operation(
    "The admin dashboard page (its data needs the admin token)", tags=("pages",), responses=contract.PAGE
)
def dashboard_page() -> Response:
    return pages.page("dashboard.html")


# --- respondent API -----------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _presented_token(request: Request) -> str | None:
    headers = request.headers
    return headers.get("x-response-token") or auth.bearer(headers.get("authorization"))


@contract.security(
    [{"responseToken": []}, {"responseBearer": []}],
    "The response's own token. A missing token is 401; an unknown id and a wrong token get the same 404.",
)
def respondent(request: Request) -> auth.Principal:
    """The response's own token: the principal is that response, which the check had to read anyway."""
    try:
        rid = contract.parse_path(ResponsePath, request.uri_params or {}).response_id
    except InvalidInput:
        raise NotFound("no such survey response") from None  # the same answer as an unknown id
    token = _presented_token(request)
    if not token:
        raise Unauthorized("send the response's token in X-Response-Token (or Authorization: Bearer)")
    current = _store().get(rid)
    if current is None or not _owns(current, token):
        raise NotFound("no such survey response")  # the same answer as an unknown id
    return auth.Principal("respondent", f"respondent:{rid}:{current.token_hash[:32]}", resource=current)


@contract.security(
    [],
    "Anyone may start a response. A start with an Idempotency-Key must carry the token the client generated for it "
    f"in X-Response-Token ({CLIENT_TOKEN_DESCRIPTION}; 400 `response_token_required` without): the answer then "
    "leaves `token` out.",
)
def creator(request: Request) -> auth.Principal:
    """Anyone may start a response. A start that may be replayed carries its own secret.

    With an Idempotency-Key, the client sends the token it generated in X-Response-Token: the service stores
    only its hash and never sends it back, so a replay hands no secret to whoever repeats the key and body.
    The replay is bound to that token, so only its holder gets it.
    """
    token = request.headers.get("x-response-token")
    if token is None:
        if request.headers.get(IDEMPOTENCY_HEADER) is not None:
            raise InvalidInput(
                "a start with an Idempotency-Key must carry its own token in X-Response-Token "
                f"({CLIENT_TOKEN_DESCRIPTION})",
                code="response_token_required",
                field="X-Response-Token",
            )
        return auth.ANONYMOUS
    if not CLIENT_TOKEN.fullmatch(token):
        raise InvalidInput(f"X-Response-Token must be {CLIENT_TOKEN_DESCRIPTION}", field="X-Response-Token")
    return auth.Principal("creator", auth.credential_binding("creator", token), resource=token)


def _owns(current: StoredResponse, token: str) -> bool:
    return bool(TOKEN.fullmatch(token)) and hmac.compare_digest(current.token_hash, _token_hash(token))


def response_body(response: StoredResponse) -> dict[str, Any]:
    return {
        "id": response.id,
        "answers": {name: response.answers.get(name) for name in rules.FIELDS},
        "step": response.step,
        "completed": response.completed,
        "created_at": _iso(response.created_at),
        "updated_at": _iso(response.updated_at),
        "completed_at": _iso(response.completed_at),
    }


_EMAIL_TAKEN_NOTE = (
    "An email answers once: 409 `email_taken` (field `email`) when another response holds the address (compared "
    "trimmed and case-insensitive); deleting a response frees its address."
)

# The new response's id, and the token that answers for it (the answer has one unless the client sent its own).
_RESPONDENT_LINK = {"response_id": "$response.body#/id", "header.X-Response-Token": "$response.body#/token"}


@bp.route("/survey/responses", methods=["POST"])
@auth.requires(creator)
@contract.operation(
    "Start a response, optionally with answers",
    tags=("survey",),
    body=StartBody,
    body_required=False,
    responses={201: Started},
    errors=(409,),
    description=_EMAIL_TAKEN_NOTE,
    headers={
        "X-Response-Token": contract.Header(
            f"the client's own token for this response ({CLIENT_TOKEN_DESCRIPTION})",
            pattern=f"^{CLIENT_TOKEN.pattern}$",
        )
    },
    links={
        "read": contract.Link("read", _RESPONDENT_LINK, "Read the new response"),
        "answer": contract.Link("answer", _RESPONDENT_LINK, "Save answers to the new response"),
        "delete": contract.Link("delete_response", {"response_id": "$response.body#/id"}, "Delete it (admin)"),
    },
)
def start(body: StartBody) -> Response:
    request = bp.current_request
    own_token = auth.principal(request).resource
    token = own_token or secrets.token_urlsafe(32)
    now_ms = clock.now_ms()
    response_id = f"{now_ms:012x}{secrets.token_hex(8)}"  # sorts by creation time (newest first on the dashboard)
    write_once.note(response_id)
    try:
        created = _store().create(
            response_id,
            _token_hash(token),
            rules.apply_changes({}, body.changes()),
            body.step or rules.FIRST_STEP,
            now_ms,
        )
    except write_once.AlreadyApplied as earlier:  # a keyed retry of a start already stored: that response
        found = _store().get(earlier.note or "")
        if found is None:  # deleted since
            raise
        return web.json_response(response_body(found), status=201, headers=NO_STORE)
    count("SurveyResponsesStarted")
    started = response_body(created) if own_token else {**response_body(created), "token": token}
    return web.json_response(started, status=201, headers=NO_STORE)


@bp.route("/survey/responses/{response_id}", methods=["GET"])
@auth.requires(respondent)
@contract.operation(
    "The response's answers, current step and state",
    tags=("survey",),
    path=ResponsePath,
    responses={200: SurveyResponse},
    errors=(404,),
)
def read(response_id: str) -> Response:
    return web.json_response(response_body(auth.principal(bp.current_request).resource), headers=NO_STORE)


@bp.route("/survey/responses/{response_id}", methods=["PATCH"])
@auth.requires(respondent)
@contract.operation(
    "Save answers, move to a step, or submit",
    tags=("survey",),
    path=ResponsePath,
    body=AnswerBody,
    responses={200: SurveyResponse},
    errors=(404, 409),
    description='409 `already_submitted` ("Survey already submitted.") once completed; nothing is stored on a 400. '
    "`complete: true` needs step 4 and name, email, age and about, stored or sent: else 400 `incomplete_response`. "
    + _EMAIL_TAKEN_NOTE,
)
def answer(response_id: str, body: AnswerBody) -> Response:
    checked: StoredResponse = auth.principal(bp.current_request).resource
    changes, step, complete = body.changes(), body.step, body.complete is True

    def decide(current: StoredResponse) -> Change:
        if current.token_hash != checked.token_hash:
            raise NotFound("no such survey response")
        if current.completed:
            raise Conflict("Survey already submitted.", code="already_submitted")
        answers = rules.apply_changes(current.answers, changes)
        new_step = current.step if step is None else step
        if complete:
            try:
                rules.check_completion(answers, new_step)
            except rules.AnswerError as error:
                raise _incomplete(error) from None
        return Change(answers, new_step, complete)

    try:
        updated = _store().update(checked, decide, clock.now_ms())
    except write_once.AlreadyApplied:  # a keyed retry of a save already stored: the response as it is now
        updated = _store().get(response_id) or checked
    if updated.completed and complete:
        count("SurveyResponsesCompleted")
    return web.json_response(response_body(updated), headers=NO_STORE)


# --- admin API ----------------------------------------------------------------


def summary_body(counters: dict[str, int], version: int, updated_at: int | None) -> dict[str, Any]:
    s = rules.summarise(counters)
    return {
        "responses": s.responses,
        "responses_display": rules.compact_count(s.responses),
        "completed": s.completed,
        "average_age": s.average_age,
        "genders": s.genders,
        "gender_ratio": s.gender_ratio,
        "top_colours": [{"colour": c, "count": n} for c, n in s.top_colours],
        "updated_at": _iso(updated_at),
        "version": version,
    }


def row_body(listed: Listed) -> dict[str, Any]:
    return {
        "id": listed.id,
        **{name: listed.answers.get(name) for name in rules.FIELDS},
        "completed": listed.completed,
        "step": listed.step,
        "created_at": _iso(listed.created_at),
        "updated_at": _iso(listed.updated_at),
    }


@bp.route("/dashboard/data", methods=["GET"])
@auth.requires(auth.admin)
@contract.operation(
    "The summary and one page of responses",
    tags=("dashboard",),
    query=DashboardQuery,
    responses={200: DashboardPage, 304: None},
    headers={"If-None-Match": "the ETag of an earlier answer: 304 with an empty body while nothing changed"},
)
def dashboard_data(query: DashboardQuery) -> Response:
    request = bp.current_request
    selected = query.model_dump()
    store = _store()
    # The summary first: its version names a state no newer than the responses read after it.
    summary = store.summary()
    etag = listing.etag(summary.epoch, summary.version, selected)
    headers: dict[str, str | list[str]] = {"ETag": etag, **NO_STORE}
    if listing.matches(request.headers.get("if-none-match"), etag):
        return Response(body="", status_code=304, headers=headers)
    after = listing.position(web.decode_cursor(request, listing.CURSOR_FIELDS, query=listing.CURSOR_QUERY))
    page = listing.read_page(store, query.sort, query.order, query.size, query.page, after)
    total = summary.counters[rules.RESPONSES]
    body = {
        "summary": summary_body(summary.counters, summary.version, summary.updated_at),
        "responses": [row_body(r) for r in page.rows],
        **selected,
        "cursor": web.encode_cursor(request, listing.cursor_fields(page.next), query=listing.CURSOR_QUERY),
        "pages": max(1, -(-total // query.size)),
        "total": total,
        "truncated": False,
        "window": total,
    }
    return web.json_response(body, headers=headers)


@bp.route("/dashboard/responses/{response_id}", methods=["DELETE"])
@auth.requires(auth.admin)
@contract.operation(
    "Delete a response (the summary follows)",
    tags=("dashboard",),
    path=ResponsePath,
    responses={200: Deleted},
    errors=(404,),
)
def delete_response(response_id: str) -> Response:
    _store().delete(response_id, clock.now_ms())
    count("SurveyResponsesDeleted")
    return web.json_response({"id": response_id, "deleted": True})
