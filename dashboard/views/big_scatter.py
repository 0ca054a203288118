"""The explore view's scatter when the layout is big (over ``components.big_scatter.BIG_SCATTER`` points): drawn
by the server as a density image and a bounded set of points; a zoom or pan asks for the new view (a ``Patch`` of
the image and the points, never the whole figure); a box or lasso selection is counted over every point.

Not a view of its own: the explore view registers these callbacks with its own ids. The layout stays where it
is, in the job result the service holds; the browser holds only what is on screen and the view's ranges.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from dash import Input, Output, Patch, State, dcc, html, no_update

from components import big_scatter, scatter

VIEW = "scatter-view"  # {"x": [low, high], "y": [low, high]}: what the big scatter shows; None before it is drawn
VIEW_NOTE = "scatter-view-note"  # "123,456 points in view: density of all, 20,000 drawn as points"
SELECTED_NOTE = "scatter-selected-note"  # what the last box or lasso selection holds, over every point
SELECTED_COUNT = "scatter-selected-count"  # the same as data: {"count", "kind"} (tests read it)
WATCH = "scatter-view-watch"  # the output of WATCH_VIEW, which returns nothing
POINTS_INDEX = 0  # data[0] holds the points, then the legend keys and the ring; layout.images[0] the density

# A whole figure drawn after the user zoomed (two draws asked at once, the second answered after the zoom; a
# layer's layout arriving while zoomed) keeps the user's ranges (uirevision) but holds the zoomed-out density and
# points: after each redraw, a view that is not the one the figure was drawn for (layout.meta.view) is asked for
# again, once per figure. A zoom or pan the user makes asks by itself (relayoutData): it is not asked twice.
WATCH_VIEW = """
function(drawn) {
    const gd = document.querySelector('#%(graph)s .js-plotly-plot');
    if (!gd || !drawn || !drawn.big || gd.featurescopeViewWatch) { return window.dash_clientside.no_update; }
    gd.featurescopeViewWatch = true;
    const hasRanges = event => event && Object.keys(event).some(key => /^[xy]axis\.(range|autorange)/.test(key));
    gd.on('plotly_relayout', event => { if (hasRanges(event)) { gd.featurescopeAskedFor = gd.layout.meta; } });
    gd.on('plotly_afterplot', () => {
        const meta = gd.layout && gd.layout.meta;
        if (!meta || !meta.big || !meta.view || gd.featurescopeAskedFor === meta) { return; }
        const x = gd.layout.xaxis.range, y = gd.layout.yaxis.range;
        const differs = (a, b) => Math.abs(a[0] - b[0]) + Math.abs(a[1] - b[1]) > 1e-6 * Math.abs(b[1] - b[0]);
        if (x && y && (differs(x, meta.view.x) || differs(y, meta.view.y))) {
            gd.featurescopeAskedFor = meta;
            setTimeout(() => Plotly.relayout(gd, {'xaxis.range': x.slice(), 'yaxis.range': y.slice()}), 0);
        }
    });
    return window.dash_clientside.no_update;
}
"""


def is_big_result(result: dict | None) -> bool:
    return bool(result) and big_scatter.is_big(len(result["labels"]))


def notes():
    """The line under the scatter (empty, and without height, for a small layout)."""
    return html.Div([html.Span(id=VIEW_NOTE), " ", html.Span(id=SELECTED_NOTE),
                     html.Span(id=SELECTED_COUNT, hidden=True), dcc.Store(id=VIEW),
                     dcc.Store(id=WATCH)], className="scatter-notes")


def _range(relayout: dict, axis: str) -> list[float] | None:
    if f"{axis}.range[0]" in relayout and f"{axis}.range[1]" in relayout:
        return sorted([float(relayout[f"{axis}.range[0]"]), float(relayout[f"{axis}.range[1]"])])
    if isinstance(relayout.get(f"{axis}.range"), list) and len(relayout[f"{axis}.range"]) == 2:
        return sorted(float(v) for v in relayout[f"{axis}.range"])
    return None


def view_after(relayout: dict | None, view: dict | None, coords: np.ndarray) -> dict | None:
    """The view after a plotly relayout event: its new ranges (an axis it does not move keeps its range; an
    autorange or reset goes back to every point), or None when the event moves no axis (a resize, a drag mode)."""
    if not isinstance(relayout, dict):
        return None
    full_x, full_y = big_scatter.full_view(coords)
    current = view or {"x": list(full_x), "y": list(full_y)}
    moved = {}
    for axis, full in (("xaxis", full_x), ("yaxis", full_y)):
        if relayout.get(f"{axis}.autorange"):
            moved[axis[0]] = list(full)
        else:
            found = _range(relayout, axis)
            if found is not None and found[1] > found[0]:
                moved[axis[0]] = found
    if not moved:
        return None
    return {"x": moved.get("x", current["x"]), "y": moved.get("y", current["y"])}


def full_figure(result: dict, classes: list[str], color_by: str, selected: int | None, title: str, revision: str,
                output_names: list[str] | None):
    """The whole big figure, zoomed out; and its view."""
    figure = big_scatter.big_scatter(result["coords"], result["labels"], result["predicted"], classes, color_by,
                                     selected, title=title, revision=revision, output_names=output_names,
                                     samples=result.get("samples"))
    meta = figure["layout"]["meta"]
    view = {"x": list(figure["layout"]["xaxis"]["range"]), "y": list(figure["layout"]["yaxis"]["range"])}
    return figure, view, big_scatter.view_note(meta["in_view"], meta["shown"], meta["count"])


def view_patch(result: dict, classes: list[str], color_by: str, view: dict, output_names: list[str] | None,
               title: str | None = None) -> tuple[Patch, str]:
    """The figure's density image, points and legend keys for ``view`` as a Patch (and the title, when given);
    the axes, rings and highlights stay as the browser has them."""
    coords = result["coords"]
    content = big_scatter.view_content(coords, result["labels"], result["predicted"], classes, color_by,
                                       big_scatter.point_priority(len(coords)), view["x"], view["y"], output_names,
                                       result.get("samples"))
    patch = Patch()
    patch["layout"]["images"] = [content["density"]]
    for key, value in content["points"].items():
        patch["data"][POINTS_INDEX][key] = value
    # A box or lasso marks points by their place in the trace: over new points it would mark others (and plotly's
    # WebGL picking then answered a hover or a click with a point 100 px away), so a new view starts unselected.
    patch["data"][POINTS_INDEX]["selectedpoints"] = None
    patch["layout"]["selectionrevision"] = f"{view['x']}|{view['y']}"
    for slot, key in enumerate(scatter.legend_traces(content["legend"], scatter.legend_slots(classes))):
        patch["data"][POINTS_INDEX + 1 + slot]["name"] = key["name"]
        patch["data"][POINTS_INDEX + 1 + slot]["showlegend"] = key["showlegend"]
        patch["data"][POINTS_INDEX + 1 + slot]["marker"] = key["marker"]
    patch["layout"]["legend"]["title"]["text"] = scatter.COLOUR_MODES.get(color_by, "")
    shown = int(len(content["indices"]))
    patch["layout"]["meta"] = {"big": True, "count": int(len(coords)), "in_view": content["in_view"], "shown": shown,
                               "view": view}
    if title is not None:
        patch["layout"]["title"]["text"] = title
    return patch, big_scatter.view_note(content["in_view"], shown, len(coords))


def selection_count(result: dict, selected_data: dict | None) -> dict | None:
    """{"count", "kind", "by_class"} of a box ("range") or lasso ("lassoPoints") selection over every point of the
    layout; None when the event holds neither (a selection cleared)."""
    if not isinstance(selected_data, dict):
        return None
    coords = result["coords"]
    if isinstance(selected_data.get("lassoPoints"), dict):
        lasso = selected_data["lassoPoints"]
        inside, kind = big_scatter.inside_polygon(coords, lasso.get("x") or [], lasso.get("y") or []), "lasso"
    elif isinstance(selected_data.get("range"), dict) and {"x", "y"} <= set(selected_data["range"]):
        box = selected_data["range"]
        inside, kind = big_scatter.inside_box(coords, box["x"], box["y"]), "box"
    else:
        return None
    labels = np.asarray(result["labels"])[inside]
    by_class = np.bincount(labels, minlength=int(np.max(result["labels"])) + 1) if labels.size else np.zeros(0, int)
    return {"count": int(inside.sum()), "kind": kind, "by_class": by_class.astype(int).tolist()}


def selection_note(counted: dict, classes: list[str]) -> str:
    largest = sorted(((n, k) for k, n in enumerate(counted["by_class"]) if n), reverse=True)[:3]
    parts = ", ".join(f"{classes[k] if k < len(classes) else k}: {n:,}" for n, k in largest)
    return f"· {counted['kind']} selection: {counted['count']:,} points" + (f" (most: {parts})" if parts else "")


def register(app, graph: str, job_store: str, color_by: str, drawn: str, latest: Callable, classes: list[str],
             output_names: list[str] | None) -> None:
    """The zoom and the selection of the big scatter. ``latest(job) -> (result, shown, final)``."""
    app.clientside_callback(WATCH_VIEW % {"graph": graph}, Output(WATCH, "data"), Input(drawn, "data"))

    @app.callback(
        Output(graph, "figure", allow_duplicate=True),
        Output(VIEW, "data", allow_duplicate=True),
        Output(VIEW_NOTE, "children", allow_duplicate=True),
        Input(graph, "relayoutData"),
        State(job_store, "data"),
        State(color_by, "value"),
        State(drawn, "data"),
        State(VIEW, "data"),
        prevent_initial_call=True,
    )
    def follow_the_view(relayout, job, colour, drawn_now, view):
        """A zoom or pan: the density and the points of the new view, from every point."""
        if not drawn_now or not drawn_now.get("big"):
            return no_update, no_update, no_update
        result, _shown, _final = latest(job)
        if not is_big_result(result) or len(result["labels"]) != drawn_now.get("count"):
            return no_update, no_update, no_update
        new_view = view_after(relayout, view, result["coords"])
        if new_view is None:
            return no_update, no_update, no_update
        patch, note = view_patch(result, classes, colour, new_view, output_names)
        return patch, new_view, note

    @app.callback(
        Output(SELECTED_NOTE, "children"),
        Output(SELECTED_COUNT, "children"),
        Input(graph, "selectedData"),
        State(job_store, "data"),
        State(drawn, "data"),
        prevent_initial_call=True,
    )
    def count_the_selection(selected_data, job, drawn_now):
        """A box or lasso: counted over every point, not only those the browser holds."""
        if not drawn_now or not drawn_now.get("big"):
            return no_update, no_update
        result, _shown, _final = latest(job)
        if not is_big_result(result):
            return no_update, no_update
        counted = selection_count(result, selected_data)
        if counted is None:
            return "", ""
        return selection_note(counted, classes), str(counted["count"])
