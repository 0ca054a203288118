"""Activation maximization in headless Chromium: run, watch the image change live, cancel, keep using the page."""
from __future__ import annotations

import re

import pytest

from tests.browser.helpers import click_scatter_point, wait_for_detail, wait_for_scatter

pytestmark = pytest.mark.browser

STEPS = "[id*='maximize-settings-param'][id*='\"name\":\"steps\"']"
WAIT = 240_000  # the shared test box is often loaded far past its two cores
LONG_RUN = 1000  # steps: long enough to watch it and cancel on a fast machine; a preview every 31 steps

IMAGE_VALUES = """() => { const gd = document.querySelector('#maximize-images .js-plotly-plot');
    return gd && gd.data && gd.data.length ? JSON.stringify(gd.data[0].z) : ''; }"""
IMAGES_TITLE = """() => { const gd = document.querySelector('#maximize-images .js-plotly-plot');
    return gd && gd.layout && gd.layout.title ? String(gd.layout.title.text || '') : ''; }"""


def progress(page) -> int:
    return int(page.get_attribute("#maximize-progress", "value") or 0)


def set_steps(page, steps: int) -> None:
    box = page.locator(STEPS)
    box.fill(str(steps))
    box.press("Enter")


def test_a_run_updates_live_and_cancel_keeps_the_last_image(page, server_url):
    page.goto(server_url + "?views=maximize")
    page.wait_for_selector("#maximize-run", timeout=WAIT)
    wait_for_scatter(page, timeout=WAIT)  # the page has loaded: its first jobs are done
    set_steps(page, LONG_RUN)
    page.click("#maximize-run")

    # The first preview: the progress bar moves and the image is drawn with its step.
    page.wait_for_function(f"() => ({IMAGES_TITLE})().includes('/{LONG_RUN}')", timeout=1.5 * WAIT)
    first_image, first_progress = page.evaluate(IMAGE_VALUES), progress(page)
    # A later preview: a different image, further along.
    page.wait_for_function(f"(before) => {{ const now = ({IMAGE_VALUES})(); return now && now !== before; }}",
                           arg=first_image, timeout=WAIT)
    page.wait_for_function(f"(before) => Number(document.querySelector('#maximize-progress').value) > before",
                           arg=first_progress, timeout=WAIT)

    page.click("#maximize-cancel")
    page.wait_for_function("() => document.querySelector('#maximize-message').innerText.includes('Cancelled')",
                           timeout=WAIT)
    assert not page.is_visible("#maximize-progress-block")
    kept_image, kept_title = page.evaluate(IMAGE_VALUES), page.evaluate(IMAGES_TITLE)
    done = int(re.search(rf"step (\d+)/{LONG_RUN}", kept_title).group(1))
    assert 0 < done < LONG_RUN and kept_image
    page.wait_for_timeout(1500)  # no late poll replaces what the cancel left
    assert page.evaluate(IMAGE_VALUES) == kept_image

    # The page stays usable: a short run finishes with its comparison and top-5 ...
    set_steps(page, 16)
    page.click("#maximize-run")
    page.wait_for_selector("#maximize-details .js-plotly-plot", timeout=WAIT)
    assert "step 16/16" in page.evaluate(IMAGES_TITLE)
    assert "best image" in page.text_content("#maximize-details")
    # ... and the scatter still answers a click.
    wait_for_scatter(page, timeout=WAIT)
    clicked = click_scatter_point(page, rank=2)
    wait_for_detail(page, clicked["index"], timeout=WAIT)
    assert not page.errors
