"""The metrics page shows the last hour's quantiles, in a real headless Chromium (see tests/test_browser.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_browser import WAIT_MS, base_url, browser, expect, pytestmark  # noqa: F401 (fixtures, skip marker)
from tests.test_survey_api import survey  # noqa: F401 (fixture of base_url)


def test_the_metrics_page_shows_the_quantiles_of_the_values_posted(browser: Any, base_url: str) -> None:  # noqa: F811
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/ui/metrics?key=page-latency")
    expect(page.locator("#count")).to_have_text("0", timeout=WAIT_MS)
    expect(page.locator("#p99")).to_have_text("—")
    # Typed one after another, without waiting for the answers: the field is free for the next value at once.
    posts = []
    for value in ("100", "100", "100", "-7", "0"):
        expect(page.locator("#value")).to_have_value("")
        page.fill("#value", value)
        with page.expect_response(lambda r: r.request.method == "POST", timeout=WAIT_MS) as posted:
            page.press("#value", "Enter")
        posts.append(posted)
    assert all(p.value.status == 200 for p in posts)
    expect(page.locator("#count")).to_have_text("5", timeout=WAIT_MS)
    # Lower quantiles of [-7, 0, 100, 100, 100]: p50 is 100 (within 1%: DDSketch's bin value 99.99...), p99 too.
    for q in ("p50", "p90", "p99"):
        assert abs(float(page.locator(f"#{q}").inner_text().replace(",", "")) - 100) <= 1
    expect(page.locator("#error")).to_have_text("")
    # A refused value comes back to the field, with the service's reason.
    page.fill("#value", "1e20")
    page.press("#value", "Enter")
    expect(page.locator("#error")).to_contain_text("less than or equal to", timeout=WAIT_MS)
    expect(page.locator("#value")).to_have_value("1e20")
    expect(page.locator("#count")).to_have_text("5")


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}], ids=["desktop", "phone"]
)
def test_the_history_draws_the_range_picked_with_its_p50_p99_band(
    browser: Any,  # noqa: F811
    base_url: str,  # noqa: F811
    viewport: dict[str, int],
) -> None:
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{base_url}/ui/metrics?key=history-{viewport['width']}")
    expect(page.locator("#history-count")).to_have_text("0", timeout=WAIT_MS)
    for value in ("10", "20", "1000"):
        page.fill("#value", value)
        with page.expect_response(lambda r: "/series?" in r.url, timeout=WAIT_MS):
            page.press("#value", "Enter")
    for choice, step in (("3600,60", "60"), ("604800,3600", "3600"), ("7776000,86400", "86400")):
        with page.expect_response(lambda r, step=step: f"step={step}&" in r.url, timeout=WAIT_MS) as answered:
            page.select_option("#range", choice)
        assert answered.value.status == 200
        expect(page.locator("#history-count")).to_have_text("3", timeout=WAIT_MS)
        assert page.locator("#history path.mean").get_attribute("d")
        assert page.locator("#history path.band").get_attribute("d")  # the p50-p99 band of the values' bucket
    with page.expect_response(lambda r: "/series?" in r.url and "q=" not in r.url, timeout=WAIT_MS):
        page.uncheck("#band")
    expect(page.locator("#history path.band")).to_have_count(0)
    expect(page.locator("#band-key")).to_be_hidden()
    expect(page.locator("#error")).to_have_text("")
    width = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1]  # nothing wider than the screen, on a phone too


def test_the_metrics_page_lists_the_keys_that_hold_values(browser: Any, base_url: str, dynamodb: Any) -> None:  # noqa: F811
    from chalicelib.metrics import compaction
    from chalicelib.metrics.store import SumStore
    from chalicelib.pure import clock
    from tests.conftest import TABLE

    store = SumStore(dynamodb, TABLE)
    for key in ("page:a", "page:b", "zz"):
        store.post(key, 5, clock.now_ms())
    compaction.compact(store, clock.now_ms() + 3 * 60_000)
    page = browser.new_context().new_page()
    page.goto(f"{base_url}/ui/metrics?key=page:a")
    expect(page.locator("#keys-list li a")).to_have_text(["page:a", "page:b", "zz"], timeout=WAIT_MS)
    page.fill("#keys-prefix", "page:")
    page.press("#keys-prefix", "Enter")
    expect(page.locator("#keys-list li a")).to_have_text(["page:a", "page:b"], timeout=WAIT_MS)
    page.click("#keys-list a >> nth=1")
    expect(page.locator("#key")).to_have_value("page:b", timeout=WAIT_MS)
