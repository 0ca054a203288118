"""Attribution panels in headless Chromium: every method renders, and the target class changes the maps."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy.stats import spearmanr

from compute import attribution
from tests.browser.helpers import click_scatter_point, figure_signature, wait_for_detail, pick_option, wait_for_change, wait_for_scatter

pytestmark = pytest.mark.browser

PANEL = "[id*='attribution-graph'][id*='\"method\":\"{method}\"'][id*='\"variant\":\"trained\"']"


def _panel(method: str) -> str:
    return PANEL.replace("{method}", method)


def map_values(page, selector: str) -> list:
    """The z values of the last heatmap in the panel (the attribution map itself, drawn over any image)."""
    return page.evaluate(
        """(sel) => { const gd = document.querySelector(sel + ' .js-plotly-plot');
            // _fullData: plotly has decoded the base64 typed arrays the server sends into plain numbers there.
            const maps = gd._fullData.filter(t => t.type === 'heatmap' && t.showscale);
            return Array.from(maps[maps.length - 1].z, row => Array.from(row)); }""", selector)


def test_every_method_renders_and_the_target_class_changes_the_maps(page, server_url):
    page.goto(server_url)
    wait_for_scatter(page)
    clicked = click_scatter_point(page, rank=3)
    wait_for_detail(page, clicked["index"])
    for method in ("occlusion", "saliency", "smoothgrad"):  # the defaults, shown on click
        page.wait_for_selector(_panel(method) + " .js-plotly-plot", timeout=60_000)
    for method in attribution.METHODS:
        box = page.locator(f"#attribution-methods input[value='{method}']")
        if not box.is_checked():
            box.check()
        page.wait_for_selector(_panel(method) + " .js-plotly-plot", timeout=60_000)
    signatures, maps = {}, {}
    for method in attribution.METHODS:
        signatures[method] = figure_signature(page, _panel(method))
        maps[method] = map_values(page, _panel(method))
        assert f"class {clicked['name']} (true)" in signatures[method]
    # Each method draws its own numbers: no two methods' maps are equal.
    assert len({json.dumps(values) for values in maps.values()}) == len(maps)

    other = "0" if clicked["name"] != "0" else "1"
    pick_option(page, "attribution-target", other)
    for method in attribution.METHODS:
        changed = wait_for_change(page, _panel(method), signatures[method])
        assert f"class {other} (chosen)" in changed
        assert map_values(page, _panel(method)) != maps[method], f"{method}: the map did not change with the target"


def test_sanity_check_shows_the_untrained_model_and_its_rank_correlation(page, server_url):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(server_url + "?sample=11&methods=" + ",".join(attribution.METHODS))
    page.wait_for_selector(_panel("saliency") + " .js-plotly-plot", timeout=60_000)
    page.click("#attribution-sanity")
    untrained = "[id*='attribution-graph'][id*='\"method\":\"saliency\"'][id*='\"variant\":\"untrained\"'] .js-plotly-plot"
    page.wait_for_selector(untrained, timeout=60_000)
    title = page.evaluate(f"() => document.querySelector(`{untrained}`).layout.title.text")
    rho = float(re.search(r"ρ = ([+-][0-9.]+)", title).group(1))
    trained_map = np.asarray(map_values(page, _panel("saliency")), dtype=float)
    untrained_map = np.asarray(map_values(page, untrained.replace(" .js-plotly-plot", "")), dtype=float)
    assert not np.allclose(trained_map, untrained_map)
    assert rho == pytest.approx(spearmanr(trained_map.ravel(), untrained_map.ravel()).statistic, abs=0.006)
    # Every correlation readable: each untrained title's number is drawn inside its figure, and the table lists
    # every method with its number in full.
    every = "[id*='attribution-graph'][id*='\"variant\":\"untrained\"'] .js-plotly-plot"
    page.wait_for_function(f"() => document.querySelectorAll(`{every}`).length === {len(attribution.METHODS)}",
                           timeout=60_000)
    titles = page.evaluate(f"""() => [...document.querySelectorAll(`{every}`)].map(gd => {{
        const text = gd.querySelector('.gtitle'); const box = text.getBoundingClientRect();
        const figure = gd.getBoundingClientRect();
        // The width of the number's own characters ("ρ = +0.25"): the title begins with it.
        return {{text: text.textContent, left: box.left - figure.left, right: figure.right - box.left,
                 number: text.getSubStringLength ? text.getSubStringLength(0, 9) : box.width}}; }})""")
    for found in titles:
        assert found["text"].startswith("ρ = ") and found["left"] >= 0 and found["number"] <= found["right"], found
    rows = page.evaluate("() => [...document.querySelectorAll('.sanity-table tbody tr')].map(r => "
                         "[...r.cells].map(c => c.innerText))")
    assert [row[0] for row in rows] == [attribution.METHODS[name].label for name in attribution.METHODS]
    assert all(re.fullmatch(r"ρ = [+-][0-9]\.[0-9]{2}", row[1]) for row in rows)
    assert page.errors == []


def test_a_box_clamped_to_64_shows_64_and_the_note_reads_the_uniform_drop(page, server_url):
    page.goto(server_url + "?sample=11&methods=occlusion")
    page.wait_for_selector(_panel("occlusion") + " .js-plotly-plot", timeout=60_000)
    box = page.locator("input[id*='\"method\":\"occlusion\"'][id*='\"name\":\"box\"']")
    box.fill("100")
    box.press("Enter")
    page.wait_for_function("(sel) => document.querySelector(sel).value === '64'",
                           arg="input[id*='\"method\":\"occlusion\"'][id*='\"name\":\"box\"']", timeout=60_000)
    page.wait_for_function(
        """(sel) => { const gd = document.querySelector(sel + ' .js-plotly-plot');
            const sub = gd && gd.layout.title && gd.layout.title.subtitle;
            return !!sub && String(sub.text).includes('the same at every position'); }""",
        arg=_panel("occlusion"), timeout=60_000)
    subtitle = page.evaluate(f"() => document.querySelector(`{_panel('occlusion')} .js-plotly-plot`).layout.title.subtitle.text")
    assert "no evidence" not in subtitle and re.search(r"drop in probability \(clean - occluded\) [+-]0\.\d+", subtitle)
    assert "covers the whole 32×32 image" in page.inner_text("#attribution-notes")
    assert page.errors == []
