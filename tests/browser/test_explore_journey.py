"""Whole journeys in headless Chromium: scatter, click-through to the detail panels, layer change, shared URLs."""
from __future__ import annotations

import re

import pytest

from tests.browser.helpers import (
    click_scatter_point, wait_for_detail, figure_signature, pick_option, scatter_title, wait_for_change, wait_for_scatter,
)

pytestmark = pytest.mark.browser


def test_clicking_a_point_shows_that_sample_and_its_feature_maps(page, server_url):
    page.goto(server_url)
    wait_for_scatter(page)
    assert "relu2" in scatter_title(page)
    assert page.evaluate("() => document.querySelector('#scatter .js-plotly-plot').data[0].type") == "scattergl"

    clicked = click_scatter_point(page, rank=0)
    wait_for_detail(page, clicked["index"])
    title = page.inner_text("#detail-title")
    assert f"true class {clicked['name']}" in title
    assert re.search(r"predicted \d \(\d+\.\d%\)", title)
    maps_before = figure_signature(page, "#feature-maps")
    assert "layer relu2" in maps_before and f"image #{clicked['index']}" in maps_before
    assert "sparsity" in page.inner_text("#sparsity")
    # The selection ring sits on the clicked point.
    ring = page.evaluate("() => document.querySelector('#scatter .js-plotly-plot').data.find(t => t.name === 'selected')")
    assert int(ring["customdata"][0][0]) == clicked["index"]

    pick_option(page, "layer", "conv3")
    maps_after = wait_for_change(page, "#feature-maps", maps_before)
    assert "layer conv3" in maps_after and "(64, 8, 8)" in maps_after
    wait_for_change(page, "#scatter", "")  # the scatter re-embeds the new layer
    page.wait_for_function("() => ((document.querySelector('#scatter .js-plotly-plot').layout.title || {}).text || '').includes('conv3')",
                           timeout=120_000)
    assert not page.errors


def test_selection_survives_a_change_of_embedding_method(page, server_url):
    page.goto(server_url)
    wait_for_scatter(page)
    clicked = click_scatter_point(page, rank=1)
    wait_for_detail(page, clicked["index"])
    page.click("#embedding-method input[value='pca']")
    page.wait_for_function("() => ((document.querySelector('#scatter .js-plotly-plot').layout.title || {}).text || '').startsWith('PCA')",
                           timeout=60_000)
    ring = page.evaluate("() => document.querySelector('#scatter .js-plotly-plot').data.find(t => t.name === 'selected')")
    assert [int(row[0]) for row in ring["customdata"]] == [clicked["index"]]
    assert f"#{clicked['index']}" in page.inner_text("#detail-title")
    assert "embedding=pca" in page.url and f"sample={clicked['index']}" in page.url


def test_a_shared_url_restores_the_view(page, server_url):
    page.goto(server_url + "?layer=pool3&embedding=pca&features=auto&color=correct&sample=7")
    wait_for_detail(page, 7)
    page.wait_for_function("() => { const gd = document.querySelector('#scatter .js-plotly-plot');"
                           " return !!gd && ((gd.layout.title || {}).text || '').includes('pool3'); }", timeout=120_000)
    assert scatter_title(page).startswith("PCA")
    names = page.evaluate("() => document.querySelector('#scatter .js-plotly-plot').data.map(t => t.name)")
    assert any(name.startswith("correct (") for name in names) and any(name.startswith("wrong (") for name in names)
    assert "layer pool3" in figure_signature(page, "#feature-maps")


def test_bad_input_in_the_page_gives_a_message_and_the_app_keeps_working(page, server_url):
    page.goto(server_url + "?layer=pool3&embedding=pca&sample=3&views=inversion")
    wait_for_detail(page, 3)
    page.wait_for_function("() => { const gd = document.querySelector('#inversion-figure .js-plotly-plot');"
                           " return !!gd && ((gd.layout.title || {}).text || '').includes('image #3'); }", timeout=60_000)
    page.fill("#inversion-channel", "999")
    page.press("#inversion-channel", "Enter")
    page.wait_for_function("() => document.querySelector('#inversion-message').innerText.includes('out of range')",
                           timeout=60_000)
    # Still responsive: another sample can be opened.
    page.wait_for_function("() => { const gd = document.querySelector('#scatter .js-plotly-plot');"
                           " return !!gd && ((gd.layout.title || {}).text || '').includes('pool3'); }", timeout=120_000)
    clicked = click_scatter_point(page, rank=2)
    wait_for_detail(page, clicked["index"])
