"""Every page works when the service is mounted under a path prefix (API Gateway's `/api/` stage, a custom domain's
base path): its URLs resolve against the page, and /docs' "Try it out" reaches the API through the same prefix.

The browser test puts a small proxy in front of the dev server that plays API Gateway under a prefix: it serves
`<prefix>...` from the app's `/...`, tells the app the path as requested (API Gateway's requestContext.path), and
refuses anything outside the prefix with 404, so a root-absolute URL fails loudly. The static checks catch the same
regression where Chromium is missing.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urljoin, urlsplit

import pytest
from chalice import Chalice

from tests.conftest import Api, Environment
from tests.test_browser import CHROMIUM, WAIT_MS, browser, expect, serving  # noqa: F401 (fixture)
from tests.test_survey_api import ADMIN_TOKEN, survey  # noqa: F401 (fixture)

PAGES_DIR = Path(__file__).resolve().parent.parent / "chalicelib" / "pages"
# Each page's route and file.
PAGES = {
    "/": "streams.html",
    "/ui/hits": "hits.html",
    "/ui/metrics": "metrics.html",
    "/survey": "survey.html",
    "/dashboard": "dashboard.html",
    "/docs": "docs.html",
}
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (run `make browser-deps`)"
)


# --- without a browser: no page, script or stylesheet names a root-absolute URL ---------------------------------

MOUNT = "https://example.test/base/path/"  # where the static checks pretend the service is mounted


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("href", "src", "action") and value is not None]


def _service_route(path: str) -> tuple[str, dict[str, str]]:
    """The app's route for `path` (as the service sees it), never the fallback 404."""
    from app import app
    from devtools.local_routes import GreedyRouteMatcher

    matched = GreedyRouteMatcher([route for route in app.routes if route != "/{proxy+}"]).match_route(path)
    return matched.route, matched.captured


@pytest.mark.pure
def test_the_page_list_is_every_page_route() -> None:
    from app import app
    from chalicelib.edge import openapi

    declared = {path for (path, _), view in openapi.documented_routes(app).items() if _is_page(view)}
    assert declared == set(PAGES)
    assert {p.name for p in PAGES_DIR.glob("*.html")} == set(PAGES.values())


def _is_page(view: Any) -> bool:
    from chalicelib.edge import contract

    declared = contract.operation_of(view)
    return declared is not None and declared.responses is contract.PAGE


@pytest.mark.pure
@pytest.mark.parametrize("route", PAGES)
def test_a_page_links_only_relative_urls_that_reach_the_service(route: str) -> None:
    from chalicelib import pages
    from chalicelib.edge import docs

    links = _Links()
    links.feed((PAGES_DIR / PAGES[route]).read_text(encoding="utf-8"))
    assert links.urls
    here = urljoin(MOUNT, route.lstrip("/"))  # the page's own URL under the mount
    for url in links.urls:
        if url.startswith(("data:", "mailto:")):
            continue
        assert not url.startswith("/") and ":" not in url.split("/")[0], (route, url)
        resolved = urljoin(here, url)
        assert resolved.startswith(MOUNT), (route, url, resolved)  # not out of the mount (too many `../`)
        found, captured = _service_route("/" + resolved.removeprefix(MOUNT))
        if found == "/assets/{name}":
            assert captured["name"] in pages.ASSETS, (route, url)
        if found == "/docs/assets/{name}":
            assert captured["name"] in docs.SWAGGER_UI_ASSETS, (route, url)


# A string or template literal that starts with "/" (not "//", a comment, nor "/*"), or a CSS url(/...).
ROOT_ABSOLUTE = re.compile(r"""["'`]/(?![/*])|url\(\s*["']?/""")


@pytest.mark.pure
@pytest.mark.parametrize("name", sorted(p.name for p in PAGES_DIR.iterdir() if p.suffix in (".js", ".css", ".html")))
def test_no_file_of_the_pages_names_a_root_absolute_url(name: str) -> None:
    text = (PAGES_DIR / name).read_text(encoding="utf-8")
    found = [line for line in text.splitlines() if ROOT_ABSOLUTE.search(line)]
    assert not found, found
    # Every fetch builds its URL from the service's root, which the script takes from its own URL.
    assert all(call.startswith("new URL(") for call in re.findall(r"\bfetch\((.{8})", text)), name
    if "fetch(" in text:
        assert 'const ROOT = new URL("..", document.currentScript.src);' in text


@pytest.mark.pure
@pytest.mark.parametrize(
    "route,requested,location",
    [
        ("/", "/api", "./api/"),  # the stage root without its slash
        ("/", "/base/path", "./path/"),
        ("/", "/a:b", "./a:b/"),  # not the scheme `a:`
        ("/", "/api/", None),
        ("/", "/", None),
        ("/", "", None),  # no path given: nothing to go by
        ("/ui/hits", "/api/ui/hits/", "../hits"),
        ("/ui/hits", "/ui/hits/", "../hits"),
        ("/docs", "/base/path/docs/", "../docs"),
        ("/ui/hits", "/api/ui/hits", None),
        ("/ui/hits", "/elsewhere/", None),  # not this page's path: left alone
    ],
)
def test_a_page_in_its_other_form_is_sent_to_its_own(route: str, requested: str, location: str | None) -> None:
    from chalicelib import pages

    assert pages.own_form(route, requested) == location
    if location is not None:  # and the browser lands on the page's own form
        landed = urlsplit(urljoin(f"https://example.test{requested}", location)).path
        assert landed == (requested + "/" if route == "/" else requested.rstrip("/"))


# --- API Gateway under a prefix, played by a proxy -------------------------------------------------------------

# The path as the browser asked for it, prefix included: what API Gateway gives the app as requestContext.path.
REQUESTED_PATH = "X-Requested-Path"


class AsRequested:
    """The app as API Gateway invokes it under a prefix: requestContext.path is the path as requested (Chalice's
    local gateway gives the path it routed, without the prefix)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        requested = (event.get("headers") or {}).get(REQUESTED_PATH.lower())
        if requested:
            event["requestContext"]["path"] = requested
        return self._app(event, context)


def as_requested(app: Chalice) -> Chalice:
    """`app` wrapped in AsRequested, typed as what it stands in for."""
    return cast(Chalice, AsRequested(app))


def test_the_stage_root_and_a_page_with_a_trailing_slash_redirect_relatively(
    api: Api,
    chalice_config: Any,
) -> None:
    from chalice.local import LocalGateway

    gateway = Api(LocalGateway(as_requested(chalice_config.chalice_app), chalice_config))
    for requested, query, location in [
        ("/api", "", "./api/"),
        ("/base/path", "?stream=a%20b&x=1", "./path/?stream=a+b&x=1"),
    ]:
        response = gateway.get(f"/{query}", headers={REQUESTED_PATH: requested})
        assert response.status_code == 308 and response.headers["Location"] == location, requested
        assert response.body == b"" and "Content-Security-Policy" in response.headers
    assert gateway.get("/", headers={REQUESTED_PATH: "/api/"}).status_code == 200
    for path, location in [("/ui/hits/", "../hits"), ("/ui/metrics/?key=k", "../metrics?key=k"), ("/docs/", "../docs")]:
        response = api.get(path)
        assert response.status_code == 308 and response.headers["Location"] == location, path
    for path in ("/", "/ui/hits", "/survey", "/dashboard", "/docs"):
        assert api.get(path).status_code == 200, path
    assert api.get("/assets/common.css/").status_code == 200  # a script or stylesheet is not redirected


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


@dataclass
class PrefixProxy:
    """Serves `upstream` (the app at the root) under `prefix` (e.g. `/api/`), as API Gateway serves a stage."""

    upstream: str
    prefix: str
    refused: list[str] = field(default_factory=list)
    url: str = ""

    def target(self, path: str) -> str | None:
        """The upstream path of a requested one, or None when it is outside the prefix."""
        if path == self.prefix.rstrip("/"):  # the stage root without its slash reaches the root resource, as on AWS
            return "/"
        if path.startswith(self.prefix):
            return "/" + path.removeprefix(self.prefix)
        return None

    @property
    def root(self) -> str:
        return self.url + self.prefix


def _handler(proxy: PrefixProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a browser expects

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def forward(self) -> None:
            requested = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            path = proxy.target(requested.path)
            if path is None:
                proxy.refused.append(f"{self.command} {self.path}")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers[REQUESTED_PATH] = requested.path
            connection = http.client.HTTPConnection(upstream.hostname or "", upstream.port, timeout=30)
            try:
                query = f"?{requested.query}" if requested.query else ""
                connection.request(self.command, path + query, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            finally:
                connection.close()
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)  # Location too, untouched: it must work as the app wrote it
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = forward

    return Handler


@pytest.fixture(params=["/api/", "/base/path/"])
def behind_prefix(
    request: pytest.FixtureRequest,
    survey: Api,  # noqa: F811
    chalice_config: Any,
    env: Environment,
) -> Iterator[PrefixProxy]:
    """The app on this test's table, served under a prefix through the proxy; the load generator open."""
    env.set("LOAD_TEST_ACCESS", "open")
    with serving(as_requested(chalice_config.chalice_app), chalice_config) as upstream:
        proxy = PrefixProxy(upstream, request.param)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
        server.daemon_threads = True
        proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="prefix-proxy", daemon=True)
        thread.start()
        try:
            yield proxy
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


# Every CSP violation, reported or not (an init script is not subject to the page's policy).
VIOLATIONS_JS = (
    "document.addEventListener('securitypolicyviolation',"
    " e => window.reportViolation(e.violatedDirective + ' ' + e.blockedURI + ' on ' + location.href));"
)


def watched(context: Any, problems: list[str]) -> Any:
    """A page of `context` whose failed requests, answers of 400 or more, console errors, uncaught errors and CSP
    violations are added to `problems`."""
    context.expose_function("reportViolation", lambda text: problems.append(f"CSP violation: {text}"))
    context.add_init_script(VIOLATIONS_JS)
    page = context.new_page()

    def failed(request: Any) -> None:
        # A poll still in flight when the test moves to the next page is cancelled by the browser: not a failure.
        if request.failure != "net::ERR_ABORTED":
            problems.append(f"failed: {request.method} {request.url}: {request.failure}")

    page.on("requestfailed", failed)
    page.on(
        "response", lambda r: problems.append(f"{r.status}: {r.request.method} {r.url}") if r.status >= 400 else None
    )
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    return page


def answered(page: Any, method: str, url: str) -> Any:
    """Context manager: the answer to the page's next `method` request of exactly `url`."""
    return page.expect_response(lambda r: r.request.method == method and r.url == url, timeout=WAIT_MS)


@needs_chromium
@pytest.mark.heavy  # once, on DynamoDB Local, as the other browser tests
def test_every_page_works_behind_a_path_prefix(browser: Any, behind_prefix: PrefixProxy) -> None:  # noqa: F811
    root = behind_prefix.root  # e.g. http://127.0.0.1:PORT/api/
    problems: list[str] = []
    context = browser.new_context()
    try:
        page = watched(context, problems)
        _streams(page, root, problems)
        _hits(page, root)
        _snippet(page, root)
        _metrics(page, root)
        _survey_and_dashboard(page, root)
        _docs(page, root)
        # A page with a trailing slash is sent to its own form, whose relative URLs are right.
        page.goto(f"{root}ui/metrics/?key=prefix-metric")
        assert page.url == f"{root}ui/metrics?key=prefix-metric"
        expect(page.locator("#sum")).to_have_text("30", timeout=WAIT_MS)
    except Exception as exc:  # a step that timed out says little: what the watchers saw says why
        raise AssertionError(f"{exc}\nseen so far: {problems}\nrefused: {behind_prefix.refused}") from exc
    finally:
        context.close()
    assert not problems, problems
    assert not behind_prefix.refused, behind_prefix.refused


NAV = ["", "ui/hits", "ui/metrics", "survey", "dashboard"]


def _streams(page: Any, root: str, problems: list[str]) -> None:
    # The stage root without its slash (`https://host/api`) is redirected to `.../api/`, query kept.
    page.goto(f"{root.rstrip('/')}?stream=prefix-stream")
    assert page.url == f"{root}?stream=prefix-stream"
    expect(page.locator("#session")).to_have_text("no values yet", timeout=WAIT_MS)
    # The watchers are live: a style attribute set from the page is refused by its policy, and reported.
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    for _ in range(WAIT_MS // 50):  # the report arrives asynchronously
        if any(p.startswith("CSP violation: style-src") for p in problems):
            break
        page.wait_for_timeout(50)
    assert any(p.startswith("CSP violation: style-src") for p in problems), problems
    problems[:] = [p for p in problems if not p.startswith("CSP violation: style-src") and "inline style" not in p]

    assert page.locator("nav a").evaluate_all("links => links.map(a => a.href)") == [root + p for p in NAV]
    page.fill("#numbers", "1, 2, 3")
    with answered(page, "POST", f"{root}streams/prefix-stream/values") as response:
        page.click("#submit button[type=submit]")
    assert response.value.status == 200
    expect(page.locator('[data-figure="count"] b')).to_have_text("3", timeout=WAIT_MS)
    page.click("nav >> text=Hits")
    page.wait_for_url(f"{root}ui/hits")


def _snippet(page: Any, root: str) -> None:
    """The tracking snippet, embedded in one of our own pages (under their CSP), sends its count under the prefix."""
    embed = (
        "(src) => { const s = document.createElement('script'); s.src = src; s.dataset.site = 'prefix';"
        " s.setAttribute('data-allow-automation', ''); document.head.append(s); }"
    )
    viewed = quote(f"/prefix{urlsplit(page.url).path}", safe="")  # the page's own path, prefix included
    with answered(page, "GET", f"{root}count.gif?p={viewed}") as response:
        page.evaluate(embed, f"{root}count.js")
    assert response.value.status in (200, 204)  # opaque to the page (no-cors); counted either way


def _hits(page: Any, root: str) -> None:
    assert page.locator("nav a").evaluate_all("links => links.map(a => a.href)") == [root + p for p in NAV]
    # Behind the stage the counter's URLs are <prefix>api/...; the path counted is the service's /api/...
    counted = page.request.get(f"{root}api/prefix/page")
    assert counted.status == 200 and counted.json() == {"path": "/api/prefix/page/", "count": 1}
    page.fill("#n", "3")
    with answered(page, "POST", f"{root}test/3/") as response:
        page.click("#run")
    assert response.value.status == 200
    expect(page.locator("#status")).to_contain_text("3 / 3 counted", timeout=WAIT_MS)
    expect(page.locator("#ranking")).to_contain_text("/api/prefix/page/", timeout=WAIT_MS)


def _metrics(page: Any, root: str) -> None:
    page.goto(f"{root}ui/metrics?key=prefix-metric")
    expect(page.locator("#count")).to_have_text("0", timeout=WAIT_MS)  # its first refresh came back
    page.fill("#value", "30")
    with answered(page, "POST", f"{root}metric/prefix-metric") as response:
        page.click("#post button[type=submit]")
    assert response.value.ok
    expect(page.locator("#sum")).to_have_text("30", timeout=WAIT_MS)


def _survey_and_dashboard(page: Any, root: str) -> None:
    page.goto(f"{root}survey")
    page.wait_for_selector("body[data-ready]")
    with answered(page, "POST", f"{root}survey/responses") as response:
        page.fill("#name", "Pre Fix")
    assert response.value.status == 201
    page.goto(f"{root}dashboard")
    assert page.locator("nav a").evaluate_all("links => links.map(a => a.href)") == [root + p for p in NAV]
    page.fill("#token", ADMIN_TOKEN)
    page.click("text=Open dashboard")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(page.locator("#rows")).to_contain_text("Pre Fix")


def _docs(page: Any, root: str) -> None:
    page.goto(f"{root}docs")
    operation = page.locator(".opblock-summary", has_text="/health").first
    expect(operation).to_be_visible(timeout=WAIT_MS)
    operation.click()
    page.get_by_role("button", name="Try it out").click()
    # Swagger UI resolves the document's relative server (".") against the document's URL: the prefixed root.
    with answered(page, "GET", f"{root}health") as response:
        page.locator(".execute").click()
    assert response.value.status == 200
    expect(page.locator(".live-responses-table tr.response .response-col_status")).to_have_text("200")
    expect(page.locator(".request-url")).to_contain_text(f"{root}health")
