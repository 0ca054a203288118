"""The weights and channels views in headless Chromium: the kernel grid and its epoch slider, a channel's top images
from a click on its bar or on its feature map, ringed in the scatter."""
from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.helpers import click_scatter_point, figure_signature, wait_for_change, wait_for_detail, wait_for_scatter

pytestmark = pytest.mark.browser

WAIT = 180_000
FIRST_WAIT = 300_000  # the first job of a fresh compute process on a loaded machine
POLL = 500  # ms; polling on animation frames can starve while the busy page keeps redrawing


def plotly_array(value) -> np.ndarray:
    """A trace array as the page holds it: a plain list, or plotly's typed-array form {dtype, bdata, shape}."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            array = array.reshape([int(s) for s in str(shape).split(",")] if isinstance(shape, str) else shape)
        return array
    return np.asarray(value, dtype=float)


def wait_for_graph(page, graph_id: str, traces: int = 1, timeout: float = WAIT) -> None:
    page.wait_for_function(
        """([id, n]) => { const gd = document.querySelector('#' + id + ' .js-plotly-plot');
            return !!(gd && gd.data && gd.data.length >= n); }""",
        arg=[graph_id, traces], timeout=timeout, polling=POLL)


def filters_drawn(page) -> set[int]:
    data = page.evaluate("() => document.querySelector('#weights-grid .js-plotly-plot').data[0].customdata")
    values = plotly_array(data).astype(float)
    return {int(v) for v in values[np.isfinite(values)].ravel()}


def gallery_indices(page) -> list[int]:
    """The sample index each gallery image carries (its subplot title reads '#index · value · class')."""
    titles = page.evaluate("""() => document.querySelector('#channels-gallery .js-plotly-plot').layout.annotations
        .map(a => a.text)""")
    return [int(re.match(r"#(\d+) ", title).group(1)) for title in titles if title.startswith("#")]


def wait_for_highlight(page, count: int) -> list[int]:
    """The sample indices of the scatter's 'highlight' rings once there are ``count`` of them."""
    page.wait_for_function(
        """(n) => { const gd = document.querySelector('#scatter .js-plotly-plot');
            const ring = gd && gd.data.find(t => t.name === 'highlight'); return !!ring && ring.x.length === n; }""",
        arg=count, timeout=WAIT, polling=POLL)
    texts = page.evaluate("""() => document.querySelector('#scatter .js-plotly-plot').data
        .find(t => t.name === 'highlight').text""")
    return [int(text.lstrip("#")) for text in texts]


def click_bar(page, channel: str) -> None:
    """Click the middle of ``channel``'s bar in the statistics chart (channels are categories: "0", "1", ...)."""
    page.evaluate("() => document.querySelector('#channels-stats').scrollIntoView({block: 'center'})")
    spot = page.evaluate(
        """(c) => { const gd = document.querySelector('#channels-stats .js-plotly-plot'); const fl = gd._fullLayout;
            const bars = gd.data[0]; const k = bars.x.indexOf(c); const box = gd.getBoundingClientRect();
            return {x: box.left + fl.xaxis._offset + fl.xaxis.d2p(c), y: box.top + fl.yaxis._offset + fl.yaxis.d2p(bars.y[k] / 2)}; }""",
        str(channel))
    page.mouse.click(spot["x"], spot["y"])


GALLERY_SHOWS = """(c) => { const gd = document.querySelector('#channels-gallery .js-plotly-plot');
    const title = String(((gd && gd.layout.title) || {}).text || '').replace(/<br>/g, ' ');
    return !!gd && title.startsWith('relu2 channel ' + c + ':'); }"""


def click_bar_until_its_gallery_shows(page, channel: str) -> None:
    """Click the bar once the chart's text is fitted (fitting moves the plot area), and again if no gallery came:
    on a busy machine a click that lands while the chart redraws reaches no bar, and a user clicks again too."""
    page.wait_for_function("() => document.querySelector('#channels-stats .js-plotly-plot')"
                           ".getAttribute('data-text-fitted') !== null", timeout=WAIT, polling=POLL)
    for attempt in range(3):
        click_bar(page, channel)
        try:
            page.wait_for_function(GALLERY_SHOWS, arg=channel, timeout=WAIT, polling=POLL)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"three clicks on channel {channel}'s bar opened no gallery")


def test_the_channels_chart_shows_sparsity_per_channel_and_sorts_in_the_browser(page, server_url):
    page.goto(server_url + "?views=channels")
    wait_for_graph(page, "channels-stats", traces=4, timeout=FIRST_WAIT)
    chart = "document.querySelector('#channels-stats .js-plotly-plot')"
    names = page.evaluate(f"() => {chart}.data.map(t => t.name)")
    assert names[0] == "share of its activations that are zero" and "share of images it fires on" in names
    assert "sparse in positions, not in images" in page.inner_text("#channels-summary")
    drawn = page.evaluate(f"() => [...{chart}.querySelectorAll('.xaxislayer-above .x2tick text')].map(t => t.textContent)")
    assert drawn[:3] == ["0", "1", "2"]  # by channel number first
    page.check("#channels-sort input[value='zeros']")
    page.wait_for_function(f"() => String(({chart}.layout.xaxis2.title || {{}}).text).includes('sorted by')",
                           timeout=WAIT, polling=POLL)
    order = page.evaluate(f"() => {chart}.layout.xaxis.categoryarray")
    shares = {}
    for trace in page.evaluate(f"() => {chart}.data.slice(0, 2).map(t => [t.x, t.y])"):
        shares.update(dict(zip(trace[0], plotly_array(trace[1]).tolist())))
    assert [shares[c] for c in order] == sorted(shares.values(), reverse=True)  # highest share of zeros first
    drawn = page.evaluate(f"() => [...{chart}.querySelectorAll('.xaxislayer-above .x2tick text')].map(t => t.textContent)")
    assert drawn[:3] == order[:3]  # the axis as drawn follows
    assert page.evaluate(f"() => {chart}.layout.xaxis2.title.text") == "channel (sorted by share of zeros)"
    assert not page.errors


def test_kernel_grid_has_a_tile_per_filter_and_follows_the_epoch_slider(page, server_url):
    page.goto(server_url + "?views=weights")
    wait_for_graph(page, "weights-grid", timeout=FIRST_WAIT)
    wait_for_graph(page, "weights-before-after", traces=2)
    assert filters_drawn(page) == set(range(16))  # conv1 of the built-in model
    before = figure_signature(page, "#weights-grid")
    assert re.search(r"conv1, epoch (\d+):", before).group(1) != "0"  # the trained checkpoint first

    thumb = page.locator("#weights-epoch [role=slider]")
    thumb.focus()
    page.keyboard.press("Home")  # back to the untrained weights, drawn in the browser from the stored epochs
    after = wait_for_change(page, "#weights-grid", before, timeout=WAIT)
    assert "conv1, epoch 0:" in after
    assert filters_drawn(page) == set(range(16))
    marker = page.evaluate("""() => document.querySelector('#weights-evolution .js-plotly-plot').layout.shapes
        .filter(s => s.yref === 'y domain').map(s => s.x0)""")
    assert marker == [0]
    assert "nearly orthogonal" in page.inner_text("#weights-summary")
    assert not page.errors


def test_a_clicked_channel_shows_its_top_images_and_rings_them_in_the_scatter(page, server_url):
    page.goto(server_url + "?views=channels")
    wait_for_scatter(page, timeout=FIRST_WAIT)
    wait_for_graph(page, "channels-stats", traces=2, timeout=FIRST_WAIT)
    page.wait_for_selector("#channels-dead-table table", timeout=WAIT)
    assert page.inner_text("#channels-summary").count("dead") >= 1
    bars = page.evaluate("() => document.querySelector('#channels-stats .js-plotly-plot').data[0].x")
    channel = bars[len(bars) // 2]  # a channel that fires (dead ones are another trace)

    click_bar_until_its_gallery_shows(page, channel)
    shown = gallery_indices(page)
    assert len(shown) == 9
    assert sorted(wait_for_highlight(page, len(shown))) == sorted(shown)
    assert f"channel {channel}" in page.inner_text("#channels-gallery-note")
    assert not page.errors


def test_a_click_on_a_feature_map_opens_that_channels_gallery(page, server_url):
    page.goto(server_url + "?views=channels")
    wait_for_scatter(page, timeout=FIRST_WAIT)
    clicked = click_scatter_point(page, rank=2)
    wait_for_detail(page, clicked["index"], timeout=WAIT)
    wait_for_graph(page, "feature-maps", traces=2)
    page.evaluate("() => document.querySelector('#feature-maps').scrollIntoView({block: 'center'})")
    # The first tile is the image's most active channel; the label trace names it.
    target = page.evaluate(
        """() => { const gd = document.querySelector('#feature-maps .js-plotly-plot'); const fl = gd._fullLayout;
            const box = gd.getBoundingClientRect(); const labels = gd.data[1];
            return {x: box.left + fl.xaxis._offset + fl.xaxis.d2p(labels.x[0] + 4),
                    y: box.top + fl.yaxis._offset + fl.yaxis.d2p(labels.y[0] + 4), channel: Number(labels.text[0])}; }""")
    page.mouse.click(target["x"], target["y"])
    page.wait_for_function(GALLERY_SHOWS, arg=target["channel"], timeout=WAIT, polling=POLL)
    assert sorted(wait_for_highlight(page, 9)) == sorted(gallery_indices(page))
    assert not page.errors
