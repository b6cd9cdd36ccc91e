"""The tracking snippet and CORS in a real headless Chromium, on a page served from another local origin (another
port), as a website that embeds livestats would be: single-page navigation counted, opt-outs honoured, a listed
origin reading and writing across origins and any other refused. The routes themselves: tests/test_hits_tracking.py
and tests/test_cors.py."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import Api, Environment, ok
from tests.test_browser import WAIT_MS, browser, pytestmark, serving  # noqa: F401 (fixture, skip rule)

WRITE_TOKEN = "write-token-0123456789abcdefghijklmnopq"


@contextlib.contextmanager
def website(page_html: Callable[[], str], csp: Callable[[], str]) -> Iterator[int]:
    """Another origin's site: every path answers the same page (a single-page app), under a strict CSP: its port."""

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page_html().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", csp())
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Embedding:
    """The service and a site that embeds its snippet, with what the site's page says (attributes, extra HTML)."""

    def __init__(self, service_url: str, site_port: int) -> None:
        self.service_url = service_url
        self.site_url = f"http://127.0.0.1:{site_port}"
        self.snippet_attributes = 'data-site="blog" data-allow-automation'
        self.extra_html = ""

    def page(self) -> str:
        return (
            "<!doctype html><title>a site</title>"
            f'<script async src="{self.service_url}/count.js" {self.snippet_attributes}></script>{self.extra_html}'
        )

    def csp(self) -> str:
        # As strict as a careful site: only the service may run scripts, be fetched or give images.
        origin = self.service_url
        return f"default-src 'none'; script-src {origin}; connect-src {origin}; img-src {origin}"


@pytest.fixture
def embedding(api: Api, env: Environment, chalice_config: Any) -> Iterator[Embedding]:
    holder: list[Embedding] = []
    with website(lambda: holder[0].page(), lambda: holder[0].csp()) as port:
        env.set("CORS_ORIGINS", f"http://127.0.0.1:{port}")
        env.set("WRITE_ACCESS", "token")
        env.set("WRITE_TOKEN", WRITE_TOKEN)
        env.set("ADMIN_TOKEN", "admin-token-0123456789abcdefghijklmnop")  # may write too; set, so no SSM is asked
        with serving(chalice_config.chalice_app, chalice_config) as service_url:
            holder.append(Embedding(service_url, port))
            yield holder[0]


def counts(api: Api) -> dict[str, int]:
    return {entry["path"]: entry["count"] for entry in ok(api.get("/stats"))["paths"]}


def wait_for_counts(api: Api, expected: dict[str, int]) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while counts(api) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counts(api) == expected


def watched_page(browser: Any, **context: Any) -> tuple[Any, list[Any], list[str]]:  # noqa: F811
    """A new page, the count requests it makes, and what it printed as errors (CSP refusals among them)."""
    page = browser.new_context(**context).new_page()
    sent: list[Any] = []
    errors: list[str] = []
    page.on("request", lambda r: sent.append(r) if "/count.gif" in r.url else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, sent, errors


def test_page_views_and_single_page_navigation_are_counted_from_another_origin(
    browser: Any,  # noqa: F811
    api: Api,
    embedding: Embedding,
) -> None:
    page, sent, errors = watched_page(browser)
    page.goto(f"{embedding.site_url}/docs/intro")
    wait_for_counts(api, {"/api/blog/docs/intro/": 1})
    page.evaluate("history.pushState({}, '', '/docs/caf%C3%A9?tab=2')")
    wait_for_counts(api, {"/api/blog/docs/intro/": 1, "/api/blog/docs/café/": 1})
    page.evaluate("history.pushState({}, '', '/docs/caf%C3%A9#part-2')")  # the same page: not counted again
    page.evaluate("history.go(-2)")  # back to the first page: a view of it
    wait_for_counts(api, {"/api/blog/docs/intro/": 2, "/api/blog/docs/café/": 1})
    page.evaluate("0")  # Playwright's sync API delivers events (the requests seen) only during a call
    assert len(sent) == 3
    for request in sent:  # nothing personal: no cookie, no referrer, nothing but the path
        headers = request.all_headers()
        assert "cookie" not in headers and "referer" not in headers
        assert list(parse_qs(urlsplit(request.url).query)) == ["p"]
    assert page.context.cookies() == []
    assert not errors, errors  # the snippet needs nothing the site's strict CSP refuses


@pytest.mark.parametrize(
    ("case", "attributes", "init_script"),
    [
        ("automation", 'data-site="blog"', ""),
        (
            "do not track",
            'data-site="blog" data-allow-automation',
            "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
        ),
        (
            "global privacy control",
            'data-site="blog" data-allow-automation',
            "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
        ),
        ("opted out", 'data-site="blog" data-allow-automation', "localStorage.setItem('livestats-ignore', '1')"),
    ],
)
def test_nothing_is_counted_when_the_visitor_or_the_browser_says_not_to(
    browser: Any,  # noqa: F811
    api: Api,
    embedding: Embedding,
    case: str,
    attributes: str,
    init_script: str,
) -> None:
    embedding.snippet_attributes = attributes
    # A pixel after the snippet: once its view is counted, the snippet's (sent first, on load) would have been too.
    embedding.extra_html = f'<img id="pixel" src="{embedding.service_url}/count.gif?p=/pixel">'
    page, sent, errors = watched_page(browser)
    if init_script:
        page.add_init_script(init_script)
    page.goto(f"{embedding.site_url}/docs/intro")  # waits for the load event: the async snippet has run
    page.evaluate("history.pushState({}, '', '/docs/next')")
    wait_for_counts(api, {"/api/pixel/": 1})
    page.evaluate("0")  # Playwright's sync API delivers events (the requests seen) only during a call
    assert [r.url for r in sent] == [f"{embedding.service_url}/count.gif?p=/pixel"], case
    # The pixel is a real 1×1 image (a binary answer through the HTTP server, as API Gateway decodes it).
    assert page.evaluate(
        "[document.getElementById('pixel').naturalWidth, document.getElementById('pixel').naturalHeight]"
    ) == [1, 1]
    assert not errors, errors


def test_a_listed_origin_reads_and_writes_across_origins_and_any_other_is_refused(
    browser: Any,  # noqa: F811
    api: Api,
    embedding: Embedding,
) -> None:
    read = "fetch(url).then((r) => r.json()).then((b) => b.total_hits, (e) => 'refused: ' + e.name)"
    write = (
        "fetch(url, {method: 'POST', headers: {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json',"
        " 'Idempotency-Key': 'k1'}, body: JSON.stringify({value: 2})}).then((r) => r.status, (e) => 'refused: ' + e.name)"
    )
    ok(api.get("/api/x"))
    page, _, errors = watched_page(browser)
    page.goto(f"{embedding.site_url}/")
    stats = f"{embedding.service_url}/stats"
    assert page.evaluate(f"(url) => {read}", stats) == 2  # the snippet's view and /api/x
    metric = f"{embedding.service_url}/metric/orders"
    assert page.evaluate(f"([url, token]) => {write}", [metric, WRITE_TOKEN]) == 200  # preflighted: a token, JSON
    assert ok(api.get("/metric/orders/sum"))["value"] == 2
    # The same site at another origin (localhost is not 127.0.0.1): its reads and writes are refused by the browser.
    other, _, _ = watched_page(browser)
    other.goto(embedding.site_url.replace("127.0.0.1", "localhost") + "/")
    assert other.evaluate(f"(url) => {read}", stats) == "refused: TypeError"
    assert other.evaluate(f"([url, token]) => {write}", [metric, WRITE_TOKEN]) == "refused: TypeError"
    assert ok(api.get("/metric/orders/sum"))["value"] == 2  # the preflight failed: the write was never sent
    assert json.dumps(errors).count("CORS") == 0
