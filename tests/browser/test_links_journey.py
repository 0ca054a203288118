"""Every view is a link: a view set up in one browser opens the same in another; back returns; copy link copies."""
from __future__ import annotations

import json

import pytest

from tests.browser.helpers import click_scatter_point, pick_option, wait_for_detail, wait_for_scatter

pytestmark = pytest.mark.browser

WAIT = 120_000
PANEL = "[id*='attribution-graph'][id*='\"method\":\"{method}\"'][id*='\"variant\":\"trained\"'] .js-plotly-plot"


def _panel(method: str) -> str:
    return PANEL.replace("{method}", method)


def _param(method: str, name: str) -> str:
    """The selector of a method's parameter box (Dash writes a dict id as its JSON, keys sorted)."""
    return "[id='" + json.dumps({"method": method, "name": name, "type": "attribution-param"},
                                separators=(",", ":")) + "']"


def _map(page, method: str) -> list:
    return page.evaluate("""(sel) => { const gd = document.querySelector(sel);
        const maps = gd._fullData.filter(t => t.type === 'heatmap' && t.showscale);
        return Array.from(maps[maps.length - 1].z, row => Array.from(row)); }""", _panel(method))


def _title(page, method: str) -> str:
    return page.evaluate("(sel) => document.querySelector(sel).layout.title.text", _panel(method))


def _wait_for_url(page, *parts: str) -> None:
    page.wait_for_function("(parts) => parts.every(p => window.location.search.includes(p))", arg=list(parts),
                           timeout=WAIT)


def _checked(page, checklist: str) -> list[str]:
    return page.evaluate("(sel) => Array.from(document.querySelectorAll(sel + ' input:checked'), i => i.value)",
                         checklist)


def test_a_link_opens_the_same_attribution_view_in_a_new_browser_and_back_returns(browser, server_url):
    first = browser.new_context(viewport={"width": 1400, "height": 1000},
                                permissions=["clipboard-read", "clipboard-write"])
    page = first.new_page()
    page.goto(server_url + "?views=attribution")
    wait_for_scatter(page)
    clicked = click_scatter_point(page, rank=4)
    wait_for_detail(page, clicked["index"])
    _wait_for_url(page, f"sample={clicked['index']}")
    page.wait_for_selector(_panel("occlusion"), timeout=WAIT)

    # Settings: one more method, an occlusion box, a SmoothGrad noise level, a target class.
    page.check("#attribution-methods input[value='gradcam']")
    page.fill(_param("occlusion", "box"), "6")
    page.press(_param("occlusion", "box"), "Enter")
    _wait_for_url(page, "occlusion.box=6")
    before_target = page.url
    other = "0" if clicked["name"] != "0" else "1"
    pick_option(page, "attribution-target", other)
    _wait_for_url(page, "methods=", "gradcam", "occlusion.box=6", f"target={other}", f"sample={clicked['index']}")
    for method in ("occlusion", "saliency", "smoothgrad", "gradcam"):
        page.wait_for_function("([sel, text]) => { const gd = document.querySelector(sel);"
                               " return !!gd && gd.layout.title.text.includes(text); }",
                               arg=[_panel(method), f"class {other} (chosen)"], timeout=WAIT)
    link = page.url
    occlusion_map = _map(page, "occlusion")

    # A new browser (no shared state) at that link: the same sample, panels and settings.
    second = browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh = second.new_page()
    errors: list[str] = []
    fresh.on("pageerror", lambda error: errors.append(str(error)))
    fresh.goto(link)
    wait_for_detail(fresh, clicked["index"])
    for method in ("occlusion", "saliency", "smoothgrad", "gradcam"):
        fresh.wait_for_function("([sel, text]) => { const gd = document.querySelector(sel);"
                                " return !!gd && gd.layout.title.text.includes(text); }",
                                arg=[_panel(method), f"image #{clicked['index']}"], timeout=WAIT)
        assert f"class {other} (chosen)" in _title(fresh, method)
    assert _checked(fresh, "#attribution-methods") == _checked(page, "#attribution-methods")
    assert "gradcam" in _checked(fresh, "#attribution-methods")
    assert _checked(fresh, "#open-views") == ["attribution"]
    assert fresh.input_value(_param("occlusion", "box")) == "6"
    assert fresh.inner_text("#attribution-target").strip().startswith(other)
    assert _map(fresh, "occlusion") == occlusion_map  # the same settings, so the same numbers
    assert fresh.inner_text("#links-notice").strip() == ""
    assert fresh.url == link and errors == []
    second.close()

    # Copy link: the clipboard holds the page's address.
    page.click("#links-copy")
    page.wait_for_function("() => document.querySelector('#links-copy-status').innerText.includes('copied')",
                           timeout=WAIT)  # the button is there: the page has been drawn
    assert page.evaluate("() => navigator.clipboard.readText()") == link

    # Back: the view before the target was chosen (the page is built from that address again).
    page.go_back()
    page.wait_for_function("(url) => window.location.href === url", arg=before_target, timeout=WAIT)
    page.wait_for_function("(sel) => { const gd = document.querySelector(sel);"
                           " return !!gd && gd.layout.title.text.includes('(true)'); }",
                           arg=_panel("occlusion"), timeout=WAIT)
    assert "target=" not in page.url and fresh is not page
    assert page.input_value(_param("occlusion", "box")) == "6"
    # Forward again: the target is back.
    page.go_forward()
    page.wait_for_function("(sel) => { const gd = document.querySelector(sel);"
                           " return !!gd && gd.layout.title.text.includes('(chosen)'); }",
                           arg=_panel("occlusion"), timeout=WAIT)
    assert page.url == link
    first.close()


EVOLUTION = "#evolution-scatter .js-plotly-plot"


def _evolution_step(page, step: int) -> None:
    """Click the evolution slider's rail under the label of ``step``, as a user does."""
    box = page.evaluate(
        """([sel, step]) => { const gd = document.querySelector(sel);
            const label = gd.querySelectorAll('.slider-labels .slider-label')[step].getBoundingClientRect();
            const rail = gd.querySelector('.slider-rail-touch-rect').getBoundingClientRect();
            return {x: label.left + label.width / 2, y: rail.top + rail.height / 2}; }""", [EVOLUTION, step])
    page.mouse.click(box["x"], box["y"])


def _weights_epoch(page) -> str:
    return page.evaluate("() => (document.querySelector('#weights-grid .js-plotly-plot').layout.title || {}).text || ''")


def test_the_epoch_sliders_of_the_weights_and_the_evolution_travel_in_a_link(browser, server_url):
    first = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = first.new_page()
    page.goto(server_url + "?views=weights,evolution&layer=relu4&embedding=pca")
    page.wait_for_function("() => { const gd = document.querySelector('#weights-grid .js-plotly-plot');"
                           " return !!gd && /epoch \\d+:/.test((gd.layout.title || {}).text || ''); }", timeout=WAIT)
    assert "conv1, epoch 10:" in _weights_epoch(page)  # untouched: the trained model, and no epoch in the link
    page.wait_for_function("(sel) => { const gd = document.querySelector(sel);"
                           " return !!(gd && gd.layout.sliders && gd._transitionData._frames.length > 5); }",
                           arg=EVOLUTION, timeout=WAIT)
    page.wait_for_timeout(500)
    assert "epoch" not in page.url

    thumb = page.locator("#weights-epoch [role=slider]")
    thumb.focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    _wait_for_url(page, "weights.epoch=2")
    page.evaluate("(sel) => document.querySelector(sel).scrollIntoView({block: 'center'})", EVOLUTION)
    _evolution_step(page, 6)
    _wait_for_url(page, "evolution.epoch=6")
    link = page.url
    first.close()

    second = browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh = second.new_page()
    errors = []
    fresh.on("pageerror", lambda error: errors.append(str(error)))
    fresh.goto(link)
    fresh.wait_for_function("() => { const gd = document.querySelector('#weights-grid .js-plotly-plot');"
                            " return !!gd && ((gd.layout.title || {}).text || '').includes('conv1, epoch 2:'); }",
                            timeout=WAIT)
    assert fresh.evaluate("() => document.querySelector('#weights-epoch [role=slider]')"
                          ".getAttribute('aria-valuenow')") == "2"
    fresh.wait_for_function("(sel) => { const gd = document.querySelector(sel);"
                            " return !!(gd && gd.layout.sliders && gd.layout.sliders[0].active === 6); }",
                            arg=EVOLUTION, timeout=WAIT)
    fresh.wait_for_function("() => document.querySelector('#evolution-metrics .js-plotly-plot')"
                            ".layout.shapes[0].x0 == 6", timeout=WAIT)
    assert fresh.url == link  # opening it wrote nothing new
    assert not errors
    second.close()


def test_an_invalid_link_opens_the_default_view_with_a_notice(page, server_url):
    page.goto(server_url + "?layer=no-such-layer&sample=banana&views=attribution,gone&color=correct&junk=1")
    page.wait_for_function("() => { const notice = document.querySelector('#links-notice');"
                           " return !!notice && notice.innerText.includes('outdated'); }", timeout=WAIT)
    notice = page.inner_text("#links-notice")
    for key in ("layer", "sample", "views", "junk"):
        assert f"“{key}”" in notice
    wait_for_scatter(page)
    names = page.evaluate("() => document.querySelector('#scatter .js-plotly-plot').data.map(t => t.name)")
    assert any(name.startswith("correct (") for name in names)  # the valid part of the link applies
    shown = _checked(page, "#open-views")
    assert page.errors == []
    page.goto(server_url)
    page.wait_for_selector("#open-views input", timeout=WAIT)
    assert shown == _checked(page, "#open-views")  # the views a bare link opens
