"""The survey and dashboard pages in a real headless Chromium (Debian's chromium, driven by Playwright).

The app is served over real HTTP by Chalice's LocalDevServer (as `make run` does) in a thread, against the
test's table, so the same tests run on both backends: moto's in-process mock_aws patches botocore for every
thread, and DynamoDB Local is a real server. `make browser-deps` installs /usr/bin/chromium.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_survey_api import ADMIN, ADMIN_TOKEN, FULL, patch, start, survey  # noqa: F401 (fixture)

CHROMIUM = Path("/usr/bin/chromium")
# Once, on DynamoDB Local (what `make run` serves): a page exercises the API as any client does, and the browser is
# the suite's costliest process.
pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (run `make browser-deps`)"
    ),
    pytest.mark.heavy,
]
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


@contextlib.contextmanager
def serving(app: Any, chalice_config: Any) -> Iterator[str]:
    """`app` over HTTP in Chalice's LocalDevServer (as `make run` serves it) on a free port: its base URL."""
    from chalice.local import LocalDevServer

    from devtools.dev_http import DevRequestHandler

    class QuietHandler(DevRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # a page's late poll would print its access line between pytest's own

    server = LocalDevServer(app, chalice_config, "127.0.0.1", 0, handler_cls=QuietHandler)
    thread = threading.Thread(target=server.server.serve_forever, name="browser-test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(5)


@pytest.fixture
def base_url(survey: Any, chalice_config: Any) -> Iterator[str]:  # noqa: F811
    """The app over HTTP on a free port, using this test's table (and admin token)."""
    with serving(chalice_config.chalice_app, chalice_config) as url:
        yield url


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
    expect(row.locator('td[data-column="colours"]')).to_have_text("Green, Blue")
    expect(dashboard.locator("#sum-completed")).to_have_text("1")
    expect(dashboard.locator("#sum-colours")).to_contain_text("Blue (1)")
    expect(dashboard.locator("#sum-colours")).to_contain_text("Green (1)")
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
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("#notice")).to_be_hidden()  # a first visit has nothing to restore
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
    expect(page.locator("#notice")).to_have_text(
        "Welcome back: your answers were restored, and you are on step 2 of 4."
    )
    page.click("#previous")
    expect(page.locator("#notice")).to_be_hidden()  # moving on dismisses it
    expect(page.locator("#name")).to_have_value("Rey Sume")
    page.click("#next")
    page.fill("#about", "Back again.")
    page.click("#next")
    page.click("#next")
    expect(page.locator("#step-label")).to_have_text("Step 4 of 4")
    page.click("#next")
    expect(page.locator("#thanks")).to_be_visible()
    # One response per email: the page says it is recorded and does not invite another.
    expect(page.locator("#thanks")).to_contain_text("Your response is recorded.")
    expect(page.locator("#thanks")).to_contain_text("Each email address answers the survey once")
    expect(page.get_by_role("button", name=re.compile("new response", re.I))).to_have_count(0)

    page.close()
    page = context.new_page()  # a new tab of the same browser
    page.goto(f"{base_url}/survey")
    expect(page.locator("#submitted")).to_contain_text("Survey already submitted.")
    expect(page.locator("#submitted")).to_contain_text("your response is recorded")
    expect(page.locator("#survey")).to_be_hidden()
    expect(page.get_by_role("button", name=re.compile("new response", re.I))).to_have_count(0)
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


# --- what a person sees: sizes, contrast, labels, notices -------------------------------------------------------

# 2,000 characters of ordinary words (the most the survey allows) and a 300-character address.
LONG_ABOUT = ("I live in Springfield, walk by the river and read about numbers. " * 40)[:2000].rstrip() + "."
LONG_ADDRESS = ("742 Evergreen Terrace, Springfield, " * 10)[:300]
ROW_MAX_PX = 160  # the cap is 3 lines plus a "Show all" link
COLUMN_MIN_PX = {"name": 100, "email": 140, "about": 220, "address": 140, "gender": 90, "book": 100, "colours": 100}
WIDE_PX = 1440  # the dashboard's widest layout: the default columns fit without scrolling sideways

# WCAG 2 contrast of an element's text against the background it is painted on (the first ancestor with one),
# from the computed styles; opacity anywhere up the tree would change both, so it is reported too.
CONTRAST_JS = """(el) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let back = el, opacity = 1;
  for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
  while (back && (rgb(getComputedStyle(back).backgroundColor)[3] ?? 1) === 0) back = back.parentElement;
  const fg = lum(rgb(getComputedStyle(el).color)), bg = lum(rgb(back ? getComputedStyle(back).backgroundColor : "rgb(255,255,255)"));
  return { ratio: (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05), opacity };
}"""
LOOK_JS = "(el) => { const s = getComputedStyle(el); return [s.backgroundColor, s.color, s.borderTopStyle]; }"


def assert_readable(page: Any, selector: str) -> None:
    measured = page.locator(selector).evaluate(CONTRAST_JS)
    assert measured["opacity"] == 1 and measured["ratio"] >= 4.5, (selector, measured)


def test_a_2000_character_answer_keeps_its_row_short_and_its_words_whole(
    browser: Any,
    base_url: str,
    survey: Any,  # noqa: F811
) -> None:
    rid, _ = start(survey, {**FULL, "name": "Long Answer", "about": LONG_ABOUT, "address": LONG_ADDRESS})
    start(survey, {**FULL, "name": "Short Answer", "email": "short@example.com"})
    dashboard = open_dashboard(browser, base_url)
    dashboard.set_viewport_size({"width": 1280, "height": 900})
    row = dashboard.locator(f'#rows tr[data-id="{rid}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    assert row.bounding_box()["height"] < ROW_MAX_PX
    for column, least in COLUMN_MIN_PX.items():
        width = dashboard.locator(f'th[data-column="{column}"]').bounding_box()["width"]
        assert width >= least, (column, width)
    dashboard.set_viewport_size({"width": WIDE_PX, "height": 900})
    scroll = dashboard.locator(".table-wrap").evaluate("(wrap) => [wrap.scrollWidth, wrap.clientWidth]")
    assert scroll[0] <= scroll[1], scroll
    dashboard.set_viewport_size({"width": 1280, "height": 900})
    # Every "Springfield" in the capped cells is laid out on one line: no word breaks in the middle.
    pieces = row.evaluate(
        """(tr) => [...tr.querySelectorAll('td.long .cell')].flatMap((cell) => {
             const text = cell.firstChild, found = [];
             for (let i = text.data.indexOf('Springfield'); i >= 0; i = text.data.indexOf('Springfield', i + 1)) {
               const range = document.createRange(); range.setStart(text, i); range.setEnd(text, i + 11);
               found.push(range.getClientRects().length);
             }
             return found;
           })"""
    )
    assert len(pieces) > 20 and set(pieces) == {1}, pieces

    # The whole answer is one click away, and stays open while the table refreshes.
    about = row.locator('td[data-column="about"]')
    about.get_by_role("button", name="Show all").click()
    expect(about.locator(".cell")).to_have_text(LONG_ABOUT)
    # Opened, it shows 20 lines and scrolls for the rest: taller than the cap, still far from a page of its own.
    opened = about.locator(".cell").evaluate("(c) => [c.clientHeight, c.scrollHeight, getComputedStyle(c).overflowY]")
    height = row.bounding_box()["height"]
    assert 2 * ROW_MAX_PX < height < 4 * ROW_MAX_PX and opened[2] == "auto" and opened[1] > opened[0], (height, opened)
    about.locator(".cell").evaluate("(c) => { c.scrollTop = c.scrollHeight; }")
    expect(about.locator(".cell")).to_have_js_property("scrollTop", opened[1] - opened[0])
    start(survey, {"name": "Newcomer"})
    expect(dashboard.locator("#rows")).to_contain_text("Newcomer", timeout=WAIT_MS)
    expect(about.get_by_role("button", name="Show less")).to_be_visible()
    about.get_by_role("button", name="Show less").click()
    assert row.bounding_box()["height"] < ROW_MAX_PX
    # A short answer has nothing to open.
    short = dashboard.locator("#rows tr", has_text="Short Answer")
    expect(short.get_by_role("button", name="Show all")).to_have_count(0)


def test_buttons_reach_aa_contrast_and_enabled_differs_from_disabled(
    browser: Any,
    base_url: str,
    survey: Any,  # noqa: F811
) -> None:
    for n in range(11):
        start(survey, {"name": f"Person {n}"})
    dashboard = open_dashboard(browser, base_url)
    dashboard.select_option("#page-size", "10")
    expect(dashboard.locator("#page-info")).to_contain_text("Page 1 of 2", timeout=WAIT_MS)
    for selector in ("#pause", "#sign-out", "#prev-page", "#next-page", "#rows button.delete >> nth=0"):
        assert_readable(dashboard, selector)
    assert_readable(dashboard, 'th[data-column="name"] button')
    expect(dashboard.locator("#prev-page")).to_be_disabled()
    expect(dashboard.locator("#next-page")).to_be_enabled()
    enabled, disabled = (dashboard.locator(s).evaluate(LOOK_JS) for s in ("#next-page", "#prev-page"))
    assert enabled[0] != disabled[0] and enabled[2] != disabled[2], (enabled, disabled)

    person = browser.new_context().new_page()
    person.goto(f"{base_url}/survey")
    person.wait_for_selector("body[data-ready]")
    expect(person.locator("#previous")).to_be_disabled()
    for selector in ("#previous", "#next"):
        assert_readable(person, selector)
    enabled, disabled = (person.locator(s).evaluate(LOOK_JS) for s in ("#next", "#previous"))
    assert enabled[0] != disabled[0] and enabled[2] != disabled[2], (enabled, disabled)
    person.fill("#name", "Con Trast")
    person.fill("#email", "con@example.com")
    person.click("#next")
    expect(person.locator("#previous")).to_be_enabled()
    assert_readable(person, "#previous")
    assert person.locator("#previous").evaluate(LOOK_JS) != disabled


def test_table_legend_and_top_colours_use_the_same_labels(
    browser: Any,
    base_url: str,
    survey: Any,  # noqa: F811
) -> None:
    dashboard = open_dashboard(browser, base_url)
    # Nothing chosen yet: a sentence, not "1. —".
    expect(dashboard.locator("#sum-colours-empty")).to_have_text("No colours chosen yet.")
    expect(dashboard.locator("#sum-colours")).to_be_hidden()
    expect(dashboard.locator("#sum-colours-note")).to_be_hidden()

    start(survey, {"name": "Xavier", "gender": "non-binary", "colours": ["blue", "red"]})
    start(survey, {"name": "Yolanda", "gender": "female", "colours": ["red", "blue", "green"]})
    start(survey, {"name": "Zed", "gender": "prefer not to say", "colours": ["yellow"]})
    expect(dashboard.locator("#sum-responses")).to_have_text("3", timeout=WAIT_MS)
    genders = {"Xavier": "non-binary", "Yolanda": "female", "Zed": "prefer not to say"}
    for name, gender in genders.items():
        shown = dashboard.locator("#rows tr", has_text=name).locator('td[data-column="gender"]').inner_text()
        legend = dashboard.locator(f'#pie-legend li[data-gender="{gender}"] .label').inner_text()
        assert shown == legend and shown[0].isupper(), (shown, legend)
    top = dashboard.locator("#sum-colours li .label").all_inner_texts()
    assert top == ["Blue", "Red", "Green"]
    in_table = dashboard.locator('#rows tr:has-text("Yolanda") td[data-column="colours"]').inner_text()
    assert set(in_table.split(", ")) == {"Red", "Blue", "Green"}
    # Blue and Red tie (2 each): they share first place, Green is third, and the cut is explained.
    places = dashboard.locator("#sum-colours li").evaluate_all("(items) => items.map((li) => li.value)")
    assert places == [1, 1, 3]
    expect(dashboard.locator("#sum-colours-note")).to_contain_text("the list stops at 3, even within a tie")
    expect(dashboard.locator("#sum-colours-empty")).to_be_hidden()


def test_a_wrong_admin_token_stays_in_the_field_to_be_corrected(browser: Any, base_url: str) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/dashboard")
    page.fill("#token", ADMIN_TOKEN + "x")
    page.click("text=Open dashboard")
    expect(page.locator("#login-error")).to_have_text("The admin token is not valid.", timeout=WAIT_MS)
    expect(page.locator("#token")).to_have_value(ADMIN_TOKEN + "x")
    page.press("#token", "End")
    page.press("#token", "Backspace")
    page.click("text=Open dashboard")
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT_MS)
    expect(page.locator("#token")).to_have_value("")  # accepted: not left in the form


def test_the_respondent_page_has_a_title_an_introduction_and_no_internal_links(browser: Any, base_url: str) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/survey")
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("h1")).to_have_text("A short survey about you")
    expect(page.locator(".intro")).to_contain_text("Four short steps")
    expect(page.locator("nav")).to_have_count(0)
    expect(page.locator("a")).to_have_count(0)
    assert "/dashboard" not in page.content()


def test_an_email_already_used_is_shown_on_the_email_field(
    browser: Any,
    base_url: str,
    survey: Any,  # noqa: F811
) -> None:
    """The page against the survey's one-response-per-email rule (409 `email_taken` on `email`), for a start and
    for a change."""
    taken = "taken@example.com"
    start(survey, {"email": "Taken@Example.com"})  # someone else's response holds it
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/survey")
    page.wait_for_selector("body[data-ready]")
    sentence = (
        "This email address has already answered the survey. Each email answers once: please use another address."
    )
    with saved(page) as response:  # a start with it
        page.fill("#email", taken)
    assert response.value.status == 409
    expect(page.locator("#error-email")).to_have_text(sentence)
    with saved(page):
        page.fill("#name", "Tak En")
    page.fill("#email", "fresh@example.com")
    expect(page.locator("#error-email")).to_have_text("")
    page.click("#next")
    expect(page.locator("#step-label")).to_have_text("Step 2 of 4")
    page.click("#previous")
    sends_taken = lambda r: r.request.method == "PATCH" and taken in (r.request.post_data or "")  # noqa: E731
    with page.expect_response(sends_taken, timeout=WAIT_MS) as response:  # a change to it
        page.fill("#email", taken)
    assert response.value.status == 409 and response.value.request.method == "PATCH"
    expect(page.locator("#error-email")).to_have_text(sentence)
    page.click("#next")  # blocked, not mistaken for "already submitted"
    expect(page.locator("#step-label")).to_have_text("Step 1 of 4")
    expect(page.locator("#survey")).to_be_visible()


def test_a_deleted_response_is_explained_and_the_survey_starts_afresh(
    browser: Any,
    base_url: str,
    survey: Any,  # noqa: F811
) -> None:
    rid, headers = start(survey, {**FULL, "step": 4})
    assert patch(survey, rid, {"complete": True}, headers).status_code == 200
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/survey")
    saved_pair = json.dumps({"id": rid, "token": headers["X-Response-Token"]})
    page.evaluate("(value) => localStorage.setItem('livestats.survey', value)", saved_pair)
    page.reload()
    expect(page.locator("#submitted")).to_be_visible()

    assert survey.delete(f"/dashboard/responses/{rid}", headers=ADMIN).status_code == 200
    page.reload()
    expect(page.locator("#notice")).to_have_text(
        "Your earlier response was removed by the survey's administrator, so this is a fresh start."
    )
    expect(page.locator("#step-label")).to_have_text("Step 1 of 4")
    expect(page.locator("#name")).to_have_value("")
    assert page.evaluate("localStorage.getItem('livestats.survey')") is None
    with saved(page) as response:
        page.fill("#name", "Ann Again")
    assert response.value.status == 201 and response.value.json()["id"] != rid


def test_a_response_deleted_while_the_page_is_open_is_saved_again_and_said(
    browser: Any,
    base_url: str,
    survey: Any,  # noqa: F811
) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/survey")
    with saved(page) as response:
        page.fill("#name", "Del Eted")
    rid = response.value.json()["id"]
    assert survey.delete(f"/dashboard/responses/{rid}", headers=ADMIN).status_code == 200
    with page.expect_response(lambda r: r.request.method == "POST" and r.status == 201, timeout=WAIT_MS) as again:
        page.fill("#email", "del@example.com")
    assert again.value.json()["answers"]["name"] == "Del Eted" and again.value.json()["id"] != rid
    expect(page.locator("#notice")).to_contain_text("removed by the survey's administrator")


def test_the_dashboard_marks_the_unique_field(browser: Any, base_url: str, survey: Any) -> None:  # noqa: F811
    dashboard = open_dashboard(browser, base_url)
    marks = dashboard.locator("#head th .unique")
    expect(marks).to_have_count(1)
    expect(dashboard.locator('#head th[data-column="email"] .unique')).to_have_text("unique")
    assert_readable(dashboard, '#head th[data-column="email"] .unique')
