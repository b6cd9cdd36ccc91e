"""The streams page in Chromium shows the session's quantiles, and a closed session's (see tests/test_browser.py)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.test_browser import WAIT_MS, base_url, browser, expect, pytestmark  # noqa: F401 (fixtures, skip rule)
from tests.test_survey_api import survey  # noqa: F401 (fixture base_url uses)


def test_the_page_shows_the_quantiles_of_the_active_and_closed_sessions(browser: Any, base_url: str) -> None:  # noqa: F811
    page = browser.new_context(timezone_id="Asia/Kolkata", locale="en-GB").new_page()
    page.goto(f"{base_url}/?stream=page-quantiles")
    expect(page.locator("#session")).to_have_text("no values yet", timeout=WAIT_MS)
    expect(page.locator('[data-figure="p50"] b')).to_have_text("—")
    page.fill("#numbers", "1, 2, 3, 4, 1000")
    page.click("#submit button[type=submit]")
    # The lower quantiles of 1, 2, 3, 4, 1000: p50 is 3 and p99 (rank floor(0.99 * 4) = 3) is 4, each within 1%
    # (a bin's representative value), shown to 4 significant digits with the exact value as the title.
    p50 = page.locator('[data-figure="p50"] b')
    expect(p50).to_have_text("2.974", timeout=WAIT_MS)
    with urllib.request.urlopen(f"{base_url}/streams/page-quantiles") as response:
        sent = json.load(response)
    expect(p50).to_have_attribute("title", repr(sent["quantiles"]["p50"]))  # 2.974233423...: as JSON carried it
    expect(page.locator('[data-figure="mean"] b')).to_have_text("202")
    p99 = float(page.locator('[data-figure="p99"] b').inner_text())
    assert abs(p99 - 4) <= 0.04
    # The histogram from the sketch's bins: 1 to 4 in the first of 30 bars from 1 to 1000, 1000 in the last.
    bars = page.locator("#histogram rect")
    expect(bars).to_have_count(2, timeout=WAIT_MS)
    assert [bars.nth(i).get_attribute("data-count") for i in range(2)] == ["4", "1"]
    expect(page.locator("#histogram text")).to_have_text(["1", "1,000"])
    # Times in the reader's zone, named; the ISO time as sent is the title.
    expect(page.locator("#updated")).to_contain_text("GMT+5:30")
    expect(page.locator("#audit tr td").nth(2)).to_contain_text("GMT+5:30")
    page.click("#reset")
    expect(page.locator("#sessions tr td").nth(4)).to_have_text("2.974", timeout=WAIT_MS)
    expect(page.locator("#sessions tr td").nth(7)).to_contain_text("GMT+5:30")
    expect(page.locator('[data-figure="p50"] b')).to_have_text("—", timeout=WAIT_MS)


def test_where_writes_need_a_token_the_page_asks_for_it_once_and_sends_it(
    browser: Any,  # noqa: F811
    base_url: str,  # noqa: F811
    env: Any,
) -> None:
    env.set("WRITE_ACCESS", "token")
    env.set("WRITE_TOKEN", "page-write-token-0123456789abcdef")
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/?stream=page-token")
    expect(page.locator("#write-token")).to_be_hidden()
    page.fill("#numbers", "5")
    page.click("#submit button[type=submit]")
    expect(page.locator("#write-token")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#error")).to_contain_text("needs a write token")
    expect(page.locator("#session")).to_have_text("no values yet")  # the 401 changed nothing
    page.fill("#write-token-value", "a-wrong-token")
    page.click("#write-token button")
    page.fill("#numbers", "5")
    page.click("#submit button[type=submit]")
    expect(page.locator("#write-token")).to_be_visible(timeout=WAIT_MS)  # refused: asked again
    page.fill("#write-token-value", "page-write-token-0123456789abcdef")
    page.click("#write-token button")
    expect(page.locator("#write-token")).to_be_hidden()
    page.fill("#numbers", "5, 7")
    page.click("#submit button[type=submit]")
    expect(page.locator('[data-figure="count"] b')).to_have_text("2", timeout=WAIT_MS)
    page.click("#reset")  # the token is kept for the tab's later writes
    expect(page.locator("#sessions tr")).to_have_count(1, timeout=WAIT_MS)


def test_the_page_lists_the_streams_that_exist_with_a_prefix_and_more(browser: Any, base_url: str) -> None:  # noqa: F811
    for n in range(23):
        body = json.dumps({"value": n}).encode()
        request = urllib.request.Request(
            f"{base_url}/streams/list-{n:02d}/values", data=body, headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request).close()
    urllib.request.urlopen(
        urllib.request.Request(
            f"{base_url}/streams/other/values", data=b'{"value": 1}', headers={"Content-Type": "application/json"}
        )
    ).close()
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/?stream=list-00")
    names = page.locator("#streams-list li a")
    expect(names).to_have_count(20, timeout=WAIT_MS)  # the first page of 24
    expect(names.first).to_have_text("list-00")
    page.click("#more-streams")
    expect(names).to_have_count(24, timeout=WAIT_MS)
    expect(page.locator("#more-streams")).to_be_hidden()
    page.fill("#streams-prefix", "oth")
    page.click("#streams-filter button")
    expect(names).to_have_text(["other"], timeout=WAIT_MS)
    page.click("#streams-list a")  # a name opens its figures
    expect(page.locator("#stream")).to_have_value("other", timeout=WAIT_MS)
    expect(page.locator('[data-figure="count"] b')).to_have_text("1", timeout=WAIT_MS)
