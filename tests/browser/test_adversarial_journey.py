"""Adversarial examples in headless Chromium: attack the selected image, watch it jump in the scatter, and open
every panel for the attacked image."""
from __future__ import annotations

import re

import pytest

from tests.browser.helpers import wait_for_detail, wait_for_scatter

pytestmark = pytest.mark.browser

WAIT = 120_000
CANDIDATES = (21, 24, 28, 34, 35, 37, 39, 42, 51)  # test-split images; the first FGSM fools is used

SUBPLOT_TITLES = """() => { const gd = document.querySelector('#adversarial-figure .js-plotly-plot');
    return gd && gd.layout && gd.layout.annotations ? gd.layout.annotations.map(a => String(a.text)) : []; }"""
MARKS = """() => { const gd = document.querySelector('#scatter .js-plotly-plot');
    const find = name => (gd && gd.data || []).find(t => t.name === name) || {x: []};
    return {stars: find('highlight-new').x.length, lines: find('highlight-lines').x.filter(x => x !== null).length}; }"""


@pytest.fixture(scope="module")
def fooled_index(trained_model):
    """A test image that FGSM at 32/255 fools on the built-in model, found with the job itself."""
    from compute.jobs.table import run
    from compute.specs.source import Source

    for index in CANDIDATES:
        result = run(Source(), "adversarial.attack", {"index": index, "method": "fgsm", "epsilon": 32 / 255})
        if result["fooled"]:
            return index
    pytest.fail(f"FGSM at 32/255 fools none of the test images {CANDIDATES}")


def predicted_classes(titles: list[str]) -> tuple[str, str]:
    """The class names in the panel's "original: “7” 99.1%" and "adversarial: “3” 80.2%" titles."""
    original, adversarial = (re.search(r"“(.+?)”", text).group(1) for text in (titles[0], titles[2]))
    return original, adversarial


def test_fgsm_flips_the_image_marks_its_jump_and_opens_every_panel_for_it(page, server_url, fooled_index):
    page.goto(server_url + f"?sample={fooled_index}&views=adversarial")
    wait_for_detail(page, fooled_index, timeout=WAIT)
    wait_for_scatter(page)  # marks are drawn onto the scatter that is there: wait for the real one first
    # Opening the view attacks the selected image at once, at the default 8/255.
    page.wait_for_function(f"() => ({SUBPLOT_TITLES})().some(t => t.includes('ε = 8/255'))", timeout=WAIT)

    epsilon = page.locator("#adversarial-epsilon")
    epsilon.fill("32")
    epsilon.press("Enter")
    page.wait_for_function(f"() => ({SUBPLOT_TITLES})().some(t => t.includes('ε = 32/255'))", timeout=WAIT)
    titles = page.evaluate(SUBPLOT_TITLES)
    before, after = predicted_classes(titles)
    assert before != after, titles
    assert f"turns “{before}”" in page.inner_text("#adversarial-summary")
    assert "pixel units" in page.inner_text(".adversarial")

    # The scatter gains one marked point (a star) and one line from the original to it.
    page.wait_for_function(f"() => {{ const m = ({MARKS})(); return m.stars === 1 && m.lines === 2; }}",
                           timeout=WAIT)

    page.click("#adversarial-open")
    page.wait_for_function("() => document.querySelector('#detail-title').innerText.includes('adversarial')",
                           timeout=WAIT)
    title = page.inner_text("#detail-title")
    assert f"#{fooled_index} (adversarial, FGSM 32/255)" in title and f"predicted {after} " in title
    # The buttons follow the selection in the browser (a clientside callback, queued behind the page's requests).
    page.wait_for_function("() => document.querySelector('#adversarial-open').disabled"
                           " && !document.querySelector('#adversarial-back').disabled", timeout=10_000)
    assert page.evaluate(MARKS)["stars"] == 1  # the mark stays while the panels show the attacked image

    page.click("#adversarial-back")
    page.wait_for_function("() => !document.querySelector('#detail-title').innerText.includes('adversarial')",
                           timeout=WAIT)
    assert f"predicted {before} " in page.inner_text("#detail-title")
    assert not page.errors
