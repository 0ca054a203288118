"""The evolution view in headless Chromium: the animated scatter, its slider and play button, a selection that
stays ringed in every epoch."""
from __future__ import annotations

import pytest

from tests.browser.helpers import wait_for_detail

pytestmark = pytest.mark.browser

WAIT = 240_000  # a cold evolution is 11 forward passes and 11 PCAs on a busy 2-core machine
# relu4, where training shows; the explore scatter with PCA too, so the page's other work is light.
URL = "?views=evolution&layer=relu4&embedding=pca"
SCATTER = "#evolution-scatter .js-plotly-plot"

PATH = "path of the selected image"
# The figure's arrays come as base64 typed arrays: plotly decodes them into _fullData, where these read them.
READY = """(sel) => { const gd = document.querySelector(sel);
    return !!(gd && gd._transitionData && gd._transitionData._frames.length > 1 && gd.layout.sliders
              && gd._fullData.some(t => t.name !== 'selected' && t.x && t.x.length > 10)); }"""
# Every point's position as the page draws it now, by sample index; the slider's active step; the ring.
STATE = """(sel) => { const gd = document.querySelector(sel); const points = {}; let ring = null;
    gd._fullData.forEach(t => {
        if (t.name === 'selected') { if (t.x && t.x.length) ring = {x: t.x[0], y: t.y[0], row: Array.from(t.customdata[0])}; return; }
        if (!t.customdata || t.name === 'path of the selected image') return;
        for (let k = 0; k < t.x.length; k++) points[Number(t.customdata[k][0])] = [Number(t.x[k]), Number(t.y[k])];
    });
    return {points, ring, active: gd.layout.sliders[0].active,
            epochs: gd.layout.sliders[0].steps.map(s => s.label),
            frameRings: gd._transitionData._frames.map(f => f.data[f.data.length - 1].x.length)}; }"""


def state(page) -> dict:
    return page.evaluate(STATE, SCATTER)


def click_slider_step(page, step: int) -> None:
    """Click the slider's rail under the label of ``step``, as a user does."""
    box = page.evaluate(
        """([sel, step]) => { const gd = document.querySelector(sel);
            const label = gd.querySelectorAll('.slider-labels .slider-label')[step].getBoundingClientRect();
            const rail = gd.querySelector('.slider-rail-touch-rect').getBoundingClientRect();
            return {x: label.left + label.width / 2, y: rail.top + rail.height / 2}; }""",
        [SCATTER, step])
    page.mouse.click(box["x"], box["y"])


def wait_for_step(page, step: int) -> None:
    page.wait_for_function("([sel, step]) => document.querySelector(sel).layout.sliders[0].active === step",
                           arg=[SCATTER, step], timeout=30_000)


def click_isolated_point(page) -> dict:
    """Click the most isolated point of the animated scatter at its pixel (Scattergl draws on a canvas)."""
    target = page.evaluate(
        """(sel) => { const gd = document.querySelector(sel); const fl = gd._fullLayout;
            const box = gd.getBoundingClientRect(); const points = [];
            gd._fullData.forEach(t => { if (t.name === 'selected' || t.name === 'path of the selected image' || !t.customdata) return;
                for (let k = 0; k < t.x.length; k++) points.push({px: fl.xaxis.d2p(t.x[k]), py: fl.yaxis.d2p(t.y[k]),
                                                                  index: Number(t.customdata[k][0])}); });
            const inside = points.filter(p => p.px > 40 && p.py > 40 && p.px < fl._size.w - 40 && p.py < fl._size.h - 40);
            inside.forEach(p => { p.gap = Infinity; points.forEach(q => { if (q !== p)
                p.gap = Math.min(p.gap, Math.hypot(p.px - q.px, p.py - q.py)); }); });
            inside.sort((a, b) => b.gap - a.gap);
            const p = inside[0];
            return {x: box.left + fl._size.l + p.px, y: box.top + fl._size.t + p.py, index: p.index}; }""",
        SCATTER)
    page.mouse.click(target["x"], target["y"])
    return target


def moved(before: dict, after: dict) -> float:
    """The largest distance any point moved between two states."""
    return max(abs(a - b) for key in before["points"] for a, b in zip(before["points"][key], after["points"][key]))


def test_the_slider_and_play_move_the_points_and_the_selection_stays_ringed(page, server_url):
    page.goto(server_url + URL)
    page.wait_for_function(READY, arg=SCATTER, timeout=WAIT)
    page.evaluate("() => document.querySelector('#evolution-scatter').scrollIntoView({block: 'center'})")
    start = state(page)
    epochs = start["epochs"]
    assert start["active"] == 0 and len(epochs) == 11 and len(start["points"]) == 1797
    assert "Procrustes" in page.inner_text("#evolution-alignment")
    # WebGL drawn at the screen's pixel ratio (1 here), not plotly's fixed 2: a quarter of the pixels per frame.
    canvas = page.evaluate("""(sel) => { const gd = document.querySelector(sel);
        const c = gd.querySelector('.gl-canvas-context');
        return [gd._context.plotGlPixelRatio, Math.round(c.width / c.clientWidth * 100) / 100,
                window.devicePixelRatio]; }""", SCATTER)
    assert canvas == [1, 1, 1]

    # The slider: a click on step 5 shows epoch 5, the points move, and the numbers mark epoch 5.
    click_slider_step(page, 5)
    wait_for_step(page, 5)
    page.wait_for_timeout(800)  # the frame's duration
    at_five = state(page)
    assert moved(start, at_five) > 0.05
    page.wait_for_function("() => document.querySelector('#evolution-metrics .js-plotly-plot').layout.shapes[0].x0 == 5",
                           timeout=30_000)

    # Play: the frames advance from the current one, in the browser.
    page.locator(f"{SCATTER} .updatemenu-button").first.click()
    page.wait_for_function("(sel) => document.querySelector(sel).layout.sliders[0].active > 5", arg=SCATTER,
                           timeout=30_000)
    page.wait_for_function("(sel) => document.querySelector(sel).layout.sliders[0].active === 10", arg=SCATTER,
                           timeout=30_000)
    page.wait_for_timeout(800)
    assert moved(at_five, state(page)) > 0.05

    # A click selects the image page-wide: the detail panels open for it, and it is ringed in every frame.
    clicked = click_isolated_point(page)
    title = wait_for_detail(page, clicked["index"], timeout=WAIT)
    # The point belongs to the epoch on screen (the last, after play): the panels use that epoch's model.
    assert "model of epoch 10" in title
    page.wait_for_function("(sel) => { const gd = document.querySelector(sel);"
                           " return gd._transitionData._frames.every(f => f.data[f.data.length - 1].x.length === 1); }",
                           arg=SCATTER, timeout=60_000)
    assert f"Image #{clicked['index']} " in page.inner_text("#evolution-track")
    for step in (10, 2, 7):
        if state(page)["active"] != step:
            click_slider_step(page, step)
            wait_for_step(page, step)
            page.wait_for_timeout(800)
        now = state(page)
        assert now["ring"] is not None and now["ring"]["row"] == [clicked["index"], int(epochs[step])]
        assert [now["ring"]["x"], now["ring"]["y"]] == pytest.approx(now["points"][str(clicked["index"])], abs=1e-3)
    path = page.evaluate("([sel, name]) => document.querySelector(sel).data.find(t => t.name === name).x.length",
                         [SCATTER, PATH])
    assert path == len(epochs)
    assert not page.errors
