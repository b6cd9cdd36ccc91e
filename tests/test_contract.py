"""The OpenAPI contract (chalicelib/edge/contract.py; the document: chalicelib/edge/openapi.py): complete, valid,
committed, and true of real answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from chalicelib.edge import auth, contract, openapi
from tests.conftest import Api
from tests.test_survey_api import ADMIN, FULL, survey  # noqa: F401 (fixture)

COMMITTED = Path(__file__).resolve().parent.parent / "openapi.json"
REGENERATE = "regenerate it with `make openapi` (.venv/bin/python -m devtools.openapi > openapi.json)"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def app() -> Any:
    from app import app

    return app


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    return openapi.document(app)


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = document["components"][section][name]
    return node


def test_the_committed_document_is_the_generated_one(app: Any) -> None:
    assert COMMITTED.exists(), f"openapi.json is missing: {REGENERATE}"
    assert COMMITTED.read_text(encoding="utf-8") == openapi.render(app), f"openapi.json is stale: {REGENERATE}"


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_is_in_the_document_and_every_path_in_it_is_a_route(app: Any, document: dict[str, Any]) -> None:
    documented = {(path, method.upper()) for path, method, _ in operations(document)}
    routes = {(openapi.openapi_path(path), method) for path, method in openapi.documented_routes(app)}
    assert documented == routes
    # The rule for the rest: HEAD, OPTIONS, the generated 405s and the fallback 404 are service-wide, described once.
    left_out = {(path, method) for path, entries in app.routes.items() for method in entries} - set(
        openapi.documented_routes(app)
    )
    for path, method in left_out:
        view = app.routes[path][method]
        assert method in ("HEAD", "OPTIONS") or path == "/{proxy+}" or view.view_name.startswith("method_not_allowed")
    assert ("/{proxy+}", "GET") in left_out and ("/stats", "HEAD") in left_out and ("/stats", "OPTIONS") in left_out
    description = document["info"]["description"]
    assert "OPTIONS" in description and "HEAD" in description and "404" in description and "405" in description


def test_every_feature_view_declares_its_operation(app: Any) -> None:
    for (path, method), view in openapi.documented_routes(app).items():
        assert contract.operation_of(view) is not None, f"{method} {path}"


def test_greedy_paths_are_documented_as_string_parameters(document: dict[str, Any]) -> None:
    assert "/api/{path+}" not in document["paths"]
    operation = document["paths"]["/api/{path}"]["get"]
    (parameter,) = operation["parameters"]
    assert parameter["in"] == "path" and parameter["schema"]["type"] == "string"
    assert "greedy" in operation["description"]


def test_path_parameters_match_the_templates(document: dict[str, Any]) -> None:
    for path, _, operation in operations(document):
        declared = [p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"]
        assert declared == re.findall(r"\{([^}]+)\}", path), path


def test_links_name_real_operations_parameters_and_answer_fields(document: dict[str, Any]) -> None:
    """Each link (for clients and the stateful schemathesis test) reaches its target's parameters from a field the
    source's answer has, or from the source's own path parameter."""
    by_id = {operation["operationId"]: operation for _, _, operation in operations(document)}
    links = 0
    for path, _, operation in operations(document):
        for response in operation["responses"].values():
            properties = resolve(document, response.get("content", {}).get("application/json", {}).get("schema", {}))
            for link in response.get("links", {}).values():
                links += 1
                target = by_id[link["operationId"]]
                target_path = {p["name"] for p in target.get("parameters", ()) if p["in"] == "path"}
                assert {name for name in link["parameters"] if not name.startswith("header.")} == target_path, link
                for expression in link["parameters"].values():
                    if expression.startswith("$response.body#/"):
                        assert expression.removeprefix("$response.body#/") in properties["properties"], expression
                    else:
                        assert expression.removeprefix("$request.path.") in re.findall(r"\{(\w+)\}", path), expression
    assert links == 10


def test_a_link_to_no_operation_is_refused() -> None:
    with pytest.raises(TypeError, match="names no operation"):
        openapi._check_links(
            {"/a": {"post": {"operationId": "a", "responses": {"200": {"links": {"b": {"operationId": "b"}}}}}}}
        )


def test_every_error_answer_is_the_error_shape(document: dict[str, Any]) -> None:
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, method, operation in operations(document):
        statuses = {int(s) for s in operation["responses"]}
        assert {405, 503} <= statuses, f"{method} {path}"
        if "requestBody" in operation:
            assert {400, 415} <= statuses, f"{method} {path}"
        for status in statuses:
            response = resolve(document, operation["responses"][str(status)])
            if status >= 400:
                assert response["content"]["application/json"]["schema"] == error_ref, f"{method} {path} {status}"
        assert "Retry-After" in resolve(document, operation["responses"]["503"])["headers"]
    error = document["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"code", "message"} and "field" in error["properties"]


def test_security_follows_each_views_policy(app: Any, document: dict[str, Any]) -> None:
    from chalicelib.hits.api import load_test_access
    from chalicelib.survey.api import creator, respondent

    expected: dict[Any, list[dict[str, list[str]]]] = {
        auth.public: [],
        auth.admin: [{"adminToken": []}],
        respondent: [{"responseToken": []}, {"responseBearer": []}],
        # A deployed stage that says nothing: the load generator needs the admin token, writes the write token.
        load_test_access: [{"adminToken": []}],
        auth.writer: [{"writeToken": []}, {"adminToken": []}],
        creator: [],
    }
    seen = set()
    for (path, method), view in openapi.documented_routes(app).items():
        policy = auth.policy_of(view)
        seen.add(policy)
        operation = document["paths"][openapi.openapi_path(path)][method.lower()]
        assert operation["security"] == expected[policy], f"{method} {path}"
        if operation["security"]:
            assert "401" in operation["responses"], f"{method} {path}"
    assert seen == set(expected)
    assert document["paths"]["/dashboard/data"]["get"]["security"] == [{"adminToken": []}]
    assert "LOAD_TEST_ACCESS" in document["paths"]["/test/{n}"]["post"]["description"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["adminToken"] == {**schemes["adminToken"], "type": "http", "scheme": "bearer"}
    assert schemes["writeToken"] == {**schemes["writeToken"], "type": "http", "scheme": "bearer"}
    assert schemes["responseToken"]["in"] == "header" and schemes["responseToken"]["name"] == "X-Response-Token"


def test_the_documented_bounds_are_the_references(document: dict[str, Any]) -> None:
    """The bounds docs/averages.md, docs/streams.md, docs/hits.md and docs/survey.md give are the document's."""
    schemas = document["components"]["schemas"]
    assert (
        schemas["SizeBody"]["properties"]["size"] | {"minimum": 1, "maximum": 10_000}
        == schemas["SizeBody"]["properties"]["size"]
    )
    assert schemas["SizeBody"]["additionalProperties"] is False
    sessions = {p["name"]: p for p in document["paths"]["/streams/{stream}/sessions"]["get"]["parameters"]}
    assert sessions["limit"]["schema"] | {"minimum": 1, "maximum": 100, "default": 20} == sessions["limit"]["schema"]
    stats = {p["name"]: p for p in document["paths"]["/stats"]["get"]["parameters"]}
    assert stats["limit"]["schema"]["maximum"] == 1000
    dashboard = {p["name"]: p for p in document["paths"]["/dashboard/data"]["get"]["parameters"]}
    assert dashboard["order"]["schema"]["enum"] == ["asc", "desc"]
    assert dashboard["size"]["schema"]["maximum"] == 200


def test_the_service_serves_its_document(api: Api, app: Any, env: Any) -> None:
    env.set("WRITE_ACCESS", "token")  # as a deployed stage that says nothing: the committed document's case
    response = api.get("/openapi.json")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body) == json.loads(openapi.render(app))


# --- the declared answers are the real ones ----------------------------------------------------------------


def declared_model(app: Any, template: str, method: str, status: int) -> type[BaseModel] | None:
    view = app.routes[template][method].view_function
    operation = contract.operation_of(view)
    assert operation is not None
    if status >= 400:
        assert status in operation.errors or status in (400, 401, 405, 409, 415, 422, 503), (template, status)
        return contract.Error
    assert status in operation.responses, (template, method, status)
    model = operation.responses[status]
    return model if isinstance(model, type) else None


def test_real_answers_match_their_declared_models(survey: Api, app: Any) -> None:  # noqa: F811
    api = survey
    token_headers: dict[str, str] = {}
    checked: set[tuple[str, str, int]] = set()

    def call(method: str, template: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        response = api.request(method, path, body, headers=headers)
        model = declared_model(app, template, method, response.status_code)
        if model is not None:
            try:
                model.model_validate_json(response.body)
            except ValidationError as error:
                pytest.fail(f"{method} {path} -> {response.status_code} is not a {model.__name__}: {error}")
        checked.add((method, template, response.status_code))
        return response

    def ok(response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.body
        return json.loads(response.body) if response.body else None

    ok(call("GET", "/streams/{stream}", "/streams/s"))
    ok(call("POST", "/streams/{stream}/values", "/streams/s/values", {"value": 3, "user": "ann"}))
    ok(call("POST", "/streams/{stream}/values", "/streams/s/values", {"values": [1, 2.5, 1e-20]}))
    ok(call("GET", "/streams/{stream}", "/streams/s"))
    ok(call("POST", "/streams/{stream}/reset", "/streams/s/reset", {"user": "ann"}))
    ok(call("GET", "/streams/{stream}/sessions", "/streams/s/sessions?limit=1"))
    audit = ok(call("GET", "/streams/{stream}/values", "/streams/s/values?limit=2"))
    ok(call("GET", "/streams/{stream}/values", f"/streams/s/values?limit=2&cursor={audit['cursor']}"))
    call("POST", "/streams/{stream}/values", "/streams/s/values", {"value": "x"})
    call("POST", "/streams/{stream}/reset", "/streams/empty/reset")

    ok(call("GET", "/api/{path+}", "/api/one/two"))
    ok(call("GET", "/api", "/api"))
    ok(call("GET", "/stats", "/stats?limit=1"))
    ok(call("GET", "/stats", "/stats?day=2026-01-02"))
    call("GET", "/api/{path+}", "/api/" + "x" * 1100)
    ok(call("POST", "/test/{n}", "/test/3", headers=ADMIN))

    ok(call("POST", "/metric/{key}", "/metric/k", {"value": 2.5}))
    ok(call("GET", "/metric/{key}/sum", "/metric/k/sum?window=60"))
    ok(call("GET", "/metric/{key}/minutes", "/metric/k/minutes?window=120"))

    call("POST", "/averages/{key}", "/averages/w", {"value": 1})
    ok(call("PUT", "/averages/{key}", "/averages/w", {"size": 2}))
    ok(call("GET", "/averages/{key}", "/averages/w"))
    for value in (1, 2.5, 3):
        ok(call("POST", "/averages/{key}", "/averages/w", {"value": value}))
    ok(call("GET", "/averages/{key}", "/averages/w"))

    started = ok(call("POST", "/survey/responses", "/survey/responses", {"name": "Ann"}), 201)
    rid = started["id"]
    token_headers = {"X-Response-Token": started["token"]}
    ok(call("GET", "/survey/responses/{response_id}", f"/survey/responses/{rid}", headers=token_headers))
    call("GET", "/survey/responses/{response_id}", f"/survey/responses/{rid}")
    answers = {**FULL, "gender": "female", "colours": ["red", "blue"], "step": 4, "complete": True}
    ok(call("PATCH", "/survey/responses/{response_id}", f"/survey/responses/{rid}", answers, token_headers))
    call("PATCH", "/survey/responses/{response_id}", f"/survey/responses/{rid}", {"age": 40}, token_headers)
    own = {"X-Response-Token": "c" * 43, "Idempotency-Key": "start-1"}
    ok(call("POST", "/survey/responses", "/survey/responses", {}, own), 201)
    ok(call("GET", "/dashboard/data", "/dashboard/data?sort=age&order=asc", headers=ADMIN))
    call("GET", "/dashboard/data", "/dashboard/data")
    ok(call("DELETE", "/dashboard/responses/{response_id}", f"/dashboard/responses/{rid}", headers=ADMIN))

    ok(call("GET", "/health", "/health"))
    ok(call("GET", "/openapi.json", "/openapi.json"))

    assert {status for *_, status in checked} >= {200, 201, 400, 401, 404, 409, 414}
    assert {template for _, template, _ in checked} >= {
        "/streams/{stream}/values",
        "/averages/{key}",
        "/metric/{key}",
        "/survey/responses/{response_id}",
        "/dashboard/data",
    }


def test_a_model_checked_body_names_the_field_at_fault(api: Api) -> None:
    from tests.conftest import assert_error

    assert assert_error(api.put("/averages/w", {"size": 2, "colour": "red"}), 400, "invalid_input")["field"] == "colour"
    assert assert_error(api.put("/averages/w", {"size": True}), 400, "invalid_input")["field"] == "size"
    assert assert_error(api.post("/metric/k", {}), 400, "invalid_input")["field"] == "value"
    error = assert_error(api.post("/streams/s/values", {"values": [1, "2"]}), 400, "invalid_input")
    assert error["field"] == "values[1]"
    error = assert_error(api.post("/streams/s/values", {"value": 1e-60}), 400, "invalid_input")
    assert error["field"] == "value" and "1e-50" in error["message"]
    error = assert_error(api.post("/averages/w", {"value": 10**400}), 400, "invalid_input")
    assert error["field"] == "value"
