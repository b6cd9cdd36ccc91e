"""Hostile input is answered inside the contract: a 4xx in the error shape, and nothing stored.

Routes are collected from `app.routes`, so a new route is covered without editing this file.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from app import app
from chalicelib.edge import routing
from tests.conftest import TABLE, Api, Environment, assert_error

# A value for each path parameter; a new parameter name fails `concrete` loudly until it gets one here.
PATH_VALUES = {"stream": "s", "key": "k", "n": "1", "name": "app.js", "path+": "a/b", "response_id": "0"}


def concrete(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def feature_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route a feature registered (not the 404/405/HEAD/OPTIONS fallbacks)."""
    return sorted(
        (method, path)
        for path, entries in app.routes.items()
        for method, entry in entries.items()
        if entry.view_function.__module__ != routing.__name__
    )


BODY_ROUTES = [(m, p) for m, p in feature_routes() if m in ("POST", "PUT", "PATCH")]
GET_ROUTES = [p for m, p in feature_routes() if m == "GET"]
PATHS = sorted({p for _, p in feature_routes()})


@pytest.fixture(autouse=True)
def open_load_generator(env: Environment) -> None:
    """As under `make run`, so its body is checked first (tests/test_authorization.py covers the policy)."""
    env.set("LOAD_TEST_ACCESS", "open")


def table_items(dynamodb: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": TABLE, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=repr))  # Binary: bytes
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def target(api: Api, path: str) -> tuple[str, dict[str, str]]:
    """A URL for the route, and headers, such that its body is the first thing checked."""
    if "{response_id}" in path:
        created = json.loads(api.post("/survey/responses", {}).body)
        return path.replace("{response_id}", created["id"]), {"X-Response-Token": created["token"]}
    return concrete(path), {}


def refused(
    api: Api, dynamodb: Any, method: str, url: str, body: Any, status: int, code: str, **kw: Any
) -> dict[str, Any]:
    """Send the request; it must be refused with this status and code, and leave the table unchanged."""
    before = table_items(dynamodb)
    error = assert_error(api.request(method, url, body, **kw), status, code)
    assert table_items(dynamodb) == before
    return error


# --- nesting ------------------------------------------------------------------

DEEP_BODIES = {
    "objects 5000 deep": '{"a":' * 5000 + "1" + "}" * 5000,
    "arrays 5000 deep": "[" * 5000 + "]" * 5000,
    "value 100 deep": '{"value":' + "[" * 100 + "]" * 100 + "}",
}


def test_every_body_route_is_collected() -> None:
    assert ("POST", "/streams/{stream}/values") in BODY_ROUTES
    assert ("PATCH", "/survey/responses/{response_id}") in BODY_ROUTES
    assert len(BODY_ROUTES) >= 8


@pytest.mark.parametrize("method,path", BODY_ROUTES)
@pytest.mark.parametrize("body", list(DEEP_BODIES.values()), ids=list(DEEP_BODIES))
def test_deep_nesting_is_invalid_json_on_every_body_route(
    api: Api, dynamodb: Any, method: str, path: str, body: str
) -> None:
    url, headers = target(api, path)
    refused(api, dynamodb, method, url, body, 400, "invalid_json", headers=headers)


@pytest.mark.parametrize("method,path", BODY_ROUTES)
def test_a_utf16_body_is_invalid_json_on_every_body_route(api: Api, dynamodb: Any, method: str, path: str) -> None:
    url, headers = target(api, path)
    body = json.dumps({"value": 1, "user": "u", "name": "n", "size": 3}).encode("utf-16")
    refused(api, dynamodb, method, url, body, 400, "invalid_json", headers=headers)


# --- encodings and charsets ---------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'\xef\xbb\xbf{"value": 1}',  # UTF-8 with a BOM
        '{"value": 1}'.encode("utf-16-le"),
        '{"value": 1}'.encode("utf-32"),
        b'{"value": 1, "user": "\xff"}',  # not UTF-8
        b'{"value": 1, "user": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8
    ],
)
def test_only_utf8_without_bom_is_accepted(api: Api, dynamodb: Any, raw: bytes) -> None:
    refused(api, dynamodb, "POST", "/streams/s/values", raw, 400, "invalid_json")


@pytest.mark.parametrize("charset", ["utf-16", "latin-1", '"iso-8859-1"'])
def test_a_charset_other_than_utf8_is_415(api: Api, dynamodb: Any, charset: str) -> None:
    headers = {"Content-Type": f"application/json; charset={charset}"}
    refused(api, dynamodb, "POST", "/streams/s/values", {"value": 1}, 415, "unsupported_media_type", headers=headers)


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"'])
def test_a_utf8_charset_is_accepted(api: Api, charset: str) -> None:
    headers = {"Content-Type": f"application/json; charset={charset}"}
    assert api.post("/streams/s/values", {"value": 1}, headers=headers).status_code == 200


# --- numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url,raw,field",
    [
        ("/streams/s/values", '{"value": 1e-400}', "value"),
        ("/streams/s/values", '{"value": -2.5e-330}', "value"),
        ("/streams/s/values", '{"values": [1, 1e-400]}', "values[1]"),
        ("/streams/s/values", '{"value": 1e400}', "value"),
        ("/streams/s/values", '{"value": ' + "9" * 5000 + "}", "value"),
        ("/streams/s/values", '{"value": ' + "9" * 4300 + "}", "value"),  # converts to an int, not to a float
        ("/metric/k", '{"value": -1' + "0" * 309 + "}", "value"),
        ("/metric/k", '{"value": 1e-400}', "value"),
        ("/metric/k", '{"value": -' + "1" * 4301 + "}", "value"),
        ("/survey/responses", '{"age": ' + "3" * 5000 + "}", "age"),
    ],
)
def test_numbers_that_do_not_survive_parsing_are_refused(
    api: Api, dynamodb: Any, url: str, raw: str, field: str
) -> None:
    error = refused(api, dynamodb, "POST", url, raw, 400, "invalid_input")
    assert error["field"] == field and error["message"] == f"{field} is a number too small or too large to represent"


@pytest.mark.parametrize(
    "url,raw",
    [
        ("/streams/s/values", '{"value": 1, "value": 2}'),
        ("/streams/s/values", '{"values": [1], "user": "a", "user": "b"}'),
        ("/events", '{"events": [{"type": "hit", "path": "/api/a", "path": "/api/b"}]}'),
        ("/survey/responses", '{"name": "A", "name": "B"}'),
    ],
)
def test_a_key_repeated_in_one_object_is_refused(api: Api, dynamodb: Any, url: str, raw: str) -> None:
    # Parsers disagree on which of two values counts; the service takes neither.
    error = refused(api, dynamodb, "POST", url, raw, 400, "invalid_json")
    assert "repeats the key" in error["message"]


def test_zero_written_any_way_is_still_zero(api: Api) -> None:
    snap = json.loads(api.post("/streams/z/values", '{"values": [0e-400, 0.000e999, -0.0, 0]}').body)
    assert snap["count"] == 4 and snap["sum"] == 0


def test_an_average_window_refuses_an_underflowing_value(api: Api, dynamodb: Any) -> None:
    assert api.put("/averages/w", {"size": 3}).status_code == 200
    refused(api, dynamodb, "POST", "/averages/w", '{"value": 1e-400}', 400, "invalid_input")


# --- text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,field",
    [
        ('{"value": 1, "user": "a\\ud800"}', "user"),  # a lone surrogate
        ('{"value": 1, "user": "\\udc00b"}', "user"),
        ('{"value": 1, "user": "a\\u0000b"}', "user"),  # NUL
        ('{"value": 1, "user": "a\\nb"}', "user"),  # a line break in a one-line field
        ('{"value": 1, "user": "a\\u0085b"}', "user"),  # a C1 control
        ('{"value": 1, "user": "a\\u007fb"}', "user"),
    ],
)
def test_invalid_or_control_text_in_a_stream_user_is_refused(api: Api, dynamodb: Any, raw: str, field: str) -> None:
    assert refused(api, dynamodb, "POST", "/streams/s/values", raw, 400, "invalid_input")["field"] == field


def test_invalid_unicode_in_a_key_is_refused(api: Api, dynamodb: Any) -> None:
    refused(api, dynamodb, "POST", "/streams/s/values", '{"value": 1, "\\ud800": 2}', 400, "invalid_input")


@pytest.mark.parametrize(
    "answers,field",
    [
        ({"name": "Ann\u0000"}, "name"),
        ({"name": "Ann\nLee"}, "name"),
        ({"email": "a\u0007@example.com"}, "email"),
        ({"book": "Dune\u001b[31m"}, "book"),
        ({"about": "ring\u0007"}, "about"),
        ({"about": "old mac\rline"}, "about"),
        ({"address": "1 Road\u000bTown"}, "address"),
        ({"about": "surrogate \ud800"}, "about"),
    ],
)
def test_survey_text_refuses_control_characters_and_invalid_unicode(
    api: Api, dynamodb: Any, answers: dict[str, str], field: str
) -> None:
    raw = json.dumps(answers)  # json.dumps escapes a lone surrogate as \ud800, as a hostile client would
    error = refused(api, dynamodb, "POST", "/survey/responses", raw, 400, "invalid_input")
    assert error["field"] == field


def test_survey_multiline_fields_keep_line_breaks_and_tabs(api: Api) -> None:
    answers = {"about": "line one\nline two\r\n\tindented", "address": "1 Road\nTown", "name": "Zoë 😀"}
    response = api.post("/survey/responses", answers)
    assert response.status_code == 201, response.body
    stored = json.loads(response.body)["answers"]
    assert {k: stored[k] for k in answers} == answers


def test_noncharacters_are_text_and_round_trip(api: Api) -> None:
    # Unicode noncharacters are scalar values (Corrigendum #9): the document's "string" admits them, so do we.
    answers = {"book": "Dune \uffff", "name": "Ann \ufdd0 \U0010fffe"}
    response = api.post("/survey/responses", answers)
    assert response.status_code == 201, response.body
    stored = json.loads(response.body)["answers"]
    assert {k: stored[k] for k in answers} == answers


# --- cursors ------------------------------------------------------------------


def page(api: Api, url: str) -> dict[str, Any]:
    response = api.get(url)
    assert response.status_code == 200, response.body
    body: dict[str, Any] = json.loads(response.body)
    return body


def forge(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


@pytest.fixture
def two_streams(api: Api) -> tuple[str, str]:
    """A values cursor of stream a and of stream b (each stream has 3 values, pages of 1)."""
    for name in ("a", "b"):
        assert api.post(f"/streams/{name}/values", {"values": [1, 2, 3]}).status_code == 200
    return page(api, "/streams/a/values?limit=1")["cursor"], page(api, "/streams/b/values?limit=1")["cursor"]


def test_cursors_are_short_url_safe_and_page_on(api: Api, two_streams: tuple[str, str]) -> None:
    cursor_a, _ = two_streams
    assert re.fullmatch(r"[A-Za-z0-9_.-]{20,120}", cursor_a)
    assert len(page(api, f"/streams/a/values?limit=1&cursor={cursor_a}")["values"]) == 1


@pytest.mark.parametrize(
    "cursor",
    [
        forge({"offset": 0, "sk": "A"}),
        forge({"offset": 0, "sk": "V#" + "x" * 2000}),
        forge({"offset": 0, "sk": "A"}) + ".AAAAAAAAAAAAAAAAAAAAAA",
        "garbage!",
        "a.b.c",
        "x" * 5000,
        "%00",
    ],
)
@pytest.mark.parametrize("route", ["values", "sessions"])
def test_forged_cursors_are_invalid_cursor(api: Api, dynamodb: Any, cursor: str, route: str) -> None:
    assert api.post("/streams/s/values", {"value": 1}).status_code == 200
    before = table_items(dynamodb)
    error = assert_error(api.get(f"/streams/s/{route}?cursor={cursor}"), 400, "invalid_cursor")
    assert error["field"] == "cursor"
    assert table_items(dynamodb) == before


def test_an_edited_real_cursor_is_refused(api: Api, two_streams: tuple[str, str]) -> None:
    cursor_a, _ = two_streams
    payload, mac = cursor_a.split(".")
    position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(position) == {"sk", "offset"}  # the test edits what it thinks it edits
    for edited in ({**position, "offset": -1}, {**position, "offset": position["offset"] + 1}):
        tampered = forge(edited) + "." + mac
        assert_error(api.get(f"/streams/a/values?cursor={tampered}"), 400, "invalid_cursor")


def test_a_cursor_pages_only_what_it_was_issued_for(api: Api, two_streams: tuple[str, str]) -> None:
    cursor_a, cursor_b = two_streams
    assert_error(api.get(f"/streams/b/values?cursor={cursor_a}"), 400, "invalid_cursor")
    assert_error(api.get(f"/streams/a/values?cursor={cursor_b}"), 400, "invalid_cursor")
    assert_error(api.get(f"/streams/a/sessions?cursor={cursor_a}"), 400, "invalid_cursor")
    assert_error(api.get(f"/stats/?cursor={cursor_a}"), 400, "invalid_cursor")


def test_a_cursor_signed_under_another_secret_is_refused(api: Api, env: Any, two_streams: tuple[str, str]) -> None:
    cursor_a, _ = two_streams
    env.set("CURSOR_SECRET", "another-stage-secret")
    assert_error(api.get(f"/streams/a/values?cursor={cursor_a}"), 400, "invalid_cursor")


# --- 405, HEAD, OPTIONS ---------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_every_405_carries_allow_naming_exactly_the_methods_that_answer(api: Api, path: str) -> None:
    url = concrete(path)
    answers = {method: api.request(method, url) for method in routing.HTTP_METHODS}
    allowed = {method for method, response in answers.items() if response.status_code != 405}
    refused_methods = set(answers) - allowed
    assert refused_methods, "every path refuses some method"
    for method in refused_methods:
        if method == "HEAD":  # the same answer without its body
            assert answers[method].status_code == 405 and answers[method].body == b""
        else:
            assert_error(answers[method], 405, "method_not_allowed")
        assert set(answers[method].headers["Allow"].split(", ")) == allowed
    options = answers["OPTIONS"]
    assert options.status_code == 204 and options.body == b""
    assert set(options.headers["Allow"].split(", ")) == allowed


@pytest.mark.parametrize(
    "path", [p for p in GET_ROUTES if not routing.is_state_changing_get(app.routes[p]["GET"].view_function)]
)
def test_head_answers_as_get_without_a_body(api: Api, dynamodb: Any, path: str) -> None:
    url = concrete(path)
    get = api.get(url)
    before = table_items(dynamodb)
    head = api.request("HEAD", url)
    assert head.status_code == get.status_code
    assert head.body == b""
    assert head.headers.get("Content-Type") == get.headers.get("Content-Type")
    assert table_items(dynamodb) == before


@pytest.mark.parametrize("url", ["/api", "/api/a/b", "/count.gif?p=/a"])
def test_head_on_a_hit_counter_is_405_and_counts_nothing(api: Api, url: str) -> None:
    response = api.request("HEAD", url)
    assert response.status_code == 405 and response.body == b""
    assert response.headers["Allow"] == "GET, OPTIONS"
    assert json.loads(api.get("/stats/").body)["total_hits"] == 0


def test_head_of_an_error_is_the_error_status_without_a_body(api: Api) -> None:
    head = api.request("HEAD", "/streams/bad!name")
    assert head.status_code == 400 and head.body == b""


@pytest.mark.parametrize("method,path", BODY_ROUTES)
def test_a_body_over_the_limit_is_413_on_every_body_route(api: Api, dynamodb: Any, method: str, path: str) -> None:
    from chalicelib.edge import web

    url, headers = target(api, path)
    body = json.dumps({"value": 1, "user": "u" * web.MAX_BODY_BYTES})
    refused(api, dynamodb, method, url, body, 413, "body_too_large", headers=headers)


def test_a_body_that_is_not_json_is_415_naming_the_content_type(api: Api, dynamodb: Any) -> None:
    error = refused(
        api,
        dynamodb,
        "POST",
        "/streams/s/values",
        "value=1",
        415,
        "unsupported_media_type",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert error["field"] == "Content-Type"
