"""A million points in the page: the server starts on a generated layout of 1,000,000 points over the digits
(FEATURESCOPE_GENERATED_POINTS); the first picture is a density image with points on it, a zoom draws the points
inside the new view (the server's count equal to numpy's), a lasso counts every point inside it (numpy's count over
all million), and a click on a point opens the sample it stands for."""
from __future__ import annotations

import numpy as np
import pytest

from components import big_scatter
from compute.generated_layout import GENERATED_POINTS_ENV, generated_layout
from tests.browser.conftest import start_server, stop_server
from tests.browser.helpers import RING_ON, scatter_point, wait_for_detail

pytestmark = pytest.mark.browser

POINTS = 1_000_000
GRAPH = "document.querySelector('#scatter .js-plotly-plot')"
BIG_DRAWN = f"""() => {{ const gd = {GRAPH};
    return !!(gd && gd.layout && gd.layout.meta && gd.layout.meta.big && gd.data[0] && gd.data[0].x
              && gd.data[0].x.length && Array.from(gd.querySelectorAll('image')).some(
                  image => (image.getAttribute('href') || '').startsWith('data:image/png'))); }}"""
VIEW_SHOWN = f"""(view) => {{ const gd = {GRAPH}; const meta = gd && gd.layout && gd.layout.meta;
    return !!(meta && meta.view && meta.view.x[0] === view.x[0] && meta.view.x[1] === view.x[1]
              && meta.view.y[0] === view.y[0] && meta.view.y[1] === view.y[1]); }}"""


@pytest.fixture(scope="module")
def million_url(trained_model):
    process, url = start_server("--no-precompute", env={GENERATED_POINTS_ENV: str(POINTS)})
    yield url
    stop_server(process)


@pytest.fixture(scope="module")
def coords(digits):
    # The layout's positions depend on the samples' labels only (compute.generated_layout): the same here as there.
    labels = digits.labels.numpy()
    return generated_layout(labels, labels, POINTS)["coords"]


def inside_polygon_reference(coords: np.ndarray, xs: list[float], ys: list[float]) -> np.ndarray:
    """Even-odd ray casting over every point, one polygon edge at a time, in plain numpy (float64)."""
    x, y = coords[:, 0].astype(np.float64), coords[:, 1].astype(np.float64)
    inside = np.zeros(len(coords), dtype=bool)
    for k in range(len(xs)):
        x1, y1, x2, y2 = xs[k], ys[k], xs[(k + 1) % len(xs)], ys[(k + 1) % len(xs)]
        if y1 == y2:
            continue
        crosses = (y1 > y) != (y2 > y)
        inside ^= crosses & (x < x1 + (y - y1) * (x2 - x1) / (y2 - y1))
    return inside


def zoom(page, view: dict) -> dict:
    """Zoom as a drag does (a relayout of both ranges) and wait for the server's points of that view."""
    for attempt in range(4):
        page.evaluate(f"(view) => Plotly.relayout({GRAPH}, {{'xaxis.range': view.x, 'yaxis.range': view.y}})", view)
        try:
            page.wait_for_function(VIEW_SHOWN, arg=view, timeout=45_000)
            break
        except Exception:  # playwright's TimeoutError: a whole figure answered late replaced the view; zoom again
            if attempt == 3:
                raise
    return page.evaluate("() => { const gd = " + GRAPH + "; return {meta: gd.layout.meta, x: Array.from(gd.data[0].x),"
                         " y: Array.from(gd.data[0].y), samples: gd.data[0].customdata.map(row => Number(row[0]))}; }")


def sparse_view(coords: np.ndarray, wanted: int = 1_500) -> dict:
    """A 1 x 1 window of the layout holding about ``wanted`` points (all drawn: fewer than the cap)."""
    best = None
    for x0 in np.arange(-14.0, 14.0, 1.0):
        for y0 in np.arange(-14.0, 14.0, 1.0):
            count = int(big_scatter.inside_box(coords, (x0, x0 + 1), (y0, y0 + 1)).sum())
            if 300 <= count and (best is None or abs(count - wanted) < abs(best[0] - wanted)):
                best = (count, float(x0), float(y0))
    return {"x": [best[1], best[1] + 1.0], "y": [best[2], best[2] + 1.0]}


def lasso(page, xs: list[float], ys: list[float]) -> None:
    """Draw a lasso through these data points with the mouse (plotly's own lasso, as a user draws it)."""
    page.evaluate(f"() => Plotly.relayout({GRAPH}, {{dragmode: 'lasso'}})")
    page.evaluate("() => { window.lastLasso = null; " + GRAPH + ".on('plotly_selected', e => {"
                  " window.lastLasso = e && e.lassoPoints ? e.lassoPoints : null; }); }")
    pixels = page.evaluate(
        f"""([xs, ys]) => {{ const gd = {GRAPH}; const fl = gd._fullLayout; const box = gd.getBoundingClientRect();
            return xs.map((x, k) => [box.left + fl._size.l + fl.xaxis.d2p(x), box.top + fl._size.t + fl.yaxis.d2p(ys[k])]); }}""",
        [xs, ys])
    page.mouse.move(*pixels[0])
    page.mouse.down()
    for start, end in zip(pixels, pixels[1:] + pixels[:1]):
        for step in range(1, 9):
            page.mouse.move(start[0] + (end[0] - start[0]) * step / 8, start[1] + (end[1] - start[1]) * step / 8)
    page.mouse.up()


def test_a_million_points_zoom_lasso_and_click(page, million_url, coords):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(million_url)
    page.wait_for_function(BIG_DRAWN, timeout=240_000)
    page.evaluate("() => document.querySelector('#scatter').scrollIntoView({block: 'center'})")
    first = page.evaluate("() => { const gd = " + GRAPH + "; return [gd.layout.meta, gd.layout.images[0].name,"
                          " gd.data[0].x.length, gd.layout.title.text]; }")
    meta, density_type, drawn, title = first
    assert meta["count"] == POINTS and meta["in_view"] == POINTS and density_type == "density"
    assert drawn == big_scatter.SHOWN_POINTS and title.endswith("1,000,000 images (generated layout)")

    # A zoom: the points drawn are the server's choice among the points in the new view, counted as numpy counts.
    view = {"x": [5.0, 12.0], "y": [-2.0, 4.0]}
    shown = zoom(page, view)
    inside = big_scatter.inside_box(coords, view["x"], view["y"])
    assert shown["meta"]["in_view"] == int(inside.sum()) > big_scatter.SHOWN_POINTS
    assert len(shown["x"]) == big_scatter.SHOWN_POINTS
    expected, _ = big_scatter.shown_points(coords, big_scatter.point_priority(POINTS), view["x"], view["y"])
    np.testing.assert_allclose(shown["x"], coords[expected, 0], rtol=1e-6)
    np.testing.assert_allclose(shown["y"], coords[expected, 1], rtol=1e-6)
    assert shown["samples"] == (expected % 1797).tolist()
    assert f"{int(inside.sum()):,} points in view" in page.inner_text("#scatter-view-note")

    # A lasso counts every point inside it, not only the 20,000 drawn.
    lasso(page, [7.0, 11.0, 10.5, 6.0], [-1.5, -1.0, 3.0, 2.5])
    page.wait_for_function("() => window.lastLasso && document.querySelector('#scatter-selected-count').innerText",
                           timeout=60_000)
    polygon = page.evaluate("() => window.lastLasso")
    counted = int(page.inner_text("#scatter-selected-count"))
    reference = inside_polygon_reference(coords, polygon["x"], polygon["y"])
    assert counted == int(reference.sum())
    drawn_inside = inside_polygon_reference(coords[expected], polygon["x"], polygon["y"]).sum()
    assert counted > drawn_inside > 0
    assert f"lasso selection: {counted:,} points" in page.inner_text("#scatter-selected-note")

    # Zoomed into a sparse corner every point in view is drawn; a click on one opens the sample it stands for.
    # The lasso cleared (its selection dims the points and takes the next click), back to panning.
    page.evaluate(f"() => Plotly.relayout({GRAPH}, {{dragmode: 'pan', selections: []}})")
    page.wait_for_function("() => !document.querySelector('#scatter-selected-count').innerText", timeout=60_000)
    corner = sparse_view(coords)
    shown = zoom(page, corner)
    inside = np.flatnonzero(big_scatter.inside_box(coords, corner["x"], corner["y"]))
    assert shown["meta"]["in_view"] == len(inside) == len(shown["x"])
    np.testing.assert_allclose(sorted(shown["x"]), np.sort(coords[inside, 0]), rtol=1e-6)
    target = scatter_point(page, rank=0)
    page.evaluate("() => { window.lastClick = null; " + GRAPH + ".on('plotly_click', e => { const p = e.points[0];"
                  " window.lastClick = {x: p.x, y: p.y, sample: Number(p.customdata[0])}; }); }")
    # Plotly answers a click with the point last hovered: the mouse first rests on the point until plotly has
    # hovered it (the mouse came from the lasso's end, far away), then clicks.
    page.mouse.move(target["x"], target["y"])
    page.wait_for_function(
        "(t) => { const gd = " + GRAPH + "; const h = gd._hoverdata && gd._hoverdata[0];"
        " return !!(h && h.customdata && Number(h.customdata[0]) === t.index); }", arg=target, timeout=60_000)
    page.mouse.click(target["x"], target["y"])
    page.wait_for_function("() => !!window.lastClick", timeout=60_000)
    clicked = page.evaluate("() => window.lastClick")
    # The point plotly took (the nearest to the click) is one of the layout's points in view, under the mouse.
    distance = page.evaluate(
        "(p) => { const fl = " + GRAPH + "._fullLayout; const box = " + GRAPH + ".getBoundingClientRect();"
        " return [box.left + fl._size.l + fl.xaxis.d2p(p.x), box.top + fl._size.t + fl.yaxis.d2p(p.y)]; }", clicked)
    assert np.hypot(distance[0] - target["x"], distance[1] - target["y"]) < 12
    nearest = inside[np.argmin(np.hypot(coords[inside, 0] - clicked["x"], coords[inside, 1] - clicked["y"]))]
    assert clicked["sample"] == nearest % 1797
    wait_for_detail(page, clicked["sample"])
    page.wait_for_function(RING_ON, arg=clicked["sample"], timeout=60_000)
    assert not page.errors
