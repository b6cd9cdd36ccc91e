"""The survey and dashboard pages in a real headless Chromium (Debian's chromium, driven by Playwright).

The app is served over real HTTP by Chalice's LocalDevServer (as `make run` does) in a thread, against the
test's table, so the same tests run on both backends: moto's in-process mock_aws patches botocore for every
thread, and DynamoDB Local is a real server. `make browser-deps` installs /usr/bin/chromium.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_survey_api import ADMIN_TOKEN, survey  # noqa: F401 (fixture)

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (run `make browser-deps`)"
)
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 5000  # upper bound for auto-waiting assertions, not a measured time


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh temporary user-data-dir.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def base_url(survey: Any, chalice_config: Any) -> Iterator[str]:  # noqa: F811
    """The app over HTTP on a free port, using this test's table (and admin token)."""
    from chalice.local import LocalDevServer

    from devtools.devserver import DevRequestHandler

    server = LocalDevServer(chalice_config.chalice_app, chalice_config, "127.0.0.1", 0, handler_cls=DevRequestHandler)
    thread = threading.Thread(target=server.server.serve_forever, name="browser-test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(5)


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def open_dashboard(browser: Any, base_url: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/dashboard")
    page.fill("#token", ADMIN_TOKEN)
    page.click("text=Open dashboard")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    return page


def saved(page: Any) -> Any:
    """Context manager: wait for the survey's next save to be answered."""
    return page.expect_response(
        lambda r: "/survey/responses" in r.url and r.request.method in ("POST", "PATCH"), timeout=WAIT_MS
    )


def test_survey_in_one_context_while_the_dashboard_updates_in_another(browser: Any, base_url: str) -> None:
    dashboard = open_dashboard(browser, base_url)
    expect(dashboard.locator("#rows")).to_contain_text("No responses yet.")
    person = browser.new_context().new_page()
    person.goto(f"{base_url}/survey")

    # Typed, not yet submitted: the dashboard shows it (debounced save + 1 s poll).
    person.locator("#name").press_sequentially("Zoë Browser", delay=20)
    expect(dashboard.locator("#rows")).to_contain_text("Zoë Browser", timeout=WAIT_MS)
    row = dashboard.locator("#rows tr", has_text="Zoë Browser")
    expect(row.locator('td[data-column="completed"]')).to_have_text("no")
    expect(dashboard.locator("#sum-responses")).to_have_text("1")

    person.fill("#email", "zoe@example.com")
    person.click("#next")
    expect(person.locator("#step-label")).to_have_text("Step 2 of 4")
    person.select_option("#age", "42")
    person.fill("#about", "I test things.")
    expect(dashboard.locator("#sum-age")).to_have_text("42.0", timeout=WAIT_MS)
    person.click("#next")
    person.fill("#address", "1 Test Lane")
    person.check('input[name="gender"][value="female"]')
    person.click("#next")
    expect(person.locator("#step-label")).to_have_text("Step 4 of 4")
    person.fill("#book", "Dune")
    person.check('input[name="colours"][value="blue"]')
    person.check('input[name="colours"][value="green"]')
    person.click("#next")  # SUBMIT
    expect(person.locator("#thanks")).to_contain_text("Thank you")

    expect(row.locator('td[data-column="completed"]')).to_have_text("✓ yes", timeout=WAIT_MS)
    expect(row.locator('td[data-column="colours"]')).to_have_text("green, blue")
    expect(dashboard.locator("#sum-completed")).to_have_text("1")
    expect(dashboard.locator("#sum-colours")).to_contain_text("blue (1)")
    expect(dashboard.locator("#sum-colours")).to_contain_text("green (1)")
    expect(dashboard.locator("#sum-responses")).to_have_attribute("title", "Exactly 1 response")
    assert ADMIN_TOKEN not in dashboard.content()

    # The pie: one slice, hover tooltip, click for the count.
    slice_ = dashboard.locator('#pie .slice[data-gender="female"]')
    slice_.hover()
    expect(dashboard.locator("#pie-tooltip")).to_have_text("Female: 100.0%")
    slice_.click()
    expect(dashboard.locator("#pie-detail")).to_have_text("Female: 1 of 1 answers (100.0%)")

    # Pause, then resume: the status follows (what a paused poll does not show cannot be asserted without sleeping).
    dashboard.click("#pause")
    expect(dashboard.locator("#live-status")).to_have_text("Paused")
    dashboard.click("#pause")
    expect(dashboard.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)

    # Sort by clicking a header; hide a column with the chooser.
    dashboard.click('th[data-column="name"] button')
    expect(dashboard.locator('th[data-column="name"]')).to_have_attribute("aria-sort", "ascending")
    dashboard.click("#columns summary")
    dashboard.uncheck('#column-choices input[value="about"]')
    expect(dashboard.locator('th[data-column="about"]')).to_have_count(0)

    # Delete after confirming.
    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    dashboard.on("dialog", accept)
    row.locator("button.delete").click()
    expect(dashboard.locator("#rows")).to_contain_text("No responses yet.", timeout=WAIT_MS)
    expect(dashboard.locator("#sum-responses")).to_have_text("0")
    assert messages and "Zoë Browser" in messages[0]


def test_closing_and_reopening_resumes_then_says_already_submitted(browser: Any, base_url: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base_url}/survey")
    page.fill("#name", "Rey Sume")
    page.fill("#email", "rey@example.com")
    page.click("#next")
    expect(page.locator("#step-label")).to_have_text("Step 2 of 4")
    with saved(page):
        page.select_option("#age", "30")
    page.close()

    # Close the browser (keep only what it stores on disk) and come back.
    state = context.storage_state()
    context.close()
    assert any(
        item["name"] == "livestats.survey" for origin in state["origins"] for item in origin.get("localStorage", [])
    )
    context = browser.new_context(storage_state=state)
    page = context.new_page()
    page.goto(f"{base_url}/survey")
    expect(page.locator("#step-label")).to_have_text("Step 2 of 4")
    expect(page.locator("#age")).to_have_value("30")
    page.click("#previous")
    expect(page.locator("#name")).to_have_value("Rey Sume")
    page.click("#next")
    page.fill("#about", "Back again.")
    page.click("#next")
    page.click("#next")
    expect(page.locator("#step-label")).to_have_text("Step 4 of 4")
    page.click("#next")
    expect(page.locator("#thanks")).to_be_visible()

    page.close()
    page = context.new_page()  # a new tab of the same browser
    page.goto(f"{base_url}/survey")
    expect(page.locator("#submitted")).to_contain_text("Survey already submitted.")
    expect(page.locator("#survey")).to_be_hidden()
    context.close()


def test_a_bad_email_shows_the_servers_message_beside_the_field(browser: Any, base_url: str) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/survey")
    with saved(page):
        page.fill("#name", "Ema Il")
    with saved(page) as response:
        page.fill("#email", "not-an-email")
    error = json.loads(response.value.body())["error"]
    assert response.value.status == 400 and error["field"] == "email"
    expect(page.locator("#error-email")).to_have_text(error["message"])
    expect(page.locator("#error-email")).to_contain_text("valid email address")
    page.click("#next")  # blocked: the answer is invalid
    expect(page.locator("#step-label")).to_have_text("Step 1 of 4")
    # Fixing it clears the message and lets the person on.
    page.fill("#email", "ema@example.com")
    expect(page.locator("#error-email")).to_have_text("")
    page.click("#next")
    expect(page.locator("#step-label")).to_have_text("Step 2 of 4")
    # The page's own check for a required field.
    page.click("#next")
    expect(page.locator("#error-age")).to_have_text("Age is required.")


def test_pages_load_no_outside_resources(browser: Any, base_url: str) -> None:
    page = browser.new_context().new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    for path in ("/survey", "/dashboard"):
        page.goto(f"{base_url}{path}")
    assert requested and all(url.startswith(base_url) for url in requested), requested
    with urllib.request.urlopen(f"{base_url}/survey") as response:  # plain HTTP works too
        assert re.search(rb"<title>livestats", response.read())


@pytest.mark.parametrize(
    "path,fetches_on_load",
    [("/", True), ("/ui/hits", True), ("/ui/metrics", True), ("/survey", False), ("/dashboard", False)],
)
def test_every_page_runs_under_its_content_security_policy(
    browser: Any, base_url: str, path: str, fetches_on_load: bool
) -> None:
    page = browser.new_context().new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: refused.append(str(e)))
    if fetches_on_load:  # its script ran: it asked the API for data
        with page.expect_response(lambda r: "/assets/" not in r.url and r.url != f"{base_url}{path}"):
            response = page.goto(f"{base_url}{path}")
    else:
        response = page.goto(f"{base_url}{path}")
        page.wait_for_load_state("load")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert not [text for text in refused if "Content Security Policy" in text or "Refused" in text], refused


def test_docs_renders_the_contract_under_the_content_security_policy(browser: Any, base_url: str) -> None:
    page = browser.new_context().new_page()
    refused: list[str] = []
    requested: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: refused.append(str(e)))
    page.on("request", lambda r: requested.append(r.url))
    # Every violation, reported or not (an init script is not subject to the page's policy).
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    response = page.goto(f"{base_url}/docs")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".opblock-summary-path", has_text="/averages/{key}").first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".version-stamp", has_text="OAS 3.1")).to_be_visible()
    # Open one operation: its parameters and schema render.
    page.locator(".opblock-summary", has_text="/streams/{stream}/values").first.click()
    expect(page.locator(".parameters-container").first).to_contain_text("stream", timeout=WAIT_MS)
    operations = page.locator(".opblock").count()
    assert operations >= 30, operations
    assert page.evaluate("window.violations") == []
    assert not refused, refused
    assert requested and all(url.startswith(base_url) for url in requested), requested
