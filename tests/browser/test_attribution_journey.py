"""Attribution panels in headless Chromium: every method renders, and the target class changes the maps."""
from __future__ import annotations

import pytest

from compute import attribution
from tests.browser.helpers import click_scatter_point, figure_signature, wait_for_detail, pick_option, wait_for_change, wait_for_scatter

pytestmark = pytest.mark.browser

PANEL = "[id*='attribution-graph'][id*='\"method\":\"{method}\"'][id*='\"variant\":\"trained\"']"


def _panel(method: str) -> str:
    return PANEL.replace("{method}", method)


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
    signatures = {}
    for method in attribution.METHODS:
        signatures[method] = figure_signature(page, _panel(method))
        assert f"class {clicked['name']} (true)" in signatures[method]
    assert len(set(signatures.values())) == len(signatures)

    other = "0" if clicked["name"] != "0" else "1"
    pick_option(page, "attribution-target", other)
    for method in attribution.METHODS:
        changed = wait_for_change(page, _panel(method), signatures[method])
        assert f"class {other} (chosen)" in changed


def test_sanity_check_shows_the_untrained_model_and_its_rank_correlation(page, server_url):
    page.goto(server_url + "?sample=11")
    page.wait_for_selector(_panel("saliency") + " .js-plotly-plot", timeout=60_000)
    page.click("#attribution-sanity")
    untrained = "[id*='attribution-graph'][id*='\"method\":\"saliency\"'][id*='\"variant\":\"untrained\"'] .js-plotly-plot"
    page.wait_for_selector(untrained, timeout=60_000)
    title = page.evaluate(f"() => document.querySelector(`{untrained}`).layout.title.text")
    assert "rank correlation" in title
