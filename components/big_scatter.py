"""The scatter of a layout too big to send whole (over :data:`BIG_SCATTER` points): a density image of every point
in the view, coloured by class, under a bounded set of points that carry hover and click.

Why not every point: plotly's WebGL scatter with a million points (13 MB of typed arrays) took 11 s to a first
picture and 1.4-3.2 s a zoom in headless Chromium on a 2-core machine. Here the browser gets one PNG of the view
(a 2-D histogram per colour group, a few hundred KB whatever the number of points) and at most
:data:`SHOWN_POINTS` points; a zoom or pan asks the server for the view again. The shown points are the first ones
in view in a fixed random order (:func:`point_priority`), so panning keeps the points that stay in view and a
zoom adds points without moving the others. Box and lasso selections are counted over every point here, not over
the points the browser holds (:func:`inside_box`, :func:`inside_polygon`).

Arrays in, figure out: numpy, plotly and PIL only (this runs in the web server, which holds the layout as a job
result, and never imports torch).
"""
from __future__ import annotations

import base64
import functools
import io

import numpy as np
import plotly.graph_objects as go

from components import scatter, theme

BIG_SCATTER = 100_000  # above this many points the scatter is a density image plus SHOWN_POINTS points
SHOWN_POINTS = 20_000  # points drawn as markers (hover, click): software WebGL pans 20,000 smoothly
DENSITY_PIXELS = (800, 480)  # the density image's bins across and up: about the plot area at 1280x720
DENSITY_TRACE = "density"
BIG_MARKER_SIZE = 4  # over a density image smaller markers leave the density visible
PRIORITY_SEED = 0


def is_big(count: int) -> bool:
    return count > BIG_SCATTER


def full_view(coords: np.ndarray, margin: float = 0.02) -> tuple[tuple[float, float], tuple[float, float]]:
    """The x and y ranges that hold every point, with ``margin`` of the extent either side (never empty)."""
    ranges = []
    for axis in range(2):
        low, high = float(np.min(coords[:, axis])), float(np.max(coords[:, axis]))
        pad = margin * (high - low) or 0.5
        ranges.append((low - pad, high + pad))
    return ranges[0], ranges[1]


def inside_box(coords: np.ndarray, x_range, y_range) -> np.ndarray:
    """(N,) bool: the points inside the closed box ``x_range`` x ``y_range`` (each (low, high), either order)."""
    x0, x1 = sorted(map(float, x_range))
    y0, y1 = sorted(map(float, y_range))
    x, y = coords[:, 0], coords[:, 1]
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def inside_polygon(coords: np.ndarray, xs, ys) -> np.ndarray:
    """(N,) bool: the points inside the polygon with vertices ``xs``, ``ys`` (a lasso; closed implicitly; even-odd
    rule, as plotly's own lasso). Only the points inside the polygon's bounding box are tested, by matplotlib's
    compiled point-in-path test."""
    from matplotlib.path import Path  # compiled, and imported only when a lasso is drawn

    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    inside = np.zeros(len(coords), dtype=bool)
    if len(xs) < 3:
        return inside
    candidates = np.flatnonzero(inside_box(coords, (xs.min(), xs.max()), (ys.min(), ys.max())))
    if candidates.size:
        path = Path(np.column_stack([xs, ys]), closed=False)
        inside[candidates] = path.contains_points(np.asarray(coords[candidates], dtype=np.float64))
    return inside


@functools.lru_cache(maxsize=4)
def point_priority(count: int, seed: int = PRIORITY_SEED) -> np.ndarray:
    """(count,) int: the point indices in a fixed random order, the order in which points in view are shown."""
    order = np.random.default_rng(seed).permutation(count)
    order.flags.writeable = False  # shared by every request (a pure function's cached answer)
    return order


def shown_points(coords: np.ndarray, priority: np.ndarray, x_range, y_range,
                 cap: int = SHOWN_POINTS) -> tuple[np.ndarray, int]:
    """The points to draw in a view: (indices of at most ``cap`` points inside it, the first in ``priority`` order,
    then sorted; how many points the view holds in all)."""
    in_view = inside_box(coords, x_range, y_range)
    ranked = np.flatnonzero(in_view[priority])
    return np.sort(priority[ranked[:cap]]), int(ranked.size)


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.strip()
    if colour.startswith("#"):
        digits = colour[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return tuple(int(digits[k:k + 2], 16) for k in (0, 2, 4))  # type: ignore[return-value]
    values = colour[colour.index("(") + 1:colour.index(")")].split(",")
    return tuple(int(float(v)) for v in values[:3])  # type: ignore[return-value]


def density_counts(coords: np.ndarray, groups: np.ndarray, group_count: int, x_range, y_range,
                   pixels: tuple[int, int] = DENSITY_PIXELS) -> np.ndarray:
    """(group_count, height, width) int: the points of each colour group per pixel of the view, row 0 at the TOP
    (largest y), as an image is stored. A pixel holds the half-open cell [x, x + dx) x [y, y + dy)."""
    width, height = pixels
    x0, x1 = map(float, x_range)
    y0, y1 = map(float, y_range)
    column = np.floor((coords[:, 0].astype(np.float64) - x0) * (width / (x1 - x0))).astype(np.int64)
    row_up = np.floor((coords[:, 1].astype(np.float64) - y0) * (height / (y1 - y0))).astype(np.int64)
    keep = (column >= 0) & (column < width) & (row_up >= 0) & (row_up < height)
    cell = (np.asarray(groups, dtype=np.int64)[keep] * height + (height - 1 - row_up[keep])) * width + column[keep]
    return np.bincount(cell, minlength=group_count * height * width).reshape(group_count, height, width)


def density_rgba(counts: np.ndarray, colours: list[str]) -> np.ndarray:
    """(height, width, 4) uint8: each pixel the mean colour of its points' groups, weighted by their counts, and
    opaque by the logarithm of its count (a pixel of one point still shows; the densest is fully opaque)."""
    palette = np.asarray([_rgb(c) for c in colours], dtype=np.float64)  # (K, 3)
    total = counts.sum(axis=0)
    mixed = np.einsum("khw,kc->hwc", counts, palette) / np.maximum(total, 1)[..., None]
    peak = max(int(total.max()), 1)
    alpha = np.where(total > 0, 0.3 + 0.7 * np.log1p(total) / np.log1p(peak), 0.0)
    return np.concatenate([mixed, 255 * alpha[..., None]], axis=-1).round().astype(np.uint8)


def png_data_uri(rgba: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", compress_level=1)  # fast: it is sent once per view
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def density_image(coords: np.ndarray, groups: np.ndarray, colours: list[str], x_range, y_range,
                  pixels: tuple[int, int] = DENSITY_PIXELS) -> dict:
    """The density image of the view as a layout image under the points, stretched over the view's ranges.

    A layout image, not an image trace: with an image trace in the subplot, plotly's WebGL hover and click picked
    points up to 100 px from the mouse (measured in headless Chromium), and it would reverse the y axis."""
    counts = density_counts(coords, groups, len(colours), x_range, y_range, pixels)
    x0, x1 = map(float, x_range)
    y0, y1 = map(float, y_range)
    return {"name": DENSITY_TRACE, "source": png_data_uri(density_rgba(counts, colours)), "xref": "x", "yref": "y",
            "x": x0, "y": y1, "sizex": x1 - x0, "sizey": y1 - y0, "xanchor": "left", "yanchor": "top",
            "sizing": "stretch", "layer": "below"}


def customdata(indices: np.ndarray, labels: np.ndarray, predicted: np.ndarray, classes: list[str],
               output_names: list[str] | None, samples: np.ndarray | None) -> list:
    """``[sample, true name, predicted name]`` per shown point (as the small scatter's points carry)."""
    names = np.asarray(classes, dtype=object)
    keys = indices if samples is None else np.asarray(samples)[indices]
    predicted_names = scatter._predicted_names(np.asarray(predicted)[indices], classes, output_names)
    return np.stack([np.asarray(keys, dtype=np.int64), names[np.asarray(labels)[indices]], predicted_names],
                    axis=1).tolist()


def view_content(coords, labels, predicted, classes, color_by, priority, x_range, y_range,
                 output_names=None, samples=None, cap: int = SHOWN_POINTS) -> dict:
    """What a view of the big scatter shows: ``density`` (a layout image), ``points`` (x, y, customdata and
    marker of the shown points), ``indices`` (the shown points), ``in_view`` (how many points the view holds)."""
    groups = scatter.colour_groups(color_by, labels, predicted, classes)
    indices, in_view = shown_points(coords, priority, x_range, y_range, cap)
    sizes = BIG_MARKER_SIZE
    if groups["wrong"] is not None:
        sizes = np.where(groups["wrong"][indices], BIG_MARKER_SIZE + 2, BIG_MARKER_SIZE).astype(np.int8).tolist()
    marker = scatter.discrete_marker(groups["values"][indices], groups["colours"], sizes)
    points = {"x": np.asarray(coords[indices, 0], dtype=float).tolist(),
              "y": np.asarray(coords[indices, 1], dtype=float).tolist(),
              "customdata": customdata(indices, labels, predicted, classes, output_names, samples),
              "marker": marker}
    return {"density": density_image(coords, groups["values"], groups["colours"], x_range, y_range),
            "points": points, "indices": indices, "in_view": in_view, "legend": groups["legend"]}


def view_note(in_view: int, shown: int, total: int) -> str:
    if in_view <= shown:
        return f"all {in_view:,} points in view drawn ({total:,} in all)"
    return f"{in_view:,} points in view: density of all, {shown:,} drawn as points"


def big_scatter(coords: np.ndarray, labels: np.ndarray, predicted: np.ndarray, classes: list[str],
                color_by: str = "true", selected: int | None = None, title: str = "", revision: str = "",
                output_names: list[str] | None = None, samples: np.ndarray | None = None,
                priority: np.ndarray | None = None) -> dict:
    """The whole figure (a plotly figure dict) for a big layout, zoomed out: ``layout.images[0]`` the density
    image of every point; ``data[0]`` the shown points (:func:`shown_points`), then the legend keys and the
    selection ring, as in :func:`scatter.embedding_scatter`. ``samples`` (N,): the sample each point stands for (default: its index).
    """
    priority = point_priority(len(coords)) if priority is None else priority
    x_range, y_range = full_view(coords)
    content = view_content(coords, labels, predicted, classes, color_by, priority, x_range, y_range, output_names,
                           samples)
    figure = go.Figure()
    figure.add_trace(go.Scattergl(
        mode="markers", name=scatter.POINTS_TRACE, showlegend=False,
        hovertemplate="#%{customdata[0]}<br>true: %{customdata[1]}<br>predicted: %{customdata[2]}<extra></extra>",
    ))
    for trace in scatter.legend_traces(content["legend"], scatter.legend_slots(classes)):
        figure.add_trace(go.Scattergl(**{key: value for key, value in trace.items() if key != "type"}))
    ring = {"x": [], "y": [], "customdata": []}
    if selected is not None:
        # The ring sits on the selected sample's point (with ``samples``: the first point standing for it).
        points = [selected] if samples is None else np.flatnonzero(np.asarray(samples) == selected)[:1].tolist()
        if points and 0 <= points[0] < len(coords):
            ring = {"x": [float(coords[points[0], 0])], "y": [float(coords[points[0], 1])],
                    "customdata": [[int(selected), "", ""]]}
    figure.add_trace(go.Scattergl(
        name=scatter.SELECTION_TRACE, mode="markers", showlegend=False, hoverinfo="skip",
        marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": theme.SELECTED}}, **ring))
    theme.base_layout(figure, title)
    figure.update_layout(
        legend={"title": {"text": scatter.COLOUR_MODES.get(color_by, "")}, "itemsizing": "constant",
                "font": {"size": theme.FONT_SIZE}, "itemclick": False, "itemdoubleclick": False},
        uirevision=revision, clickmode="event", hovermode="closest", dragmode="pan", images=[content["density"]],
        meta={"big": True, "count": int(len(coords)), "in_view": content["in_view"],
              "shown": int(len(content["indices"])), "view": {"x": list(x_range), "y": list(y_range)}},
    )
    # Fixed ranges: the density image covers exactly the view it was drawn for.
    figure.update_xaxes(showticklabels=False, zeroline=False, showgrid=False, range=list(x_range), autorange=False)
    figure.update_yaxes(showticklabels=False, zeroline=False, showgrid=False, range=list(y_range), autorange=False)
    # The points go in after plotly.py's validation, which takes seconds over 20,000 rows of customdata.
    drawn = figure.to_plotly_json()
    drawn["data"][0].update(content["points"])
    return drawn
