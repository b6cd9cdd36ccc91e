"""Schemathesis over every operation of the OpenAPI document, over real HTTP.

Chalice is neither WSGI nor ASGI, so the app runs in Chalice's LocalDevServer in a thread (tests/test_browser.py's
`base_url` fixture, on the test's table) and schemathesis reads the committed openapi.json (tests/test_contract.py
proves it is what the server serves). Each operation is its own test item with EXAMPLES generated cases
(derandomized, so a run is repeatable), and every answer must pass schemathesis' default checks, all of them: no 5xx,
a documented status, content type, headers and body, a request the document allows is accepted
(positive_data_acceptance) and one it forbids is refused (negative_data_rejection), auth is not ignored, other
methods get 405. By design, a few answers are exempt from one check each (`exempt_checks`): refusals that depend
on what no schema of the request can say (a cursor the service did not issue, a rule between two headers, answers
stored by earlier requests) from positive_data_acceptance, and a respondent's wrong token, which gets the same 404 as
an unknown id, from ignored_auth.

`POST /test/{n}` is excluded: it is the load generator (up to 10,000 writes per call); its contract is covered by
tests/test_hits_api.py. The server runs as a deployed stage does, with writes needing the write token (the committed
document says so), and write operations get it; admin operations get the admin token; an operation on one survey response gets a response
created for that case (its id in the path, its token in X-Response-Token), and reading or adding to a moving
average finds the generated key's average created first, so fuzzing reaches past 401/404.

The stateful test chains operations along the document's links (a survey response created, then read, answered
or deleted with its own id and token; values posted to a stream, then its figures, sessions and values read; a
moving average created, then appended to and read; a sum posted, then read): SCENARIOS derandomized scenarios of
at most STEPS calls each, every answer under the same default checks, which include the stateful ones (a deleted
resource is gone; a created one can be read).

A generated Idempotency-Key that the document allows is replaced by a fresh one: hypothesis draws the same few keys
again and again, and a key reused with another body is 422 by design (what a client sent earlier is no schema's to
say); keys the document forbids are sent as generated.
"""

from __future__ import annotations

import re
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.conftest import Environment, EventsStream
from tests.test_authorization import WRITE_TOKEN, WRITER
from tests.test_browser import base_url  # noqa: F401 (fixture)
from tests.test_survey_api import ADMIN, survey  # noqa: F401 (fixture)

EXAMPLES = 12
CLIENT_TIMEOUT = 30  # seconds; a bound for detecting a hung request, not a measured time
SCENARIOS = 25
STEPS = 6
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # as the document's pattern says


DOCUMENT = Path(__file__).resolve().parent.parent / "openapi.json"
# Loaded at import (not through schemathesis.pytest.from_fixture, whose subtests need pytest's private
# Function._nodeid, gone in pytest 9), so each operation is a test item with its own server and table.
schema = schemathesis.openapi.from_path(str(DOCUMENT)).exclude(method="POST", path="/test/{n}")
# Once, on DynamoDB Local (which found a 5xx moto let through): the coverage phase sends every boundary case the
# document defines, which makes this the suite's longest file.
pytestmark = pytest.mark.heavy


def security_schemes(case: Any) -> set[str]:
    requirements = case.operation.definition.raw.get("security") or []
    return {name for requirement in requirements for name in requirement}


def new_response(server: str) -> tuple[str, str]:
    created = requests.post(f"{server}/survey/responses", json={}, timeout=CLIENT_TIMEOUT)
    assert created.status_code == 201, created.text
    body = created.json()
    return body["id"], body["token"]


def seed_average(case: Any, server: str) -> None:
    """Reading or adding to a moving average needs one: create the generated key's (an invalid key just gets 400)."""
    if case.path == "/averages/{key}" and case.method != "PUT":
        key = (case.path_parameters or {}).get("key", "")
        url = f"{server}/averages/{urllib.parse.quote(str(key), safe='')}"
        assert requests.put(url, json={"size": 3}, headers=WRITER, timeout=CLIENT_TIMEOUT).status_code < 500


@pytest.fixture
def deployed_access(env: Environment) -> None:
    """Writes need the write token, as in a deployed stage that says nothing (the committed document's case)."""
    env.set("WRITE_ACCESS", "token")
    env.set("WRITE_TOKEN", WRITE_TOKEN)


def left_out_on_purpose(case: Any) -> str | None:
    """The header a coverage case leaves out to see it refused (e.g. `Authorization`), lower-cased, if any."""
    data = case.meta.phase.data if case.meta is not None else None
    if (
        isinstance(data, CoveragePhaseData)
        and data.scenario == CoverageScenario.MISSING_PARAMETER
        and data.parameter_location == ParameterLocation.HEADER
        and data.parameter
    ):
        return str(data.parameter).lower()
    return None


def authorize(case: Any, server: str) -> None:
    """The credentials the operation declares (the write token, the admin token, or a fresh response's own token
    and id), except one the case leaves out on purpose."""
    schemes = security_schemes(case)
    credential: dict[str, str] = {}
    if "writeToken" in schemes:
        credential = WRITER
    elif "adminToken" in schemes:
        credential = ADMIN
    if "response_id" in (case.path_parameters or {}):
        response_id, token = new_response(server)
        case.path_parameters = {**case.path_parameters, "response_id": response_id}
        if "responseToken" in schemes:
            credential = {"X-Response-Token": token}
    missing = left_out_on_purpose(case)
    case.headers = {
        **(case.headers or {}),
        **{name: value for name, value in credential.items() if name.lower() != missing},
    }


def distinct_idempotency_key(case: Any) -> None:
    """A fresh key for each case that sends one the document allows (see the module's docstring)."""
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        case.headers = {**case.headers, "Idempotency-Key": uuid.uuid4().hex}


# Refusals no schema can describe, each exempt from positive_data_acceptance for that answer alone:
UNDESCRIBABLE = {
    # Any string is a cursor by the schema; only the service knows which ones it signed.
    "invalid_cursor",
    # A start with an Idempotency-Key needs the client's own X-Response-Token: OpenAPI has no rule between headers.
    "response_token_required",
    # `complete: true` needs answers that may have been stored by earlier requests: the request alone cannot say.
    "incomplete_response",
    # A range's bounds against each other and against the clock (what is still kept, a metric series' 1,500
    # points): /stats/series, /metric/{key}/series. Rules between parameters, and with now.
    "invalid_range",
}


def exempt_checks(case: Any, response: Any) -> list[Any]:
    """The checks this answer is exempt from, by design (the reasons are in UNDESCRIBABLE and below)."""
    exempt: list[Any] = []
    if response.status_code == 400 and response.json()["error"]["code"] in UNDESCRIBABLE:
        exempt.append(positive_data_acceptance)
    if "responseToken" in security_schemes(case):
        # A wrong respondent token gets the same 404 as an unknown id, so that a 401 never tells that a response
        # exists (docs/survey.md); ignored_auth wants 401 for it. No token at all is 401 (tests/test_authorization.py).
        exempt.append(ignored_auth)
    return exempt


def call_and_validate(case: Any, server: str) -> None:
    transport = {"base_url": server, "timeout": CLIENT_TIMEOUT}
    response = case.call(**transport)
    case.validate_response(response, excluded_checks=exempt_checks(case, response), transport_kwargs=transport)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_document(
    case: Any,
    base_url: str,  # noqa: F811
    survey: Any,  # noqa: F811
    events_stream: EventsStream,  # after `survey` (its `api`): POST /events puts records on it
    deployed_access: None,
) -> None:
    authorize(case, base_url)
    seed_average(case, base_url)
    distinct_idempotency_key(case)
    call_and_validate(case, base_url)


# Each family of linked operations is its own state machine: schemathesis starts scenarios only at the operations
# it deems likely to succeed with generated input (a POST without path parameters first), so in one machine the
# survey's POST would starve the streams' and averages' starting points.
FAMILIES = {
    "survey": r"^/(survey|dashboard)/responses",
    "streams": r"^/streams/",
    "averages": r"^/averages/",
    "metrics": r"^/metric/",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_linked_operations_conform_to_the_document(
    family: str,
    base_url: str,  # noqa: F811
    survey: Any,  # noqa: F811
    deployed_access: None,
) -> None:
    """Scenarios along the document's links, against the same server and checks (see the module's docstring)."""

    class Workflows(schema.include(path_regex=FAMILIES[family]).as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            schemes = security_schemes(case)
            if "writeToken" in schemes:
                case.headers = {**(case.headers or {}), **WRITER}
            elif "adminToken" in schemes:
                case.headers = {**(case.headers or {}), **ADMIN}
            distinct_idempotency_key(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url, "timeout": CLIENT_TIMEOUT}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=exempt_checks(case, response),
                transport_kwargs=kwargs or None,
                recorder=getattr(self, "recorder", None),  # the stateful checks look up earlier steps in it
            )

    Workflows.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
