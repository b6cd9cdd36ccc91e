"""GreedyRouteMatcher: API Gateway's route precedence, including greedy `{name+}` variables."""

from __future__ import annotations

import chalice.local
import pytest
from chalice import Chalice
from chalice.test import Client

from devtools import local_routes
from devtools.local_routes import GreedyRouteMatcher

ROUTES = [
    "/",
    "/api/items",
    "/api/items/{id}",
    "/api/items/{id}/tags",
    "/api/{path+}",
    "/{proxy+}",
]


@pytest.fixture
def matcher() -> GreedyRouteMatcher:
    return GreedyRouteMatcher(list(reversed(ROUTES)))  # input order must not matter


@pytest.mark.parametrize(
    ("url", "route", "captured"),
    [
        ("/", "/", {}),
        ("/api/items", "/api/items", {}),
        ("/api/items/42", "/api/items/{id}", {"id": "42"}),
        ("/api/items/42/tags", "/api/items/{id}/tags", {"id": "42"}),
        ("/api/items/42/other", "/api/{path+}", {"path": "items/42/other"}),
        ("/api/x", "/api/{path+}", {"path": "x"}),
        ("/api/a/b/c", "/api/{path+}", {"path": "a/b/c"}),
        ("/other", "/{proxy+}", {"proxy": "other"}),
        ("/other/deep/er", "/{proxy+}", {"proxy": "other/deep/er"}),
    ],
)
def test_most_specific_route_wins(matcher: GreedyRouteMatcher, url: str, route: str, captured: dict[str, str]) -> None:
    result = matcher.match_route(url)
    assert (result.route, result.captured) == (route, captured)


def test_literal_beats_variable_segment_by_segment() -> None:
    m = GreedyRouteMatcher(["/{a}/b", "/a/{b}", "/{a}/{b}"])
    assert m.match_route("/a/b").route == "/a/{b}"  # the first segment decides
    assert m.match_route("/x/b").route == "/{a}/b"
    assert m.match_route("/x/y").captured == {"a": "x", "b": "y"}


def test_variable_beats_greedy() -> None:
    m = GreedyRouteMatcher(["/{proxy+}", "/{name}"])
    assert m.match_route("/one").route == "/{name}"
    assert m.match_route("/one/two").route == "/{proxy+}"


def test_greedy_needs_at_least_one_segment() -> None:
    m = GreedyRouteMatcher(["/api/{path+}"])
    for url in ("/api", "/api/", "/"):
        with pytest.raises(ValueError, match="No matching route found for"):
            m.match_route(url)


def test_variable_needs_a_non_empty_segment() -> None:
    with pytest.raises(ValueError):
        GreedyRouteMatcher(["/a/{x}/b"]).match_route("/a//b")


def test_trailing_slash_is_stripped_except_on_root(matcher: GreedyRouteMatcher) -> None:
    assert matcher.match_route("/api/items/").route == "/api/items"
    assert matcher.match_route("/api/items/7/").captured == {"id": "7"}
    assert matcher.match_route("/api/a/b/").captured == {"path": "a/b"}
    assert matcher.match_route("/").route == "/"


def test_query_string_keeps_blank_values(matcher: GreedyRouteMatcher) -> None:
    result = matcher.match_route("/api/items?a=1&a=2&empty=")
    assert result.route == "/api/items"
    assert result.query_params == {"a": ["1", "2"], "empty": [""]}
    assert matcher.match_route("/api/items").query_params == {}


def test_no_match_raises_value_error() -> None:
    m = GreedyRouteMatcher(["/", "/a/{b}"])
    with pytest.raises(ValueError, match="No matching route found for: /a/b/c"):
        m.match_route("/a/b/c")


def test_captures_do_not_leak_between_candidates() -> None:
    # chalice's own matcher shares one dict across candidates; ours must not.
    m = GreedyRouteMatcher(["/{x}/nope", "/{y}/b"])
    assert m.match_route("/a/b").captured == {"y": "a"}


def test_install_makes_chalice_test_client_route_greedily(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chalice.local, "RouteMatcher", chalice.local.RouteMatcher)  # restored after the test
    app = Chalice(app_name="greedy")

    @app.route("/{proxy+}")
    def fallback() -> dict[str, str]:
        assert app.current_request is not None
        return dict(app.current_request.uri_params or {})

    local_routes.install()
    local_routes.install()  # idempotent
    assert chalice.local.RouteMatcher is GreedyRouteMatcher
    with Client(app) as client:
        response = client.http.get("/a/b/c")
    assert response.status_code == 200
    assert response.json_body == {"proxy": "a/b/c"}


def test_path_parameters_arrive_decoded_as_api_gateway_passes_them(matcher: GreedyRouteMatcher) -> None:
    # Routes match on the path as sent (an encoded slash stays in its segment); the values are then decoded.
    assert matcher.match_route("/api/items/a%3Ab").captured == {"id": "a:b"}
    assert matcher.match_route("/api/items/a%2Fb/tags").captured == {"id": "a/b"}
    assert matcher.match_route("/api/a%20b/c%C3%A9").captured == {"path": "a b/cé"}
    assert matcher.match_route("/api/items/100%25").captured == {"id": "100%"}
