"""Authorization comes first: every authenticated route refuses no credential, a wrong one and another
principal's, and an Idempotency-Key replay is answered only to the credential that made the original."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from app import app
from chalicelib.edge import auth
from chalicelib.hits import api as hits_api
from chalicelib.storage import keys
from chalicelib.survey import api as survey_api
from tests.conftest import Api, Environment, EventsStream, assert_error, ok, partition_items

ADMIN_TOKEN = "admin-token-0123456789abcdefghijklmnop"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PERSON = {"name": "Private Person", "email": "private@example.com", "age": 41}


@pytest.fixture
def service(api: Api, env: Environment) -> Api:
    env.set("ADMIN_TOKEN", ADMIN_TOKEN)
    return api


def start(api: Api, answers: dict[str, Any] | None = None) -> tuple[str, str]:
    created = ok(api.post("/survey/responses", answers or PERSON), 201)
    return created["id"], created["token"]


def own(token: str) -> dict[str, str]:
    return {"X-Response-Token": token}


def refused(response: Any, status: int, code: str) -> None:
    if response.body or response.status_code != status:  # a HEAD's answer has the status and no body
        assert_error(response, status, code)
    assert b"Private Person" not in response.body and b"private@example.com" not in response.body


def unauthorized(response: Any) -> None:
    refused(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def hidden(response: Any) -> None:
    """A respondent route's answer to a wrong credential: the same 404 as an unknown id."""
    refused(response, 404, "not_found")


# --- every authenticated route ---------------------------------------------------------------------------------


class Case:
    """How to call one authenticated route, and what each kind of bad credential must get."""

    def __init__(self, method: str, path: Callable[[str], str], body: Any, wrong: Callable[[Any], None]) -> None:
        self.method, self.path, self.body, self.wrong = method, path, body, wrong


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/survey/responses/{response_id}"): Case("GET", lambda rid: f"/survey/responses/{rid}", None, hidden),
    ("PATCH", "/survey/responses/{response_id}"): Case(
        "PATCH", lambda rid: f"/survey/responses/{rid}", {"book": "Dune"}, hidden
    ),
    ("HEAD", "/survey/responses/{response_id}"): Case("HEAD", lambda rid: f"/survey/responses/{rid}", None, hidden),
    ("GET", "/dashboard/data"): Case("GET", lambda rid: "/dashboard/data", None, unauthorized),
    ("HEAD", "/dashboard/data"): Case("HEAD", lambda rid: "/dashboard/data", None, unauthorized),
    ("DELETE", "/dashboard/responses/{response_id}"): Case(
        "DELETE", lambda rid: f"/dashboard/responses/{rid}", None, unauthorized
    ),
    ("POST", "/test/{n}"): Case("POST", lambda rid: "/test/3/", None, unauthorized),
}


def routes_with(*policies: auth.Policy) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, methods in app.routes.items()
        for method, entry in methods.items()
        if auth.policy_of(entry.view_function) in policies
    }


def authenticated_routes() -> set[tuple[str, str]]:
    everything = {(method, path) for path, methods in app.routes.items() for method in methods}
    return everything - routes_with(auth.public, survey_api.creator)


def test_the_cases_cover_every_authenticated_route() -> None:
    # A new route with a policy must be added to CASES or WRITES, so the tests below check it.
    assert authenticated_routes() == set(CASES) | set(WRITES)
    assert routes_with(auth.writer) == set(WRITES)


@pytest.mark.parametrize("route", sorted(CASES))
def test_no_credential_a_wrong_one_and_another_principals_are_refused(
    service: Api, route: tuple[str, str], env: Environment
) -> None:
    env.set("LOAD_TEST_ACCESS", "admin")
    case = CASES[route]
    victim, victim_token = start(service)
    _, other_token = start(service, {"name": "Someone Else"})
    path = case.path(victim)
    respondent_route = case.wrong is hidden
    missing = service.request(case.method, path, case.body)
    unauthorized(missing)
    wrong = {"X-Response-Token": "w" * 43} if respondent_route else {"Authorization": "Bearer " + "w" * 43}
    case.wrong(service.request(case.method, path, case.body, headers=wrong))
    # Another principal: another response's token here, a respondent's token on an admin route.
    case.wrong(service.request(case.method, path, case.body, headers=own(other_token)))
    case.wrong(service.request(case.method, path, case.body, headers={"Authorization": f"Bearer {other_token}"}))
    if respondent_route:  # and the admin token is not a respondent's
        hidden(service.request(case.method, path, case.body, headers=ADMIN))
    # Nothing changed, nothing was counted.
    assert ok(service.get(f"/survey/responses/{victim}", headers=own(victim_token)))["answers"]["book"] is None
    assert ok(service.get("/dashboard/data", headers=ADMIN))["total"] == 2
    assert ok(service.get("/stats/"))["total_hits"] == 0


# --- replays ----------------------------------------------------------------------------------------------------


def test_a_respondents_replay_needs_the_respondents_token(service: Api) -> None:
    rid, token = start(service)
    _, other_token = start(service, {"name": "Someone Else"})
    key = {"Idempotency-Key": "k1"}
    first = service.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, headers={**own(token), **key})
    assert ok(first)["answers"]["book"] == "Dune"
    # The same key and body with no token, a wrong token or another response's token: no replay.
    for response in (
        service.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, headers=key),
        service.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, headers={**own("x" * 43), **key}),
    ):
        assert "Idempotent-Replayed" not in response.headers
        assert response.status_code in (401, 404)
        assert b"Private Person" not in response.body
    other = service.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, headers={**own(other_token), **key})
    hidden(other)
    # The holder gets the replay.
    again = service.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, headers={**own(token), **key})
    assert again.headers.get("Idempotent-Replayed") == "true" and ok(again) == ok(first)


def test_a_replay_after_the_response_is_deleted_is_refused(service: Api) -> None:
    rid, token = start(service)
    headers = {**own(token), "Idempotency-Key": "k2"}
    ok(service.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, headers=headers))
    ok(service.delete(f"/dashboard/responses/{rid}", headers=ADMIN))
    hidden(service.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, headers=headers))


def test_an_admin_replay_needs_the_current_admin_token(service: Api, env: Environment) -> None:
    first_id, _ = start(service)
    second_id, _ = start(service, {"name": "Someone Else"})
    key = {"Idempotency-Key": "del-1"}
    deleted = service.delete(f"/dashboard/responses/{first_id}", headers={**ADMIN, **key})
    assert ok(deleted) == {"id": first_id, "deleted": True}
    unauthorized(service.delete(f"/dashboard/responses/{first_id}", headers=key))
    unauthorized(service.delete(f"/dashboard/responses/{first_id}", headers={"Authorization": "Bearer x", **key}))
    replay = service.delete(f"/dashboard/responses/{first_id}", headers={**ADMIN, **key})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    # A rotated token: the old one no longer reaches its own replay.
    env.set("ADMIN_TOKEN", "rotated-admin-token-0123456789abcdefghij")
    unauthorized(service.delete(f"/dashboard/responses/{first_id}", headers={**ADMIN, **key}))
    assert (
        ok(
            service.get("/dashboard/data", headers={"Authorization": "Bearer rotated-admin-token-0123456789abcdefghij"})
        )["total"]
        == 1
    )
    assert second_id


def idempotency_records(dynamodb: Any) -> str:
    items = partition_items(dynamodb, keys.IDEMPOTENCY_PARTITION)
    return json.dumps(items)


def test_a_replayable_start_carries_its_own_token_and_no_secret_is_handed_out(service: Api, dynamodb: Any) -> None:
    key = {"Idempotency-Key": "start-1"}
    assert_error(service.post("/survey/responses", PERSON, headers=key), 400, "response_token_required")
    assert_error(service.post("/survey/responses", PERSON, headers={**key, **own("short")}), 400, "invalid_input")

    mine = secrets.token_urlsafe(32)
    first = ok(service.post("/survey/responses", PERSON, headers={**key, **own(mine)}), 201)
    assert "token" not in first  # the client has it; the service never sends it back
    assert ok(service.get(f"/survey/responses/{first['id']}", headers=own(mine)))["answers"]["name"] == "Private Person"

    replay = service.post("/survey/responses", PERSON, headers={**key, **own(mine)})
    assert replay.headers.get("Idempotent-Replayed") == "true" and ok(replay, 201)["id"] == first["id"]

    # Whoever repeats the key and body with another token starts a response of their own: not a replay, so the
    # address the first response holds is refused (one response per email), and without it the start is theirs.
    theirs = secrets.token_urlsafe(32)
    assert_error(service.post("/survey/responses", PERSON, headers={**key, **own(theirs)}), 409, "email_taken")
    anonymous = {name: value for name, value in PERSON.items() if name != "email"}
    other = ok(service.post("/survey/responses", anonymous, headers={**key, **own(theirs)}), 201)
    assert other["id"] != first["id"] and "token" not in other
    hidden(service.get(f"/survey/responses/{first['id']}", headers=own(theirs)))
    assert mine not in idempotency_records(dynamodb) and theirs not in idempotency_records(dynamodb)


def test_a_start_without_a_key_still_gets_a_generated_token(service: Api) -> None:
    rid, token = start(service)
    assert len(token) >= 40
    assert ok(service.get(f"/survey/responses/{rid}", headers=own(token)))["id"] == rid


# --- the load generator ---------------------------------------------------------------------------------------


def test_the_load_generator_is_open_under_make_run(service: Api, env: Environment) -> None:
    env.set("LOAD_TEST_ACCESS", "open")
    assert ok(service.post("/test/4/"))["counted"] == 4


def test_in_a_deployed_stage_the_load_generator_needs_the_admin_token(service: Api, env: Environment) -> None:
    env.unset("LOAD_TEST_ACCESS")  # a deployed stage that says nothing: admin only
    unauthorized(service.post("/test/4/"))
    unauthorized(service.post("/test/4/", headers={"Authorization": "Bearer nope"}))
    assert ok(service.get("/stats/"))["total_hits"] == 0
    assert ok(service.post("/test/4/", headers=ADMIN))["counted"] == 4


def test_an_open_load_generator_needs_the_write_token_where_writes_do(service: Api, env: Environment) -> None:
    env.set("LOAD_TEST_ACCESS", "open")
    env.set("WRITE_ACCESS", "token")
    env.set("WRITE_TOKEN", WRITE_TOKEN)
    unauthorized(service.post("/test/4/"))
    assert ok(service.get("/stats/"))["total_hits"] == 0
    assert ok(service.post("/test/4/", headers=WRITER))["counted"] == 4


def test_prod_switches_the_load_generator_off(service: Api, env: Environment, chalice_config: Any) -> None:
    from chalice.cli.factory import CLIFactory

    from tests.conftest import ROOT

    prod = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name="prod")
    env.set("LOAD_TEST_ACCESS", prod.environment_variables["LOAD_TEST_ACCESS"])
    for headers in ({}, ADMIN):
        assert_error(service.post("/test/4/", headers=headers), 403, "load_test_disabled")
    assert ok(service.get("/stats/"))["total_hits"] == 0


def test_make_run_opens_the_load_generator_unless_told_otherwise(env: Environment) -> None:
    from chalicelib.process import devhooks, settings

    env.set("LOAD_TEST_ACCESS", "off")  # recorded, so the variable the hook sets is removed afterwards
    env.unset("LOAD_TEST_ACCESS")
    env.set("ADMIN_TOKEN", ADMIN_TOKEN)
    devhooks.on_devserver_start()
    assert settings.get().load_test_access == "open"
    env.set("LOAD_TEST_ACCESS", "admin")
    devhooks.on_devserver_start()
    assert settings.get().load_test_access == "admin"


def test_the_load_generators_policy_is_declared_on_its_route() -> None:
    entry = app.routes["/test/{n}"]["POST"]
    assert auth.policy_of(entry.view_function) is hits_api.load_test_access


# --- writes, where the stage's WRITE_ACCESS is `token` ---------------------------------------------------------

WRITE_TOKEN = "write-token-0123456789abcdefghijklmnopq"
WRITER = {"Authorization": f"Bearer {WRITE_TOKEN}"}


class Write:
    """How to call one write route once the fixture's stream, window and values exist."""

    def __init__(self, method: str, path: str, body: Any) -> None:
        self.method, self.path, self.body = method, path, body


WRITES: dict[tuple[str, str], Write] = {
    ("POST", "/streams/{stream}/values"): Write("POST", "/streams/s/values", {"value": 5}),
    ("POST", "/streams/{stream}/reset"): Write("POST", "/streams/s/reset", {}),
    ("POST", "/metric/{key}"): Write("POST", "/metric/m", {"value": 5}),
    ("PUT", "/averages/{key}"): Write("PUT", "/averages/w", {"size": 4}),
    ("POST", "/averages/{key}"): Write("POST", "/averages/w", {"value": 5}),
    ("POST", "/events"): Write("POST", "/events", {"events": [{"type": "metric", "key": "e", "value": 5}]}),
    ("DELETE", "/streams/{stream}"): Write("DELETE", "/streams/s", None),
    ("DELETE", "/averages/{key}"): Write("DELETE", "/averages/w", None),
    ("DELETE", "/metric/{key}"): Write("DELETE", "/metric/m", None),
}


@pytest.fixture
def writes(service: Api, events_stream: EventsStream, env: Environment) -> Api:
    """Data for every write route to change, made while writes are open; then writes need the write token."""
    ok(service.post("/streams/s/values", {"values": [1, 2]}))
    ok(service.post("/metric/m", {"value": 1}))
    ok(service.put("/averages/w", {"size": 3}))
    env.set("WRITE_ACCESS", "token")
    env.set("WRITE_TOKEN", WRITE_TOKEN)
    return service


def state(api: Api, stream: EventsStream) -> Any:
    """Everything a write route can change."""
    return (
        ok(api.get("/streams/s")),
        ok(api.get("/streams/s/sessions")),
        ok(api.get("/metric/m/sum?window=3600")),
        api.get("/averages/w").body,  # a deleted window's 404 too
        len(stream.records()),
    )


@pytest.mark.parametrize("route", sorted(WRITES))
def test_a_write_needs_the_write_or_admin_token_and_a_refusal_changes_nothing(
    writes: Api, events_stream: EventsStream, route: tuple[str, str]
) -> None:
    case = WRITES[route]
    before = state(writes, events_stream)
    _, respondent_token = start(writes)
    for headers in (
        {},
        {"Authorization": "Bearer " + "w" * 43},
        {"Authorization": f"Bearer {respondent_token}"},
        {"X-Response-Token": respondent_token},
        {"Authorization": WRITE_TOKEN},  # not a bearer header
        {"Idempotency-Key": "k-refused"},
    ):
        unauthorized(writes.request(case.method, case.path, case.body, headers=headers))
    assert state(writes, events_stream) == before
    for credential in (WRITER, ADMIN):
        response = writes.request(case.method, case.path, case.body, headers=credential)
        assert 200 <= response.status_code < 300, response.body
        if route == ("POST", "/streams/{stream}/reset"):  # a second reset has nothing to close
            break
    assert state(writes, events_stream) != before


def test_a_keyed_delete_needs_its_credential_and_is_replayed_to_it(writes: Api) -> None:
    key = {"Idempotency-Key": "d-1"}
    unauthorized(writes.delete("/streams/s", headers=key))
    assert ok(writes.get("/streams/s"))["count"] == 2
    first = writes.delete("/streams/s", headers={**WRITER, **key})
    assert first.status_code == 204 and ok(writes.get("/streams/s"))["count"] == 0
    ok(writes.post("/streams/s/values", {"value": 7}, headers=WRITER))
    for headers in (key, {**key, "Authorization": "Bearer nope"}):
        unauthorized(writes.delete("/streams/s", headers=headers))
    again = writes.delete("/streams/s", headers={**WRITER, **key})
    assert again.status_code == 204 and again.headers.get("Idempotent-Replayed") == "true"
    assert ok(writes.get("/streams/s"))["count"] == 1  # the replay deleted nothing


def test_a_replayed_write_needs_the_credential_that_made_it(writes: Api, events_stream: EventsStream) -> None:
    key = {"Idempotency-Key": "w-1"}
    first = writes.post("/streams/s/values", {"value": 7}, headers={**WRITER, **key})
    assert ok(first)["count"] == 3
    # No credential, a wrong one: 401 before any replay; nothing applied.
    for headers in (key, {**key, "Authorization": "Bearer nope"}):
        response = writes.post("/streams/s/values", {"value": 7}, headers=headers)
        unauthorized(response)
        assert "Idempotent-Replayed" not in response.headers
    again = writes.post("/streams/s/values", {"value": 7}, headers={**WRITER, **key})
    assert again.headers.get("Idempotent-Replayed") == "true" and ok(again) == ok(first)
    assert ok(writes.get("/streams/s"))["count"] == 3


def test_reads_hits_and_the_respondents_routes_stay_public_under_token(writes: Api) -> None:
    assert ok(writes.get("/api/a/page"))["count"] == 1
    for path in ("/streams/s", "/stats/", "/metric/m/sum?window=60", "/averages/w", "/openapi.json", "/health"):
        ok(writes.get(path))
    rid, token = start(writes)
    ok(writes.request("PATCH", f"/survey/responses/{rid}", {"book": "Dune"}, headers=own(token)))


def test_the_document_says_who_may_write_in_this_stage(writes: Api, env: Environment) -> None:
    def security(document: dict[str, Any]) -> Any:
        return document["paths"]["/streams/{stream}/values"]["post"]["security"]

    assert security(ok(writes.get("/openapi.json"))) == [{"writeToken": []}, {"adminToken": []}]
    env.set("WRITE_ACCESS", "open")
    assert security(ok(writes.get("/openapi.json"))) == []
