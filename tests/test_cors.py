"""CORS for the web origins a stage lists (CORS_ORIGINS; chalicelib/edge/cors.py): a listed origin may read every
answer and send a token, any other gets no CORS header at all. In a real browser: tests/test_tracking_browser.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chalicelib.edge import cors
from chalicelib.process.settings import Settings
from tests.conftest import Api, Environment, assert_error, ok

DASHBOARD = "https://dash.example.com"
OTHER = "https://evil.example.net"
WRITE_TOKEN = "write-token-0123456789abcdefghijklmnopq"


@pytest.fixture
def service(api: Api, env: Environment) -> Api:
    env.set("CORS_ORIGINS", f"{DASHBOARD}, http://localhost:3000")
    env.set("WRITE_ACCESS", "token")
    env.set("WRITE_TOKEN", WRITE_TOKEN)
    env.set("ADMIN_TOKEN", "admin-token-0123456789abcdefghijklmnop")  # the admin token may write too: no SSM
    return api


def cors_headers(response: object) -> dict[str, str]:
    headers: dict[str, str] = response.headers  # type: ignore[attr-defined]
    return {k: v for k, v in headers.items() if k.lower().startswith("access-control-")}


def preflight(api: Api, path: str, origin: str, method: str) -> object:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    return api.request("OPTIONS", path, headers=headers)


def test_a_listed_origins_preflight_names_the_routes_methods_and_the_headers_it_reads(service: Api) -> None:
    response = preflight(service, "/streams/lat/values", DASHBOARD, "POST")
    assert response.status_code == 204  # type: ignore[attr-defined]
    assert cors_headers(response) == {
        "Access-Control-Allow-Origin": DASHBOARD,
        "Access-Control-Allow-Methods": "GET, HEAD, POST, OPTIONS",  # the route's Allow
        "Access-Control-Allow-Headers": cors.ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(cors.PREFLIGHT_MAX_AGE_S),
    }
    assert "Access-Control-Allow-Credentials" not in response.headers  # type: ignore[attr-defined]
    assert "Origin" in response.headers["Vary"]  # type: ignore[attr-defined]


def test_a_listed_origin_reads_answers_and_writes_with_the_token(service: Api) -> None:
    write = service.post(
        "/streams/lat/values",
        {"values": [1, 2]},
        headers={"Origin": DASHBOARD, "Authorization": f"Bearer {WRITE_TOKEN}"},
    )
    ok(write)
    assert write.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert "Retry-After" in write.headers["Access-Control-Expose-Headers"]
    read = service.get("/streams/lat", headers={"Origin": "http://localhost:3000"})
    assert ok(read)["count"] == 2
    assert read.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"  # that origin alone


def test_errors_carry_the_headers_so_a_page_can_read_why(service: Api) -> None:
    refused = service.post("/streams/lat/values", {"values": [1]}, headers={"Origin": DASHBOARD})
    assert_error(refused, 401)
    assert refused.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]
    invalid = service.get("/stats?limit=0", headers={"Origin": DASHBOARD})
    assert_error(invalid, 400)
    assert invalid.headers["Access-Control-Allow-Origin"] == DASHBOARD


@pytest.mark.parametrize("origin", [OTHER, "https://dash.example.com.evil.net", "null", "HTTPS://DASH.EXAMPLE.COM/"])
def test_any_other_origin_gets_no_cors_header_and_changes_nothing_by_it(service: Api, origin: str) -> None:
    assert cors_headers(preflight(service, "/streams/lat/values", origin, "POST")) == {}
    read = service.get("/stats", headers={"Origin": origin})
    ok(read)
    assert cors_headers(read) == {}
    assert read.headers["Vary"] == "Origin"


def test_without_cors_origins_no_answer_names_any_origin(api: Api) -> None:
    response = preflight(api, "/stats", DASHBOARD, "GET")
    assert response.status_code == 204  # type: ignore[attr-defined]
    assert cors_headers(response) == {} and "Vary" not in response.headers  # type: ignore[attr-defined]
    assert cors_headers(api.get("/stats", headers={"Origin": DASHBOARD})) == {}


def test_an_unknown_path_fails_its_preflight(service: Api) -> None:
    response = preflight(service, "/nothing/here", DASHBOARD, "GET")
    assert response.status_code == 404  # type: ignore[attr-defined]


@pytest.mark.pure
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://Dash.Example.com", ("https://dash.example.com",)),
        (
            "https://a.example:443, http://b.example:80,http://c.example:8080",
            ("https://a.example", "http://b.example", "http://c.example:8080"),
        ),
        ("", ()),
        ("http://[::1]:3000", ("http://[::1]:3000",)),
    ],
)
def test_cors_origins_are_read_as_a_browser_names_them(given: str, expected: tuple[str, ...]) -> None:
    assert Settings.from_environment({"CORS_ORIGINS": given}).cors_origins == expected


@pytest.mark.pure
@pytest.mark.parametrize(
    "given", ["*", "https://dash.example.com/", "dash.example.com", "ftp://x.example", "https://a.example/path"]
)
def test_a_cors_origin_that_is_not_an_origin_is_refused_at_start(given: str) -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings.from_environment({"CORS_ORIGINS": given})
