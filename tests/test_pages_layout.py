"""What a person sees at a phone's width (390 px) and a laptop's (1,280 px), in Chromium (see tests/test_browser.py):
no page scrolls sideways, chart labels stay readable, paths wrap between segments, the dashboard's sort column is on
screen and its times name their zone."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from chalicelib.hits import days
from chalicelib.hits.store import HitStore
from chalicelib.process import runtime
from chalicelib.pure import clock
from tests.test_browser import (  # noqa: F401 (fixtures, skip rule)
    WAIT_MS,
    base_url,
    browser,
    expect,
    pytestmark,
)
from tests.test_survey_api import ADMIN_TOKEN, FULL, start, survey  # noqa: F401 (fixture base_url uses)

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}


def phone(chromium: Any, **options: Any) -> Any:
    return chromium.new_context(viewport=PHONE, **options).new_page()


def scrolls_sideways(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth > window.innerWidth"))


def test_no_page_scrolls_sideways_on_a_phone(browser: Any, base_url: str, survey: Any) -> None:  # noqa: F811
    survey.post("/streams/phone/values", {"values": [1.5, 22.25, 3]})
    survey.post("/streams/phone/reset", {"user": "someone-with-a-long-name"})
    survey.get("/api/reports/quarterly-summary/2026/departments/engineering")  # a hit
    page = phone(browser)
    page.goto(f"{base_url}/dashboard")
    expect(page.locator("#token")).to_be_visible(timeout=WAIT_MS)
    assert not scrolls_sideways(page), "the sign-in view"
    page.goto(f"{base_url}/?stream=phone")
    expect(page.locator("#sessions tr")).to_have_count(1, timeout=WAIT_MS)
    assert not scrolls_sideways(page), "the streams page with a past session"
    page.goto(f"{base_url}/ui/metrics?key=phone")
    expect(page.locator("#count")).to_have_text("0", timeout=WAIT_MS)
    assert not scrolls_sideways(page), "the metrics page"
    page.goto(f"{base_url}/ui/hits")
    expect(page.locator("#ranking tr")).to_have_count(1, timeout=WAIT_MS)
    assert not scrolls_sideways(page), "the hits page"


def test_the_metrics_chart_labels_stay_readable_on_a_phone(browser: Any, base_url: str) -> None:  # noqa: F811
    page = phone(browser)
    page.goto(f"{base_url}/ui/metrics?key=phone-chart")
    expect(page.locator("#chart text").first).to_be_attached(timeout=WAIT_MS)
    boxes = page.evaluate(
        "[...document.querySelectorAll('#chart text')].map((t) => t.getBoundingClientRect().toJSON())"
    )
    # 11 px text is at least 9 px tall on screen; a 900-unit drawing scaled to 390 px made it about 5.
    assert boxes and all(box["height"] >= 9 for box in boxes), boxes
    minute_labels = sorted((b for b in boxes if b["top"] > boxes[0]["top"] + 100), key=lambda b: b["left"])
    assert len(minute_labels) >= 2
    for a, b in itertools.pairwise(minute_labels):
        assert a["right"] <= b["left"], "minute labels overlap"


def test_hit_paths_wrap_between_segments_on_a_phone(browser: Any, base_url: str, survey: Any) -> None:  # noqa: F811
    path = "/api/reports/quarterly-summary/2026/departments/engineering-and-operations/north"
    survey.get(path)  # a hit
    page = phone(browser)
    page.goto(f"{base_url}/ui/hits")
    cell = page.locator("td.path button").first
    expect(cell).to_have_text(path + "/", timeout=WAIT_MS)  # as the counter stores it
    # The character before each line break: a slash or a hyphen, never a letter in the middle of a word.
    before_breaks = page.evaluate(
        """(cell) => {
             const before = []; let top = null, previous = null;
             for (const node of cell.childNodes) {
               if (node.nodeType !== Node.TEXT_NODE) continue;
               for (let i = 0; i < node.length; i++) {
                 const range = document.createRange(); range.setStart(node, i); range.setEnd(node, i + 1);
                 const at = Math.round(range.getBoundingClientRect().top);
                 if (top !== null && at > top) before.push(previous);
                 top = at; previous = node.data[i];
               }
             }
             return before; }""",
        cell.element_handle(),
    )
    assert before_breaks, "the path did not wrap at all: the test shows nothing"
    assert set(before_breaks) <= {"/", "-"}, before_breaks


def test_the_dashboard_shows_its_sort_column_at_1280_and_names_the_time_zone(
    browser: Any,  # noqa: F811
    base_url: str,  # noqa: F811
    survey: Any,  # noqa: F811
) -> None:
    start(survey, FULL)
    page = browser.new_context(viewport=LAPTOP, timezone_id="Asia/Kolkata", locale="en-GB").new_page()
    page.goto(f"{base_url}/dashboard")
    page.fill("#token", ADMIN_TOKEN)
    page.click("text=Open dashboard")
    expect(page.locator("#rows tr")).to_have_count(1, timeout=WAIT_MS)
    sorted_by = page.locator('#head th[aria-sort="descending"]')
    expect(sorted_by).to_have_attribute("data-column", "updated_at")
    box = sorted_by.bounding_box()
    wrap = page.locator(".table-wrap").bounding_box()
    assert box["x"] + box["width"] <= wrap["x"] + wrap["width"], "the sort column is behind a sideways scroll"
    assert re.search(r"GMT\+5:30|IST", page.locator("#sum-updated").inner_text())
    assert re.search(r"GMT\+5:30|IST", page.locator('#rows td[data-column="updated_at"]').inner_text())


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_picking_a_path_shows_its_hits_per_day(
    browser: Any,  # noqa: F811
    base_url: str,  # noqa: F811
    survey: Any,  # noqa: F811
    viewport: dict[str, int],
) -> None:
    path = "/api/reports/quarterly-summary/2026/"
    for _ in range(3):
        survey.get(path)  # three hits today
    yesterday = days.counting_day(clock.now() - days.DAY_SECONDS)[0]
    HitStore(runtime.dynamodb(), runtime.table_name()).record(path, yesterday, 0)  # a late one, of yesterday
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{base_url}/ui/hits")
    expect(page.locator("#history")).to_be_hidden()
    page.locator("td.path button", has_text="quarterly-summary").click()
    expect(page.locator("#history-path")).to_have_text(path, timeout=WAIT_MS)
    bars = page.locator("#history-bars div")
    expect(bars).to_have_count(30)
    assert [bars.nth(i).get_attribute("data-count") for i in (28, 29)] == ["1", "3"]
    assert bars.nth(29).get_attribute("data-day") == days.counting_day(clock.now())[0]
    expect(page.locator("#history-total")).to_have_text("4")
    assert page.locator("tr.selected td.path").inner_text().replace("\n", "") == path
    page.select_option("#history-days", "365")
    expect(bars).to_have_count(365, timeout=WAIT_MS)
    assert not scrolls_sideways(page), "365 days of bars"
    heights = page.evaluate("[...document.querySelectorAll('#history-bars div')].slice(-2).map((b) => b.offsetHeight)")
    assert 0 < heights[0] < heights[1], heights  # yesterday's bar is shorter than today's, and drawn
