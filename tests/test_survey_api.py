"""The survey and dashboard API over HTTP, on either backend."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.survey import rules
from tests.conftest import TABLE, Api, Environment, assert_error, ok, partition_items

ADMIN_TOKEN = "test-admin-token-0123456789abcdefghij"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FULL = {"name": "Ann Lee", "email": "ann@example.com", "age": 34, "about": "I like numbers."}


@pytest.fixture
def survey(api: Api, env: Environment) -> Api:
    env.set("ADMIN_TOKEN", ADMIN_TOKEN)
    return api


def start(api: Api, body: dict[str, Any] | None = None) -> tuple[str, dict[str, str]]:
    created = ok(api.post("/survey/responses", body or {}), 201)
    return created["id"], {"X-Response-Token": created["token"]}


def patch(api: Api, rid: str, body: Any, headers: dict[str, str]) -> Any:
    return api.request("PATCH", f"/survey/responses/{rid}", body, headers=headers)


def fixed_clock(t: float) -> Callable[[], float]:
    return lambda: t


def dashboard(api: Api, query: str = "") -> dict[str, Any]:
    data: dict[str, Any] = ok(api.get("/dashboard/data" + query, headers=ADMIN))
    return data


def stored_items(dynamodb: Any) -> list[dict[str, Any]]:
    return partition_items(dynamodb, keys.SURVEY_RESPONSES_PK)


# --- starting, reading, resuming --------------------------------------------


def test_start_returns_id_and_token_and_stores_only_a_hash(survey: Api, dynamodb: Any) -> None:
    clock.set_source(lambda: 1_800_000_000.0)
    created = ok(survey.post("/survey/responses"), 201)
    assert set(created) >= {"id", "token", "answers", "step", "completed"}
    assert created["step"] == 1 and created["completed"] is False
    assert created["answers"] == dict.fromkeys(rules.FIELDS)
    assert created["created_at"] == "2027-01-15T08:00:00.000Z"
    [item] = stored_items(dynamodb)
    raw = json.dumps(item)
    assert created["token"] not in raw
    assert len(item["token_hash"]["S"]) == 64
    other = ok(survey.post("/survey/responses"), 201)
    assert other["id"] != created["id"] and other["token"] != created["token"]


def test_start_with_answers(survey: Api) -> None:
    created = ok(survey.post("/survey/responses", {"name": " Bo ", "step": 1}), 201)
    assert created["answers"]["name"] == "Bo"


def test_resume_state(survey: Api) -> None:
    rid, token = start(survey)
    ok(patch(survey, rid, {"name": "Ann", "email": "ann@example.com", "step": 2}, token))
    ok(patch(survey, rid, {"age": 40, "step": 3}, token))
    state = ok(survey.get(f"/survey/responses/{rid}", headers=token))
    assert state["step"] == 3 and state["completed"] is False
    assert state["answers"]["name"] == "Ann" and state["answers"]["age"] == 40
    assert state["answers"]["about"] is None
    # Bearer works too.
    bearer = {"Authorization": f"Bearer {token['X-Response-Token']}"}
    assert ok(survey.get(f"/survey/responses/{rid}", headers=bearer)) == state


def test_partial_patch_keeps_other_answers_and_empty_clears(survey: Api) -> None:
    rid, token = start(survey, {"name": "Ann", "address": "1 High St"})
    state = ok(patch(survey, rid, {"email": "a@b.co"}, token))
    assert state["answers"]["name"] == "Ann" and state["answers"]["address"] == "1 High St"
    state = ok(patch(survey, rid, {"address": "", "colours": ["red"]}, token))
    assert state["answers"]["address"] is None and state["answers"]["colours"] == ["red"]
    state = ok(patch(survey, rid, {"colours": [], "age": None}, token))
    assert state["answers"]["colours"] is None


# --- tokens -------------------------------------------------------------------


def test_token_checks_leak_nothing(survey: Api) -> None:
    rid, token = start(survey, {"name": "Secret Name"})
    other_id, other_token = start(survey)
    unknown = "0" * 28
    cases = [
        (survey.get(f"/survey/responses/{rid}"), 401),
        (survey.get(f"/survey/responses/{rid}", headers={"X-Response-Token": "wrong-token-" + "x" * 31}), 404),
        (survey.get(f"/survey/responses/{rid}", headers=other_token), 404),
        (survey.get(f"/survey/responses/{unknown}", headers=token), 404),
        (survey.get("/survey/responses/not-an-id", headers=token), 404),
        (patch(survey, rid, {"name": "Mallory"}, {}), 401),
        (patch(survey, rid, {"name": "Mallory"}, other_token), 404),
        (patch(survey, unknown, {"name": "Mallory"}, token), 404),
    ]
    for response, status in cases:
        assert_error(response, status)
        assert b"Secret Name" not in response.body
    # The wrong-token and unknown-id answers are identical: existence is not revealed.
    assert cases[1][0].body == cases[3][0].body
    assert ok(survey.get(f"/survey/responses/{rid}", headers=token))["answers"]["name"] == "Secret Name"
    assert ok(survey.get(f"/survey/responses/{other_id}", headers=other_token))["answers"]["name"] is None


# --- validation ---------------------------------------------------------------

BAD = [
    ("name", ""),  # allowed (clears) - replaced below
    ("name", "x" * 101),
    ("name", " " * 100 + "x"),  # lengths count what was sent, trimmed whitespace too (the document's maxLength)
    ("name", "a\x85b"),  # a C1 control within
    ("name", 12),
    ("email", "not-an-email"),
    ("email", "ann@example"),
    ("age", 2),
    ("age", 126),
    ("age", 30.5),
    ("age", "30"),
    ("age", True),
    ("about", "a" * 2001),
    ("address", "a" * 301),
    ("gender", "other"),
    ("colours", ["red", "red"]),
    ("colours", ["cyan"]),
    ("colours", "red"),
    ("book", "b" * (rules.BOOK_MAX + 1)),
    ("shoe_size", 42),
    ("step", 5),
    ("step", 0),
]


@pytest.mark.parametrize("field,value", BAD[1:])
def test_each_rule_is_a_400_naming_the_field_and_nothing_is_stored(
    survey: Api, field: str, value: Any, dynamodb: Any
) -> None:
    rid, token = start(survey, {"name": "Ann", "about": "first"})
    version = dashboard(survey)["summary"]["version"]
    error = assert_error(patch(survey, rid, {"about": "second", field: value}, token), 400, "invalid_input")
    assert error["field"] == field
    state = ok(survey.get(f"/survey/responses/{rid}", headers=token))
    assert state["answers"]["name"] == "Ann" and state["answers"]["about"] == "first"  # not even the valid part
    assert dashboard(survey)["summary"]["version"] == version
    # The same on start: nothing created.
    error = assert_error(survey.post("/survey/responses", {field: value}), 400, "invalid_input")
    assert error["field"] == field
    assert len(stored_items(dynamodb)) == 1


def test_body_must_be_a_json_object(survey: Api) -> None:
    rid, token = start(survey)
    assert_error(patch(survey, rid, "[1]", token), 400, "invalid_json")
    assert_error(patch(survey, rid, "{nope", token), 400, "invalid_json")


# --- completion ---------------------------------------------------------------


def test_completion_needs_steps_1_and_2(survey: Api) -> None:
    rid, token = start(survey)
    for field in rules.REQUIRED:
        partial = {k: v for k, v in FULL.items() if k != field}
        ok(patch(survey, rid, {**partial, field: None, "step": 4}, token))
        error = assert_error(patch(survey, rid, {"complete": True}, token), 400, "incomplete_response")
        assert error["field"] == field
    ok(patch(survey, rid, {**FULL, "step": 3}, token))
    assert assert_error(patch(survey, rid, {"complete": True}, token), 400, "incomplete_response")["field"] == "step"
    assert ok(survey.get(f"/survey/responses/{rid}", headers=token))["completed"] is False
    done = ok(patch(survey, rid, {"step": 4, "book": "Dune", "complete": True}, token))
    assert done["completed"] is True and done["completed_at"] is not None and done["answers"]["book"] == "Dune"


def test_completed_response_cannot_change(survey: Api) -> None:
    rid, token = start(survey, {**FULL, "step": 4})
    ok(patch(survey, rid, {"complete": True}, token))
    for change in ({"name": "Changed"}, {"step": 1}, {"complete": True}, {}):
        error = assert_error(patch(survey, rid, change, token), 409, "already_submitted")
        assert error["message"] == "Survey already submitted."
    state = ok(survey.get(f"/survey/responses/{rid}", headers=token))
    assert state["completed"] is True and state["answers"]["name"] == "Ann Lee"
    assert dashboard(survey)["summary"]["completed"] == 1


# --- admin --------------------------------------------------------------------


def test_admin_routes_need_the_admin_token(survey: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    rid, _ = start(survey, {"name": "Private Person"})
    wrong = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    ]
    for headers in wrong:
        for response in (
            survey.get("/dashboard/data", headers=headers),
            survey.delete(f"/dashboard/responses/{rid}", headers=headers),
        ):
            assert_error(response, 401, "unauthorized")
            assert b"Private Person" not in response.body
    assert dashboard(survey)["total"] == 1


def test_no_admin_token_configured_fails_closed(survey: Api, env: Environment) -> None:
    env.unset("ADMIN_TOKEN")
    env.unset("ADMIN_TOKEN_PARAMETER")
    for headers in ({}, ADMIN, {"Authorization": "Bearer "}, {"Authorization": "Bearer " + "\x00" * 43}):
        assert_error(survey.get("/dashboard/data", headers=headers), 401, "unauthorized")


def test_dashboard_never_shows_tokens(survey: Api, dynamodb: Any) -> None:
    tokens = []
    for i in range(3):
        created = ok(survey.post("/survey/responses", {"name": f"P{i}"}), 201)
        tokens.append(created["token"])
    hashes = [item["token_hash"]["S"] for item in stored_items(dynamodb)]
    raw = survey.get("/dashboard/data", headers=ADMIN).body.decode()
    for secret in tokens + hashes:
        assert secret not in raw
    for row in json.loads(raw)["responses"]:
        assert set(row) == {*rules.FIELDS, "id", "completed", "step", "created_at", "updated_at"}


def test_sorting_and_paging(survey: Api) -> None:
    people = [("bob", 40), ("Alice", 30), ("carol", None), ("dave", 25), ("Eve", 40)]
    for i, (name, age) in enumerate(people):
        clock.set_source(fixed_clock(1_800_000_000.0 + i))
        body: dict[str, Any] = {"name": name}
        if age is not None:
            body["age"] = age
        start(survey, body)

    def names(data: dict[str, Any]) -> list[str]:
        return [r["name"] for r in data["responses"]]

    assert names(dashboard(survey, "?sort=name&order=asc")) == ["Alice", "bob", "carol", "dave", "Eve"]
    assert names(dashboard(survey, "?sort=name&order=desc")) == ["Eve", "dave", "carol", "bob", "Alice"]
    # Unanswered last either way; ties by id (creation) in the order asked for.
    assert names(dashboard(survey, "?sort=age&order=asc")) == ["dave", "Alice", "bob", "Eve", "carol"]
    assert names(dashboard(survey, "?sort=age&order=desc")) == ["Eve", "bob", "Alice", "dave", "carol"]
    assert names(dashboard(survey)) == ["Eve", "dave", "carol", "Alice", "bob"]  # default: updated_at desc
    pages = [dashboard(survey, f"?sort=name&order=asc&size=2&page={p}") for p in (1, 2, 3, 4)]
    assert [names(p) for p in pages] == [["Alice", "bob"], ["carol", "dave"], ["Eve"], []]
    assert pages[0]["pages"] == 3 and pages[0]["total"] == 5 and pages[0]["truncated"] is False
    for query, field in (
        ("?sort=token_hash", "sort"),
        ("?order=up", "order"),
        ("?size=0", "size"),
        ("?page=x", "page"),
    ):
        assert assert_error(survey.get("/dashboard/data" + query, headers=ADMIN), 400)["field"] == field


def test_every_response_is_listed_and_cursors_page_through_them(survey: Api) -> None:
    for i in range(7):
        clock.set_source(fixed_clock(1_800_000_000.0 + i))
        start(survey, {"name": f"P{i}", "age": 10 + i % 3} if i % 4 else {})
    for sort in ("name", "age", "created_at", "updated_at"):
        for order in ("asc", "desc"):
            whole = dashboard(survey, f"?sort={sort}&order={order}&size=200")
            assert whole["total"] == whole["window"] == 7 and whole["truncated"] is False
            assert whole["cursor"] is None
            seen: list[str] = []
            query = f"?sort={sort}&order={order}&size=3"
            data = dashboard(survey, query)
            while True:
                seen += [r["id"] for r in data["responses"]]
                if data["cursor"] is None:
                    break
                data = dashboard(survey, f"{query}&cursor={data['cursor']}")
            assert seen == [r["id"] for r in whole["responses"]]
    first = dashboard(survey, "?sort=name&order=asc&size=3")
    # A cursor pages the order it was issued for, and nothing else.
    for query in ("?sort=name&order=desc", "?sort=age&order=asc", "?sort=name&order=asc&cursor=x.y"):
        cursor = "" if "cursor" in query else f"&cursor={first['cursor']}"
        error = assert_error(survey.get(f"/dashboard/data{query}{cursor}", headers=ADMIN), 400, "invalid_cursor")
        assert error["field"] == "cursor"


def test_every_column_sorts(survey: Api) -> None:
    start(survey, {"name": "A", "colours": ["red"], "gender": "male", "book": "Emma"})
    start(survey, {"name": "B", "colours": ["orange", "blue"], "gender": "female"})
    for column in ("name", "email", "age", "about", "address", "gender", "book", "colours", "completed", "step"):
        for order in ("asc", "desc"):
            assert len(dashboard(survey, f"?sort={column}&order={order}")["responses"]) == 2


def test_delete_updates_the_summary(survey: Api) -> None:
    keep, _ = start(survey, {"name": "Keep", "age": 20, "gender": "female", "colours": ["red"]})
    gone, token = start(survey, {**FULL, "age": 60, "gender": "male", "colours": ["red", "blue"], "step": 4})
    ok(patch(survey, gone, {"complete": True}, token))
    before = dashboard(survey)["summary"]
    assert (before["responses"], before["completed"], before["average_age"]) == (2, 1, 40.0)
    assert ok(survey.delete(f"/dashboard/responses/{gone}", headers=ADMIN)) == {"id": gone, "deleted": True}
    after = dashboard(survey)
    summary = after["summary"]
    assert (summary["responses"], summary["completed"], summary["average_age"]) == (1, 0, 20.0)
    assert summary["genders"]["male"] == 0 and summary["gender_ratio"]["female"] == 1.0
    assert summary["top_colours"] == [{"colour": "red", "count": 1}]
    assert [r["id"] for r in after["responses"]] == [keep]
    assert_error(survey.delete(f"/dashboard/responses/{gone}", headers=ADMIN), 404)
    # The person's token no longer opens anything.
    assert_error(survey.get(f"/survey/responses/{gone}", headers=token), 404)


def test_summary_figures_over_http(survey: Api) -> None:
    clock.set_source(lambda: 1_800_000_000.0)
    assert dashboard(survey)["summary"] == {
        "responses": 0,
        "responses_display": "0",
        "completed": 0,
        "average_age": None,
        "genders": dict.fromkeys(rules.GENDERS, 0),
        "gender_ratio": {},
        "top_colours": [],
        "updated_at": None,
        "version": 0,
    }
    start(survey, {"age": 30, "gender": "female", "colours": ["blue", "red"]})
    start(survey, {"age": 31, "gender": "non-binary", "colours": ["blue"]})
    start(survey, {"age": 31, "gender": "female", "colours": ["green", "yellow"]})
    summary = dashboard(survey)["summary"]
    assert summary["average_age"] == 30.7 and summary["responses"] == 3
    assert summary["gender_ratio"] == {"female": 0.667, "male": 0.0, "non-binary": 0.333, "prefer not to say": 0.0}
    assert summary["top_colours"][0] == {"colour": "blue", "count": 2}
    assert [c["colour"] for c in summary["top_colours"]] == ["blue", "green", "red"]
    assert summary["updated_at"] == "2027-01-15T08:00:00.000Z" and summary["version"] == 3


# --- live updates: ETag / 304 ---------------------------------------------------


def test_etag_gives_304_until_an_answer_changes(survey: Api) -> None:
    rid, token = start(survey, {"name": "Ann"})
    first = survey.get("/dashboard/data?sort=name", headers=ADMIN)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag
    same = survey.get("/dashboard/data?sort=name", headers={**ADMIN, "If-None-Match": etag})
    assert same.status_code == 304 and same.body == b"" and same.headers["ETag"] == etag
    # Other query: other ETag (another body).
    other = survey.get("/dashboard/data?sort=age", headers={**ADMIN, "If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    # An answer change (not even a summary figure) changes the version.
    ok(patch(survey, rid, {"name": "Anne"}, token))
    changed = survey.get("/dashboard/data?sort=name", headers={**ADMIN, "If-None-Match": etag})
    assert changed.status_code == 200 and json.loads(changed.body)["responses"][0]["name"] == "Anne"
    # A save that changes nothing writes nothing: still 304.
    etag = changed.headers["ETag"]
    ok(patch(survey, rid, {"name": "Anne"}, token))
    assert survey.get("/dashboard/data?sort=name", headers={**ADMIN, "If-None-Match": etag}).status_code == 304
    # No 304 without the admin token.
    assert_error(survey.get("/dashboard/data?sort=name", headers={"If-None-Match": etag}), 401)


# --- pages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,kind",
    [
        ("/survey", "text/html"),
        ("/dashboard", "text/html"),
        ("/assets/survey.js", "application/javascript"),
        ("/assets/dashboard.js", "application/javascript"),
        ("/assets/survey.css", "text/css"),
        ("/assets/dashboard.css", "text/css"),
        ("/assets/common.css", "text/css"),
    ],
)
def test_pages_and_assets(survey: Api, path: str, kind: str) -> None:
    response = survey.get(path)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith(kind)
    # No CDN: the only absolute URL is the SVG namespace name (an identifier, never fetched).
    assert re.findall(rb"https?://[^\s\"'`]*", response.body) in ([], [b"http://www.w3.org/2000/svg"])


def test_only_whitelisted_assets(survey: Api) -> None:
    for name in ("__init__.py", "streams.html", "..%2F..%2Fapp.py", "survey.html"):
        assert_error(survey.get(f"/assets/{name}"), 404)


def test_empty_sort_and_order_are_the_defaults(survey: Api) -> None:
    data = dashboard(survey, "?sort=&order=&size=5")
    assert (data["sort"], data["order"], data["size"]) == ("updated_at", "desc", 5)
    assert assert_error(survey.get("/dashboard/data?size=", headers=ADMIN), 400)["field"] == "size"


# --- one response per email ----------------------------------------------------


def email_claims(dynamodb: Any) -> list[dict[str, Any]]:
    return partition_items(dynamodb, keys.SURVEY_EMAILS_PK)


def test_an_email_answers_once_compared_trimmed_and_case_insensitive(survey: Api, dynamodb: Any) -> None:
    first, _ = start(survey, {"email": "ann@example.com"})
    before = dashboard(survey)["summary"]
    for taken in ("ann@example.com", "  ANN@Example.COM\t"):
        assert assert_error(survey.post("/survey/responses", {"email": taken}), 409, "email_taken")["field"] == "email"
    assert dashboard(survey)["summary"] == before  # nothing stored
    [claim] = email_claims(dynamodb)
    assert claim["response_id"]["S"] == first and "ann" not in json.dumps(claim)  # only the address's hash


def test_a_change_to_a_taken_email_is_refused_and_changes_nothing(survey: Api) -> None:
    start(survey, {"email": "ann@example.com"})
    rid, token = start(survey, {"name": "Bo", "email": "bo@example.com"})
    response = patch(survey, rid, {"name": "Bob", "email": "Ann@example.com"}, token)
    assert assert_error(response, 409, "email_taken")["field"] == "email"
    answers = ok(survey.get(f"/survey/responses/{rid}", headers=token))["answers"]
    assert (answers["name"], answers["email"]) == ("Bo", "bo@example.com")
    # Its own address in another case is still its own.
    assert ok(patch(survey, rid, {"email": "BO@example.com"}, token))["answers"]["email"] == "BO@example.com"


@pytest.mark.parametrize("release", ["change", "clear", "delete"])
def test_an_address_is_freed_by_a_change_a_clear_or_a_delete(survey: Api, dynamodb: Any, release: str) -> None:
    rid, token = start(survey, {"email": "ann@example.com"})
    if release == "change":
        ok(patch(survey, rid, {"email": "ann.lee@example.com"}, token))
    elif release == "clear":
        ok(patch(survey, rid, {"email": None}, token))
    else:
        ok(survey.request("DELETE", f"/dashboard/responses/{rid}", headers=ADMIN))
    other, _ = start(survey, {"email": "ann@example.com"})
    assert [c["response_id"]["S"] for c in email_claims(dynamodb)].count(other) == 1
    assert len(email_claims(dynamodb)) == (2 if release == "change" else 1)


def test_concurrent_starts_with_one_email_let_exactly_one_in(survey: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def attempt(i: int) -> int:
        status: int = survey.post(
            "/survey/responses", {"email": f"{'SAME' if i % 2 else 'same'}@example.com"}
        ).status_code
        return status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(attempt, range(8)))
    assert statuses == [201] + [409] * 7
    assert dashboard(survey)["summary"]["responses"] == 1


def test_a_release_of_an_address_another_response_holds_leaves_it_with_that_response(
    survey: Api, dynamodb: Any
) -> None:
    """A response saved before addresses were claimed may share its address with one that claimed it since:
    changing its address must not free the other's claim."""
    holder, _ = start(survey, {"email": "ann@example.com"})
    rid, token = start(survey, {"email": "legacy@example.com"})
    # As before claims existed: the second response also holds ann@, and no claim of its own.
    claim = {
        "pk": {"S": keys.SURVEY_EMAILS_PK},
        "sk": {"S": keys.survey_email_sk(rules.email_identity("legacy@example.com") or "")},
    }
    dynamodb.delete_item(TableName=TABLE, Key=claim)
    item_key = {"pk": {"S": keys.SURVEY_RESPONSES_PK}, "sk": {"S": keys.survey_response_sk(rid)}}
    dynamodb.update_item(
        TableName=TABLE,
        Key=item_key,
        UpdateExpression="SET email = :e",
        ExpressionAttributeValues={":e": {"S": "ann@example.com"}},
    )
    ok(patch(survey, rid, {"email": "new@example.com"}, token))
    owners = {c["response_id"]["S"] for c in email_claims(dynamodb)}
    assert owners == {holder, rid}
    assert (
        assert_error(survey.post("/survey/responses", {"email": "ann@example.com"}), 409, "email_taken")["field"]
        == "email"
    )


def test_every_text_answer_is_trimmed(survey: Api) -> None:
    padded = {"name": " Ann ", "about": "\n I like numbers.\t\n", "address": "  1 Main St\n", "book": "\tDune  "}
    rid, token = start(survey, padded)
    answers = ok(survey.get(f"/survey/responses/{rid}", headers=token))["answers"]
    assert {k: answers[k] for k in padded} == {
        "name": "Ann",
        "about": "I like numbers.",
        "address": "1 Main St",
        "book": "Dune",
    }


def test_a_responses_answers_are_never_kept_by_a_cache(survey: Api) -> None:
    # Personal data: neither the browser nor a proxy may keep a copy (a shared computer, a shared cache).
    created = survey.post("/survey/responses", {"name": "Ann"})
    rid, token = created_id_and_token(created)
    own = survey.post("/survey/responses", {}, headers={"X-Response-Token": "o" * 40, "Idempotency-Key": "k-1"})
    answers = [
        created,
        own,
        survey.post("/survey/responses", {}, headers={"X-Response-Token": "o" * 40, "Idempotency-Key": "k-1"}),
        survey.get(f"/survey/responses/{rid}", headers=token),
        patch(survey, rid, {"name": "Anne"}, token),
        survey.get("/dashboard/data", headers=ADMIN),
    ]
    assert answers[2].headers.get("Idempotent-Replayed") == "true"  # a replay carries it too
    for answer in answers:
        assert answer.status_code in (200, 201), answer.body
        assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "token", ["x" * 31, "x" * 129, "a+b/" + "x" * 40, "x" * 40 + "=", "x" * 39 + " ", "ü" * 40], ids=repr
)
def test_a_client_token_outside_the_documented_pattern_is_refused(survey: Api, token: str) -> None:
    headers = {"X-Response-Token": token, "Idempotency-Key": "k-pattern"}
    error = assert_error(survey.post("/survey/responses", {}, headers=headers), 400, "invalid_input")
    assert error["field"] == "X-Response-Token"
    assert dashboard(survey)["total"] == 0


def created_id_and_token(created: Any) -> tuple[str, dict[str, str]]:
    body = ok(created, 201)
    return body["id"], {"X-Response-Token": body["token"]}
