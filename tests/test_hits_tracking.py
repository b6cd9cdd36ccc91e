"""The tracking snippet (GET /count.js) and the pixel it counts through (GET /count.gif): what they answer and count.
Their behaviour in a browser (single-page navigation, opt-outs, another origin) is in tests/test_tracking_browser.py."""

from __future__ import annotations

import json
import struct
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.hits import tracking
from tests.conftest import Api, assert_error, ok

BROWSER_IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


def ranking(api: Api) -> dict[str, int]:
    return {entry["path"]: entry["count"] for entry in ok(api.get("/stats"))["paths"]}


def test_the_snippet_is_a_small_cacheable_script(api: Api) -> None:
    response = api.get("/count.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/javascript"
    assert len(response.body) < 2048
    assert "max-age" in response.headers["Cache-Control"]
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.body.decode() == tracking.snippet()
    # It sets no cookie and reads none, and sends no more than the path.
    assert b"cookie" not in response.body.lower()


def test_the_pixel_counts_its_path_as_a_hit_of_the_same_path_would(api: Api) -> None:
    pixel = api.get("/count.gif?p=" + quote("/blog//posts/1"), headers={"Accept": BROWSER_IMAGE_ACCEPT})
    assert pixel.status_code == 200
    assert pixel.headers["Content-Type"] == "image/gif"
    assert pixel.headers["Cache-Control"] == "no-store"  # else a cached pixel counts a page's first view only
    assert pixel.body[:6] == b"GIF89a" and struct.unpack("<HH", pixel.body[6:10]) == (1, 1)
    ok(api.get("/api/blog/posts/1/"))
    assert ranking(api) == {"/api/blog/posts/1/": 2}


def test_a_page_path_counts_as_its_hit_under_api_does_once_both_are_decoded(api: Api) -> None:
    # The snippet decodes location.pathname (percent-encoded) as API Gateway decodes a path parameter.
    assert api.get("/count.gif?p=" + quote("/blog/café", safe=""), headers={"Accept": "*/*"}).status_code == 200
    ok(api.get("/api/blog/caf%C3%A9"))
    assert ranking(api) == {"/api/blog/café/": 2}


@pytest.mark.parametrize("accept", [None, "application/json", "text/html"])
def test_a_client_that_takes_no_image_is_counted_and_answered_204(api: Api, accept: str | None) -> None:
    headers = {} if accept is None else {"Accept": accept}
    response = api.get("/count.gif?p=/blog/", headers=headers)
    assert response.status_code == 204 and response.body == b""
    assert ranking(api) == {"/api/blog/": 1}


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        ("/count.gif", 400, "p"),
        ("/count.gif?p=/a&x=1", 400, "x"),
        ("/count.gif?p=/" + "a" * 1100, 414, "p"),
    ],
)
def test_a_pixel_without_a_countable_path_is_an_error_and_counts_nothing(
    api: Api, url: str, status: int, field: str
) -> None:
    error = assert_error(api.get(url, headers={"Accept": "*/*"}), status)
    assert error["field"] == field
    assert ok(api.get("/stats"))["total_hits"] == 0


@pytest.mark.pure
@given(st.lists(st.sampled_from(["image/gif", "image/*", "*/*", "image/png", "text/html", "application/json"])))
def test_the_gif_goes_only_to_an_accept_that_takes_it(types: list[str]) -> None:
    header = ", ".join(f"{t};q=0.{i % 9 + 1}" if i % 2 else t for i, t in enumerate(types))
    assert tracking.accepts_pixel(header) == bool({"image/gif", "image/*", "*/*"} & set(types))


def test_the_contract_names_both_routes(api: Any) -> None:
    paths = json.loads(api.get("/openapi.json").body)["paths"]
    assert set(paths["/count.gif"]["get"]["responses"]) >= {"200", "204", "400", "414"}
    assert "application/javascript" in paths["/count.js"]["get"]["responses"]["200"]["content"]


@pytest.mark.parametrize("url", ["/api/a%0Ab", "/api/%00", "/api/x%7F", "/count.gif?p=%01x", "/count.gif?p=/a%C2%85"])
def test_a_hit_path_with_a_control_character_is_refused_as_a_hit_events_is(api: Api, url: str) -> None:
    error = assert_error(api.get(url, headers={"Accept": "*/*"}), 400, "invalid_input")
    assert error["field"] in ("path", "p") and "control characters" in error["message"]
    assert ok(api.get("/stats"))["total_hits"] == 0
