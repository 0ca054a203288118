"""Readable on a laptop and on a projector: with every view open and drawn, in the standard, projector and dark
themes, at 1280x720 and 1920x1080, no text overlaps another, none is clipped (by its figure, a box, or the page's
width) and page text stands out from its background; the first screen shows the whole scatter, and the page uses
the width of a 1920 screen. The measurement is tests/browser/text_boxes.py (every SVG text Plotly draws, every
line of page text)."""
from __future__ import annotations

import pytest

from tests.browser.helpers import VIEW_DRAWN, wait_for_scatter
from tests.browser.text_boxes import FIGURES_SETTLED, text_problems

pytestmark = pytest.mark.browser

WAIT = 900_000  # every view computing at once on a busy 2-core machine (the robustness curve is the longest)
# Every view open, an image selected, and the buttons that draw more pressed: all five attribution methods and the
# sanity check, a maximization, the smallest epsilon and the robustness curve, a channel's top images.
EVERY_VIEW = ("?views=attribution,inversion,maximize,weights,channels,evolution,adversarial,upload,neighbours,gallery"
              "&sample=7&methods=occlusion,saliency,smoothgrad,integrated_gradients,gradcam&sanity=1&maximize.run=1"
              "&attack.smallest=1&attack.robustness=1&channels.channel=relu2:5")
DRAWING = ("attribution", "inversion", "maximize", "weights", "channels", "evolution", "adversarial")
THEMES = {"standard": (False, False), "projector": (True, False), "dark": (False, True)}
SIZES = [(1280, 720), (1920, 1080)]


def _use_theme(page, projector: bool, dark: bool) -> None:
    """Flip the header's switches as a user does, then wait until every figure is restyled and its text fitted."""
    for switch, wanted in (("#theme-projector", projector), ("#theme-dark", dark)):
        box = page.locator(f"{switch} input")
        if box.is_checked() != wanted:
            box.click(timeout=WAIT)  # the page may be busy drawing every view
    page.wait_for_function(
        "([projector, dark]) => document.documentElement.dataset.projector === (projector ? 'on' : 'off')"
        " && document.documentElement.dataset.theme === (dark ? 'dark' : 'light')", arg=[projector, dark])
    name = ("projector-" if projector else "") + ("dark" if dark else "light")
    page.wait_for_function(
        "(name) => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(gd => gd.checkVisibility())"
        ".every(gd => ((gd.layout.meta || {}).featurescopeTheme || 'light') === name)", arg=name, timeout=WAIT)
    page.wait_for_function(FIGURES_SETTLED, timeout=WAIT)
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


@pytest.fixture(scope="module", params=SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def every_view(request, browser, server_url):
    """A page of the given size with every view open and drawn."""
    width, height = request.param
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(server_url + EVERY_VIEW)
    wait_for_scatter(page, timeout=WAIT)
    for view in DRAWING:
        page.wait_for_function(VIEW_DRAWN, arg=view, timeout=WAIT)
    page.wait_for_function("() => !Array.from(document.querySelectorAll('.progress-block'))"
                           ".some(block => block.checkVisibility())", timeout=WAIT)
    yield page
    context.close()


def test_no_text_overlaps_or_is_clipped_in_any_view_or_theme(every_view):
    page = every_view
    found = {}
    for name, (projector, dark) in THEMES.items():
        _use_theme(page, projector, dark)
        found[name] = text_problems(page)
    report = "\n".join(f"{name}: {problem}" for name, problems in found.items() for problem in problems)
    assert not report, f"{sum(map(len, found.values()))} problems:\n{report}"
    assert page.errors == []


def test_the_first_screen_shows_the_whole_scatter_and_the_page_uses_the_width(every_view):
    page = every_view
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    for name, (projector, dark) in THEMES.items():
        _use_theme(page, projector, dark)
        page.evaluate("() => window.scrollTo(0, 0)")
        box = page.evaluate("() => { const r = document.querySelector('#scatter .js-plotly-plot')"
                            ".getBoundingClientRect(); return {top: r.top, bottom: r.bottom, height: r.height}; }")
        assert box["top"] >= 0 and box["bottom"] <= height, (name, box)
        assert box["height"] >= 300, (name, box)  # and it is a scatter, not a strip
        page_width = page.evaluate("() => document.querySelector('.page').getBoundingClientRect().width")
        assert page_width >= 0.97 * width, (name, page_width)
