"""Images on the scatter: hovering a point shows its image; a toggle draws the images at their embedded positions.

Pixels never pass through a callback: the hover card and the drawn images load ``/_featurescope/thumbnail/...``
(dashboard/thumbnails.py) by URL. The hover card is placed in the browser from the point's pixel. The image mode
adds ``layout.images`` to the scatter with a ``Patch`` (the points are not resent); with many points it draws a
representative subset, one point per cell of a grid over the layout, at most :data:`MAX_IMAGES`.
"""
from __future__ import annotations

import math

import numpy as np
from dash import Input, Output, Patch, dcc, html, no_update

from components import big_scatter, controls
from dashboard.thumbnails import thumbnail_url
from dashboard.views.context import ViewContext
from dashboard.views.links import Entry

NAME = "thumbnails"
TITLE = "Images on the scatter"
OPENABLE = False

SCATTER = "scatter"  # the explore view's graph
SCATTER_JOB = "scatter-job"  # its panel's job store
MODE = "thumbnails-mode"
SIZE = "thumbnails-size"
TOOLTIP = "thumbnails-tooltip"
HOVER_IMAGE = "thumbnails-hover-image"
HOVER_TEXT = "thumbnails-hover-text"
NOTE = "thumbnails-note"
MAX_IMAGES = 400  # drawn at most, whatever the number of points: ~400 small PNGs keep pan and zoom smooth
HOVER_PIXELS = 96
DEFAULT_SIZE_PERCENT = 5
URL_STATE = [Entry("thumbnails", MODE), Entry("thumbnails.size", SIZE)]  # what a link keeps of this view

# The hover card sits in a fixed layer over the page, at the hovered point's pixel (computed from the axes, since a
# WebGL scatter's hover event carries no bounding box).
SHOW_HOVER = """
function(hover) {
    const hidden = [false, window.dash_clientside.no_update, window.dash_clientside.no_update, ''];
    const point = hover && hover.points && hover.points[0];
    const row = point && point.customdata;
    const index = row === undefined ? null : Number(Array.isArray(row) ? row[0] : row);
    const gd = document.querySelector('#%s .js-plotly-plot');
    if (gd && !gd._thumbnailsUnhover && gd.on) {
        // The card goes when the pointer leaves the point or the page scrolls (a fixed card would float off it).
        gd._thumbnailsUnhover = true;
        const hide = () => window.dash_clientside.set_props('%s', {show: false});
        gd.on('plotly_unhover', hide);
        window.addEventListener('scroll', hide, {passive: true});
    }
    if (index === null || !Number.isInteger(index) || !gd || !gd._fullLayout) { return hidden; }
    const fl = gd._fullLayout, box = gd.getBoundingClientRect();
    const x = box.left + fl._size.l + fl.xaxis.d2p(point.x), y = box.top + fl._size.t + fl.yaxis.d2p(point.y);
    const label = Array.isArray(row) && row.length > 1 ? ' · ' + row[1] : '';
    return [true, {x0: x - 6, x1: x + 6, y0: y - 6, y1: y + 6}, '%s/' + index + '.png?size=%d', '#' + index + label];
}
"""


def representative_subset(coords: np.ndarray, limit: int = MAX_IMAGES, per_side: int | None = None) -> np.ndarray:
    """Indices (sorted) of at most ``limit`` points spread over the layout: a grid of ``per_side`` x ``per_side``
    cells (at most floor(sqrt(limit)) a side) over the points' bounding box, keeping in each occupied cell the point
    nearest its centre. ``coords``: (N, 2)."""
    coords = np.asarray(coords, dtype=np.float64)
    if len(coords) == 0:
        return np.zeros(0, dtype=np.int64)
    side = max(1, min(per_side or limit, math.isqrt(max(1, limit))))
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    cell = np.clip(np.floor((coords - low) / span * side).astype(np.int64), 0, side - 1)
    cell_id = cell[:, 0] * side + cell[:, 1]
    distance = (((coords - low) / span * side - (cell + 0.5)) ** 2).sum(axis=1)
    order = np.lexsort((distance, cell_id))  # by cell, nearest the centre first
    first = np.r_[True, cell_id[order][1:] != cell_id[order][:-1]]
    return np.sort(order[first])


def image_layout(coords: np.ndarray, size_percent: float, limit: int = MAX_IMAGES) -> list[dict]:
    """``layout.images`` for a representative subset: each image centred on its point, ``size_percent`` of the
    layout's width wide (the grid's cells are as wide as an image, so images rarely cover each other)."""
    coords = np.asarray(coords, dtype=np.float64)
    if len(coords) == 0:
        return []
    fraction = min(max(float(size_percent), 1.0), 25.0) / 100.0
    chosen = representative_subset(coords, limit, per_side=max(1, int(1 / fraction)))
    span = np.ptp(coords, axis=0)
    width, height = (float(s) * fraction if s > 0 else 1.0 for s in span)
    pixels = 32 if fraction < 0.04 else 64
    return [{"source": thumbnail_url(int(i), pixels), "xref": "x", "yref": "y", "x": float(coords[i, 0]),
             "y": float(coords[i, 1]), "sizex": width, "sizey": height, "xanchor": "center", "yanchor": "middle",
             "sizing": "contain", "layer": "above", "opacity": 0.95} for i in chosen]


def toolbar(_context: ViewContext) -> html.Div:
    """The image controls, in the page's toolbar beside the scatter's own, and the hover card's fixed layer."""
    return html.Div([
        controls.labelled("Images", dcc.Checklist(
            id=MODE, value=[], inline=True, options=[{"label": " draw at the points", "value": "on"}]),
            f"the images themselves at their places (at most {MAX_IMAGES}, one per region when there are more)"),
        controls.labelled("Image size", dcc.Slider(
            id=SIZE, min=2, max=12, step=1, value=DEFAULT_SIZE_PERCENT, marks={2: "small", 12: "large"},
            tooltip={"placement": "bottom"}), "width of each image, in percent of the layout's width"),
        html.Span(id=NOTE, className="hint"),
        html.Div(dcc.Tooltip(id=TOOLTIP, direction="right", children=html.Div([
            html.Img(id=HOVER_IMAGE, className="thumbnails-hover-image", width=HOVER_PIXELS, height=HOVER_PIXELS),
            html.Div(id=HOVER_TEXT, className="thumbnails-hover-text")])), className="thumbnails-hover-layer"),
    ], className="thumbnails-controls")


def layout(_context: ViewContext) -> list:
    return []


def register(app, context: ViewContext) -> None:
    service = context.service
    from dashboard.thumbnails import ROUTE

    app.clientside_callback(SHOW_HOVER % (SCATTER, TOOLTIP, ROUTE, HOVER_PIXELS),
                            Output(TOOLTIP, "show"), Output(TOOLTIP, "bbox"), Output(HOVER_IMAGE, "src"),
                            Output(HOVER_TEXT, "children"), Input(SCATTER, "hoverData"), prevent_initial_call=True)

    @app.callback(Output(SCATTER, "figure", allow_duplicate=True), Output(NOTE, "children"),
                  Input(MODE, "value"), Input(SIZE, "value"), Input(SCATTER_JOB, "data"), prevent_initial_call=True)
    def draw_images(mode, size, job):
        patch = Patch()
        status = service.status(job["key"]) if isinstance(job, dict) and job.get("key") else None
        result = status.result if status is not None and status.state == "done" else None
        if isinstance(result, dict) and "labels" in result and big_scatter.is_big(len(result["labels"])):
            # The big scatter's layout.images holds its density image (components.big_scatter): left alone.
            return no_update, (f"not drawn above {big_scatter.BIG_SCATTER:,} points" if mode else "")
        if not mode:
            patch["layout"]["images"] = []
            return patch, ""
        if not isinstance(result, dict) or "coords" not in result:
            return no_update, "the images appear once the scatter is drawn"
        images = image_layout(result["coords"], size or DEFAULT_SIZE_PERCENT)
        patch["layout"]["images"] = images
        count = len(result["coords"])
        return patch, (f"{len(images):,} of {count:,} images drawn, one per region" if len(images) < count
                       else f"{len(images):,} images")
