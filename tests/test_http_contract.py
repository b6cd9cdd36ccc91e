"""Service-wide HTTP behaviour: one error shape, 404/405, idempotency keys."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.edge import web
from tests.conftest import Api, assert_error, partition_items


def test_unknown_route_is_a_json_404(api: Api) -> None:
    assert_error(api.get("/no/such/thing"), 404, "not_found")
    assert_error(api.post("/nope", {"value": 1}), 404, "not_found")


@pytest.mark.parametrize(
    "method,path",
    [("DELETE", "/stats"), ("PUT", "/streams/s/values"), ("GET", "/streams/s/reset"), ("POST", "/")],
)
def test_wrong_method_is_a_json_405(api: Api, method: str, path: str) -> None:
    assert_error(api.request(method, path), 405, "method_not_allowed")


def test_home_page_is_html(api: Api) -> None:
    response = api.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"<html" in response.body


def test_idempotency_key_applies_a_post_once(api: Api) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = api.post("/streams/i/values", {"value": 5}, headers=headers)
    again = api.post("/streams/i/values", {"value": 5}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert json.loads(first.body) == json.loads(again.body)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert json.loads(api.get("/streams/i").body)["count"] == 1
    other = api.post("/streams/i/values", {"value": 5}, headers={"Idempotency-Key": "abc-124"})
    assert json.loads(other.body)["count"] == 2


def test_idempotency_key_reused_with_another_body_is_422(api: Api) -> None:
    headers = {"Idempotency-Key": "k1"}
    api.post("/streams/j/values", {"value": 5}, headers=headers)
    assert_error(api.post("/streams/j/values", {"value": 6}, headers=headers), 422, "idempotency_key_reused")
    assert json.loads(api.get("/streams/j").body)["count"] == 1


def test_a_retry_serialised_anew_is_the_same_request(api: Api) -> None:
    headers = {"Idempotency-Key": "k2"}
    first = api.post("/streams/r/values", '{"values": [1, 2], "user": "ana"}', headers=headers)
    again = api.post("/streams/r/values", '{"user":"ana",\n "values":[1,2]}', headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.body == first.body
    # As parsed JSON 2.0 is not 2: another request.
    refused = api.post("/streams/r/values", '{"values": [1, 2.0], "user": "ana"}', headers=headers)
    assert_error(refused, 422, "idempotency_key_reused")
    assert json.loads(api.get("/streams/r").body)["count"] == 2


def test_a_keyed_body_is_parsed_once_and_an_oversized_one_never(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    real = web.parse_json

    def counted(raw: bytes) -> Any:
        parsed.append(len(raw))
        return real(raw)

    monkeypatch.setattr(web, "parse_json", counted)
    assert api.post("/streams/once/values", {"value": 1}, headers={"Idempotency-Key": "once"}).status_code == 200
    assert len(parsed) == 1  # the fingerprint's parse, which the view reuses
    huge = json.dumps({"value": 1, "user": "u" * web.MAX_BODY_BYTES})
    assert_error(api.post("/streams/once/values", huge, headers={"Idempotency-Key": "huge"}), 413, "body_too_large")
    assert len(parsed) == 1


def test_same_key_on_another_path_is_independent(api: Api) -> None:
    api.post("/streams/k1/values", {"value": 1}, headers={"Idempotency-Key": "same"})
    api.post("/streams/k2/values", {"value": 1}, headers={"Idempotency-Key": "same"})
    assert json.loads(api.get("/streams/k2").body)["count"] == 1


def test_errors_are_not_recorded_under_the_key(api: Api) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    assert_error(api.post("/streams/e/reset", headers=headers), 409)
    api.post("/streams/e/values", {"value": 1})
    # The failed attempt was not stored, so the retry runs and now succeeds.
    assert api.post("/streams/e/reset", headers=headers).status_code == 200


def test_bad_idempotency_key_is_400(api: Api) -> None:
    assert_error(api.post("/streams/b/values", {"value": 1}, headers={"Idempotency-Key": "x" * 256}), 400)


def test_idempotency_records_expire_through_the_table_ttl(api: Api, dynamodb: Any) -> None:
    from chalicelib.pure import clock
    from chalicelib.storage import keys, table

    api.post("/streams/t/values", {"value": 1}, headers={"Idempotency-Key": "ttl"})
    items = partition_items(dynamodb, keys.IDEMPOTENCY_PARTITION)
    assert len(items) == 1
    expires = int(items[0][table.TTL_ATTRIBUTE]["N"])
    assert 23 * 3600 < expires - clock.now() <= 24 * 3600 + 5


def test_an_unexpected_failure_is_a_json_500_logged_once_with_its_cause(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from chalicelib.process.observability import logger
    from chalicelib.streams.store import StreamStore

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(StreamStore, "snapshot", broken)
    lines = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(lines)  # type: ignore[attr-defined]
    try:
        error = assert_error(api.get("/streams/s"), 500, "internal_error")
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
    assert "disk on fire" not in error["message"]
    failures = [json.loads(line) for line in lines.getvalue().splitlines() if '"level":"ERROR"' in line]
    assert len(failures) == 1  # one structured JSON line with the cause
    assert "RuntimeError: disk on fire" in failures[0]["exception"] and failures[0]["service"] == "livestats"


@pytest.mark.parametrize("path", ["/", "/ui/hits", "/ui/metrics", "/survey", "/dashboard", "/assets/common.css"])
def test_pages_carry_security_headers_and_no_inline_code(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    if path != "/assets/common.css":
        # Scripts and styles come from /assets only: nothing inline that the policy would block.
        assert b"<script>" not in response.body and b"<style>" not in response.body
        assert b" style=" not in response.body and b" onclick=" not in response.body


def test_json_answers_are_nosniff(api: Api) -> None:
    # A JSON answer may echo a client's text; a browser must never read it as a page or a script.
    answers = [
        api.get("/streams/s"),  # 200
        api.post("/streams/s/values", {"value": "<script>"}),  # 400 from a model
        api.get("/nowhere"),  # 404 from the fallback route
        api.request("DELETE", "/stats"),  # 405
        api.post("/streams/s/values", "not json"),  # 400 from the parser
    ]
    assert [answer.status_code for answer in answers] == [200, 400, 404, 405, 400]
    for answer in answers:
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("query", ["?limit=5&colour=red", "?cursor=&x=1", "?Limit=5"])
def test_a_query_parameter_the_operation_does_not_take_is_refused(api: Api, query: str) -> None:
    # The document lists every parameter an operation takes, as a body's schema lists its keys.
    error = assert_error(api.get("/streams/s/sessions" + query), 400, "invalid_input")
    assert error["field"] in ("colour", "x", "Limit")
    assert api.get("/streams/s/sessions?limit=5&cursor=").status_code == 200
