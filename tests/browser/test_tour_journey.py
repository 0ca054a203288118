"""The guided tour: Next and Back walk the course's steps; each step is a URL that opens its views."""
from __future__ import annotations

import pytest

from dashboard.views import VIEWS, tour
from tests.browser.helpers import VIEW_COVERAGE, VIEW_DRAWN

pytestmark = pytest.mark.browser

WAIT = 120_000
STEPS = tour.steps_for({view.NAME for view in VIEWS})


def _at_step(page, number: int) -> None:
    """Wait for step ``number``: its banner, its address, and its view open (its section shown)."""
    step = STEPS[number - 1]
    page.wait_for_function(
        "([count, view]) => { const banner = document.querySelector('#tour-banner');"
        " const section = document.querySelector(`[id*='\"name\":\"${view}\"']`);"
        " return !!banner && banner.textContent.includes(count) && !!section && section.style.display !== 'none'; }",
        arg=[f"step {number} of {len(STEPS)}", step.view], timeout=WAIT)
    _address_holds(page, f"tour={number}")
    assert step.title in page.text_content("#tour-banner")
    open_views = page.evaluate("() => Array.from(document.querySelectorAll('#open-views input:checked'), i => i.value)")
    assert step.view in open_views


def _address_holds(page, *parts: str) -> None:
    """The address bar holds every one of ``parts``: the page writes it once the step is set up, which on a busy
    machine comes after the banner."""
    page.wait_for_function("(parts) => parts.every(part => window.location.href.includes(part))", arg=list(parts),
                           timeout=WAIT)
    assert all(part in page.url for part in parts), page.url


def test_the_tour_steps_forward_and_back_and_each_step_is_a_link(page, server_url):
    page.goto(server_url)
    page.click("#tour-start")
    _at_step(page, 1)
    _address_holds(page, "sample=7")
    page.wait_for_function("() => { const title = document.querySelector('#detail-title');"
                           " return !!title && title.innerText.includes('#7'); }", timeout=WAIT)
    page.click("#tour-next")
    _at_step(page, 2)
    _address_holds(page, "evolution.layer=logits", "sample=7")  # the image stays selected
    page.click("#tour-next")
    _at_step(page, 3)
    page.click("#tour-back")
    _at_step(page, 2)
    # The browser's own back and forward move between the steps too.
    page.go_back()
    _at_step(page, 3)
    page.go_forward()
    _at_step(page, 2)
    # A step's address opened directly is the same step (the instructor sends it to the class).
    page.goto(server_url + tour.step_link(STEPS, 5, ["relu2", "relu4"]).lstrip("/"))
    _at_step(page, 5)
    checked = page.evaluate("() => Array.from(document.querySelectorAll('#attribution-methods input:checked'),"
                            " i => i.value)")
    assert checked == ["occlusion"]
    page.wait_for_selector("[id*='attribution-graph'][id*='\"method\":\"occlusion\"'] .js-plotly-plot", timeout=WAIT)
    # The last step has no Next; leaving the tour hides the banner.
    page.goto(server_url + f"?tour={len(STEPS)}&views={STEPS[-1].view}")
    page.wait_for_function("(n) => { const banner = document.querySelector('#tour-banner');"
                           " return !!banner && banner.textContent.includes(n); }",
                           arg=f"step {len(STEPS)} of {len(STEPS)}", timeout=WAIT)
    assert page.locator("a#tour-next").count() == 0
    page.click("a.tour-leave")
    page.wait_for_function("() => !window.location.search.includes('tour=')", timeout=WAIT)
    page.wait_for_function("() => { const b = document.querySelector('#tour-banner');"
                           " return !!b && getComputedStyle(b).display === 'none'; }", timeout=WAIT)
    assert page.errors == []


@pytest.mark.parametrize("number", range(1, len(STEPS) + 1))
def test_each_step_from_its_bare_link_shows_its_view_on_a_1280x720_screen(browser, server_url, number):
    """``?tour=N`` alone, on a projector's 1280x720: the step's view is open, has drawn, covers at least 40% of the
    screen, and the step's image is selected (steps 2, 3 and 7 used to drop it)."""
    step = STEPS[number - 1]
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(server_url + f"?tour={number}")
        _at_step(page, number)
        try:
            page.wait_for_function(VIEW_DRAWN, arg=step.view, timeout=600_000)
        except Exception as error:  # say what the view shows instead
            shown = page.evaluate("(view) => Array.from(document.querySelectorAll('.view-section')).filter(e =>"
                                  " e.id.includes(view)).map(e => e.innerText).join(' | ')", step.view)
            raise AssertionError(f"step {number}: view {step.view} has not drawn: {shown[:1500]}") from error
        page.wait_for_function("(view) => (" + VIEW_COVERAGE + ")(view) >= 0.4", arg=step.view, timeout=WAIT)
        assert page.evaluate(VIEW_COVERAGE, step.view) >= 0.4
        page.wait_for_function("(i) => { const el = document.querySelector('#detail-title');"
                               " return !!el && el.innerText.includes('#' + i + ' '); }",
                               arg=step.query["sample"], timeout=WAIT)
        _address_holds(page, f"sample={step.query['sample']}")  # the address bar holds the whole step
        if step.view == "adversarial":
            page.wait_for_function("() => (document.querySelector('#adversarial-summary') || {}).innerText"
                                   " && document.querySelector('#adversarial-summary').innerText.includes('turns')",
                                   timeout=WAIT)
            summary = page.inner_text("#adversarial-summary")
            assert "does not fool" not in summary
            assert f"into “{step.query['attack.target']}”" in summary, summary
        assert errors == []
    finally:
        context.close()
