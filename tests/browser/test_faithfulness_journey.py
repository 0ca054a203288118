"""Faithfulness in headless Chromium: open the view, click a point, and the curves and the verdict appear with the
job's own numbers; hovering a point of a curve shows the image the curve classified there."""
from __future__ import annotations

import re

import numpy as np
import pytest

from components import faithfulness as figures
from compute import attribution
from tests.browser.helpers import click_scatter_point, wait_for_detail, wait_for_scatter

pytestmark = pytest.mark.browser

WAIT = 120_000
METHODS = ["saliency", "gradcam"]
STEPS = 10

CURVES_OF = """(index) => { const gd = document.querySelector('#faithfulness-curves .js-plotly-plot');
    const title = gd && gd.layout && gd.layout.title ? String(gd.layout.title.text) : '';
    if (!title.includes('image #' + index + ' ') && !title.endsWith('image #' + index)) return null;
    // _fullData: plotly has decoded the base64 typed arrays the server sends into plain numbers there.
    return gd._fullData.map(t => ({group: t.legendgroup, y: Array.from(t.y)})); }"""
POINT = """([curve, index]) => { const gd = document.querySelector('#faithfulness-curves .js-plotly-plot');
    const layout = gd._fullLayout, trace = gd._fullData[curve], box = gd.getBoundingClientRect();
    const xa = layout['xaxis' + trace.xaxis.slice(1)], ya = layout['yaxis' + trace.yaxis.slice(1)];
    return {x: box.left + xa._offset + xa.d2p(trace.x[index]), y: box.top + ya._offset + ya.d2p(trace.y[index])}; }"""
STEP_TITLE = """() => { const gd = document.querySelector('#faithfulness-step-image .js-plotly-plot');
    return gd && gd.layout && gd.layout.title ? String(gd.layout.title.text).replace(/<br>/g, ' ') : ''; }"""
# (the page wraps a title too wide for its figure with <br> at a space: read back as the one line it was)


def test_the_curves_and_the_verdict_are_the_jobs_and_a_hover_shows_the_step(page, server_url):
    from compute.jobs.table import run
    from compute.specs.source import Source

    page.goto(server_url + f"?views=attribution,faithfulness&methods={','.join(METHODS)}&faithfulness.steps={STEPS}")
    wait_for_scatter(page)
    clicked = click_scatter_point(page, rank=2)
    index = clicked["index"]
    wait_for_detail(page, index, timeout=WAIT)
    page.wait_for_function(f"() => ({CURVES_OF})({index}) !== null", timeout=WAIT)
    traces = page.evaluate(CURVES_OF, index)

    # The same job as the view asks for, run here: the attribution view's default parameters, this view's settings.
    methods = {name: attribution.suggested_params(name, (1, 32, 32)) for name in METHODS}
    result = run(Source(), "faithfulness.curves", {"index": index, "methods": methods, "target": None,
                                                   "use_predicted": False, "steps": STEPS, "fill": "zero",
                                                   "blur": 0.25, "random_orders": 3, "road": False})
    kinds = result["kinds"]
    assert kinds == ["deletion", "insertion"] and len(traces) == 2 * (len(METHODS) + 1)
    for k, kind in enumerate(kinds):
        drawn = traces[k * 3:(k + 1) * 3]
        for trace, name in zip(drawn, METHODS):
            assert trace["group"] == name
            np.testing.assert_allclose(trace["y"], result["curves"][kind][name], atol=1e-6)
        np.testing.assert_allclose(drawn[2]["y"], result["random"][kind], atol=1e-6)

    labels = {name: attribution.METHODS[name].label for name in METHODS}
    expected = figures.verdict(result["auc"], result["random_auc"], labels)
    page.wait_for_function("(text) => document.querySelector('#faithfulness-verdict').innerText.includes(text)",
                           arg=expected, timeout=WAIT)
    table = page.inner_text("#faithfulness-table")
    assert f"{result['auc']['deletion']['saliency']:.3f}" in table
    assert f"{result['random_auc']['insertion']:.3f}" in table

    # Hover the fifth point of Grad-CAM's deletion curve (a real mouse: plotly sends no hover event to Dash for a
    # programmatic Fx.hover): the step panel shows that image and its probability.
    page.evaluate("() => document.querySelector('#faithfulness-curves').scrollIntoView({block: 'center'})")
    point = page.evaluate(POINT, [1, 4])
    page.mouse.move(point["x"] - 6, point["y"] - 6)
    page.mouse.move(point["x"], point["y"], steps=3)
    page.wait_for_function(f"() => ({STEP_TITLE})().includes('40% removed')", timeout=WAIT)
    title = page.evaluate(STEP_TITLE)
    assert title.startswith("Grad-CAM · Deletion")
    shown = float(re.search(r"= ([0-9.]+)$", title).group(1))
    assert shown == pytest.approx(float(result["curves"]["deletion"]["gradcam"][4]), abs=6e-4)
    assert not page.errors
