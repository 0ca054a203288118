"""The centre view: the embedding scatter of a layer, the click that selects a sample, and the shareable URL."""
from __future__ import annotations

import numpy as np
from dash import Input, Output, Patch, State, dcc, html, no_update

from components import controls, scatter, theme
from compute.specs import embedding
from dashboard.views import big_scatter
from dashboard.views.context import (EMBEDDING, FEATURES, HIGHLIGHT, LAYER, SCATTER, SELECTION, STATUS,
                                     ViewContext, draw_at_gl_pixel_ratio, selected_index)
from dashboard.views.links import Entry
from dashboard.views.panel import BackgroundPanel, Request

NAME = "explore"
TITLE = "Feature distribution"
OPENABLE = False

COLOR_BY = "color-by"
SCATTER_LAYOUT = "scatter-layout"  # the layout to show: x, y in sample order, title, stage (small keys + 2N numbers)
SCATTER_DRAWN = "scatter-drawn"  # what the figure's points trace holds: {"count", "color"}, set when it is drawn
FIRST_SCREEN = "scatter-first-screen"  # a store whose only job is to install FIT_FIRST_SCREEN once per page
ANIMATION_MS = 600
# What a link keeps of this view (the selected sample and the open views are the page's: see links.PAGE_STATE).
URL_STATE = [Entry("layer", LAYER), Entry("embedding", EMBEDDING), Entry("features", FEATURES), Entry("color", COLOR_BY)]

# Moves the selection ring in the browser: no server round trip, and the figure's points stay where they are.
HIGHLIGHT_SELECTION = """
function(selection, figure) {
    if (!figure || !figure.data) { return window.dash_clientside.no_update; }
    const index = selection && Number.isInteger(selection.index) ? selection.index : null;
    let ring = {x: [], y: [], customdata: []};
    for (const trace of figure.data) {
        if (trace.name === 'selected' || !trace.customdata || index === null) { continue; }
        const k = trace.customdata.findIndex(row => Number(row[0]) === index);
        if (k >= 0) { ring = {x: [trace.x[k]], y: [trace.y[k]], customdata: [trace.customdata[k]]}; break; }
    }
    const data = figure.data.map(trace => trace.name === 'selected' ? Object.assign({}, trace, ring) : trace);
    return Object.assign({}, figure, {data: data});
}
"""

# Moves the points to a new layout in the browser (a layer or method change, t-SNE converging): Scattergl cannot
# tween (plotly.js animates only SVG scatter traces, plotly/plotly.js#5688), so each animation frame restyles x/y
# of the points, the selection ring and the highlight rings; every other trace and layout.images stay as they are.
# The old layout is first brought to the new one's centre and spread (per axis: the axes autorange, so that is the
# same picture), so a t-SNE that starts at 1e-4 moves rather than shrinks. Ends by setting the final figure.
PLACE_POINTS = """
function(placed, figure) {
    const none = window.dash_clientside.no_update;
    if (!placed || !placed.x || !figure || !figure.data || !figure.data.length || figure.data[0].name !== 'points'
        || (figure.data[0].x || []).length !== placed.x.length) { return none; }
    const gd = document.querySelector('#%(graph)s .js-plotly-plot');
    const n = placed.x.length, newX = placed.x, newY = placed.y;
    const shown = !!(gd && gd.data && gd.data[0] && gd.data[0].name === 'points' && (gd.data[0].x || []).length === n);
    const oldX = Array.from(shown ? gd.data[0].x : figure.data[0].x);
    const oldY = Array.from(shown ? gd.data[0].y : figure.data[0].y);
    // The rings that sit on points: [trace number, sample indices].
    const ringsOf = traces => {
        const moving = [];
        traces.forEach((t, k) => {
            if (t.name === 'selected' && t.customdata && t.customdata.length) {
                moving.push([k, Array.from(t.customdata, row => Number(row[0]))]);
            } else if (t.name === 'highlight' && t.text && t.text.length) {
                moving.push([k, Array.from(t.text, text => Number(String(text).replace('#', '')))]);
            }
        });
        return moving;
    };
    // The figure at the new layout, built from what is drawn when it is final (a colour patch or a ring drawn
    // while the points moved is kept), else from the figure the callback was given.
    const final = (traces, before) => {
        const data = traces.map(t => Object.assign({}, t));
        data[0].x = newX; data[0].y = newY;
        for (const [k, idx] of ringsOf(traces)) { data[k].x = idx.map(i => newX[i]); data[k].y = idx.map(i => newY[i]); }
        const layout = Object.assign({}, before, {
            title: Object.assign({}, before.title || {}, {text: placed.title}), uirevision: placed.revision,
            xaxis: Object.assign({}, before.xaxis || {}, {autorange: true}),
            yaxis: Object.assign({}, before.yaxis || {}, {autorange: true})});
        return Object.assign({}, figure, {data: data, layout: layout});
    };
    const result = () => shown ? final(gd.data, gd.layout) : final(figure.data, figure.layout || {});
    const moving = ringsOf(figure.data);
    if (!shown || !window.Plotly) { return result(); }
    const spread = values => {
        let mean = 0, square = 0;
        for (const v of values) { mean += v; }
        mean /= values.length;
        for (const v of values) { square += (v - mean) * (v - mean); }
        return [mean, Math.sqrt(square / values.length) || 1];
    };
    const [ax, sx] = spread(oldX), [ay, sy] = spread(oldY), [bx, tx] = spread(newX), [by, ty] = spread(newY);
    const token = {};
    window.featurescopeScatterAnimation = token;  // a newer layout stops this animation where it is
    // The final figure goes in with set_props, not a returned Promise: a callback left pending (a frame that
    // threw) would hold back every later update of the figure.
    const finish = () => {
        if (window.featurescopeScatterAnimation === token) {
            window.featurescopeScatterAnimation = null;
            window.dash_clientside.set_props('%(graph)s', {figure: result()});
        }
    };
    const start = performance.now();
    const step = now => {
        if (window.featurescopeScatterAnimation !== token) { return; }
        try {
            const t = Math.min(1, (now - start) / %(duration)d), e = t < 0.5 ? 2 * t * t : 1 - 2 * (1 - t) * (1 - t);
            const x = new Array(n), y = new Array(n);
            for (let i = 0; i < n; i++) {
                x[i] = bx + (1 - e) * (oldX[i] - ax) * tx / sx + e * (newX[i] - bx);
                y[i] = by + (1 - e) * (oldY[i] - ay) * ty / sy + e * (newY[i] - by);
            }
            const xs = [x], ys = [y], traces = [0];
            for (const [k, idx] of moving) {
                if (k < gd.data.length) { xs.push(idx.map(i => x[i])); ys.push(idx.map(i => y[i])); traces.push(k); }
            }
            Plotly.restyle(gd, {x: xs, y: ys}, traces);
            if (t < 1) { requestAnimationFrame(step); } else { finish(); }
        } catch (error) {
            finish();  // the figure changed under the animation: jump to the end
        }
    };
    // The new title at once: the points are on their way to the layout it names.
    Plotly.relayout(gd, {'xaxis.autorange': true, 'yaxis.autorange': true, 'title.text': placed.title});
    requestAnimationFrame(step);
    return none;
}
""" % {"graph": SCATTER, "duration": ANIMATION_MS}

# Draws what another view marks (HIGHLIGHT) as two traces of its own, in the browser: rings on data points found by
# their sample index, stars for new points, and lines between them. The figure's other traces are untouched.
DRAW_HIGHLIGHT = """
function(mark, _drawn, figure) {
    const marked = ['highlight', 'highlight-new', 'highlight-lines'];
    if (!figure || !figure.data || (!mark && !figure.data.some(t => marked.includes(t.name)))) {
        return window.dash_clientside.no_update;  // nothing to draw or clear: no redraw
    }
    const rings = {x: [], y: [], text: []}, stars = {x: [], y: [], text: []}, lines = {x: [], y: []};
    if (mark) {
        const wanted = new Set((mark.indices || []).map(Number));
        for (const trace of figure.data) {
            if (!trace.customdata || ['selected', 'highlight', 'highlight-new', 'highlight-lines'].includes(trace.name)) {
                continue;
            }
            trace.customdata.forEach((row, k) => {
                if (wanted.has(Number(row[0]))) { rings.x.push(trace.x[k]); rings.y.push(trace.y[k]);
                                                  rings.text.push('#' + row[0]); }
            });
        }
        for (const p of (mark.points || [])) { stars.x.push(p[0]); stars.y.push(p[1]); stars.text.push(p[2] || ''); }
        for (const l of (mark.lines || [])) { lines.x.push(l[0], l[2], null); lines.y.push(l[1], l[3], null); }
    }
    const label = (mark && mark.label) || '';
    const extra = [
        {type: 'scattergl', mode: 'lines', name: 'highlight-lines', x: lines.x, y: lines.y, hoverinfo: 'skip',
         showlegend: false, line: {color: '#111827', width: 2, dash: 'dot'}},
        {type: 'scattergl', mode: 'markers', name: 'highlight', x: rings.x, y: rings.y, text: rings.text,
         hovertemplate: '%{text}<extra>' + label + '</extra>', showlegend: rings.x.length > 0,
         legendgroup: 'highlight', marker: {size: 15, color: 'rgba(0,0,0,0)', line: {width: 3, color: '#D55E00'}}},
        {type: 'scattergl', mode: 'markers', name: 'highlight-new', x: stars.x, y: stars.y, text: stars.text,
         hovertemplate: '%{text}<extra></extra>', showlegend: false,
         marker: {size: 20, symbol: 'star', color: '#D55E00', line: {width: 1.5, color: '#111827'}}},
    ];
    const kept = figure.data.filter(t => !['highlight', 'highlight-new', 'highlight-lines'].includes(t.name));
    return Object.assign({}, figure, {data: kept.concat(extra)});
}
"""

# The whole scatter on the first screen (a 1280x720 projector included): the CSS sizes the graph to the screen's
# height less its top (--scatter-top), which depends on how the header and the toolbar wrap at this width and
# theme, so it is measured here whenever they change size. A tour's banner above the scatter is not counted: the
# tour scrolls to its step's view.
FIT_FIRST_SCREEN = """
function(_id) {
    if (!window.featurescopeFirstScreen) {
        window.featurescopeFirstScreen = true;
        const measure = () => {
            const graph = document.getElementById('%(graph)s');
            if (!graph) { return; }
            const banner = document.getElementById('tour-banner');
            const skip = banner && banner.offsetParent ? banner.getBoundingClientRect().height + 12 : 0;
            const top = Math.round(graph.getBoundingClientRect().top + window.scrollY - skip);
            const root = document.documentElement;
            if (root.style.getPropertyValue('--scatter-top') !== top + 'px') {
                root.style.setProperty('--scatter-top', top + 'px');
            }
        };
        const watch = new ResizeObserver(measure);
        for (const selector of ['header', '.page-toolbar', '#tour-banner', '.explore']) {
            document.querySelectorAll(selector).forEach(element => watch.observe(element));
        }
        measure();
    }
    return window.dash_clientside.no_update;
}
""" % {"graph": SCATTER}

# The panel streams layouts (PCA, then t-SNE as it converges) into SCATTER_LAYOUT; the browser moves the points.
# The figure itself is drawn whole once (draw_points), then only patched: colours in place, positions in place.
panel = BackgroundPanel(
    "scatter",
    outputs=[Output(SCATTER_LAYOUT, "data"), Output(STATUS, "children")],
    inputs=[Input(LAYER, "value"), Input(EMBEDDING, "value"), Input(FEATURES, "value")],
)


def toolbar(context: ViewContext) -> html.Div:
    meta = context.meta
    return html.Div([
        controls.labelled("Layer", dcc.Dropdown(id=LAYER, options=list(meta.layers), value=meta.default_layer,
                                                clearable=False), "any named layer of the model (one name per call)"),
        controls.labelled("Embedding", dcc.RadioItems(
            id=EMBEDDING, value=context.config.embedding, inline=True,
            options=[{"label": m.label, "value": name, "title": m.description} for name, m in embedding.EMBEDDERS.items()],
        )),
        controls.labelled("Features", dcc.RadioItems(
            id=FEATURES, value="auto", inline=True,
            options=[{"label": "auto", "value": "auto"}, {"label": "flattened", "value": "flat"},
                     {"label": "channel means", "value": "pooled"}],
        ), "conv maps flattened, or averaged over space; auto averages very large maps"),
        controls.labelled("Colour by", dcc.RadioItems(
            id=COLOR_BY, value="true", inline=True,
            options=[{"label": label, "value": value} for value, label in scatter.COLOUR_MODES.items()],
        )),
    ], className="toolbar")


def layout(context: ViewContext) -> html.Section:
    return controls.card(
        TITLE,
        html.P("Each point is one image, placed by its activations at the chosen layer. Click a point to inspect it.",
               className="hint"),
        panel.status(),
        dcc.Graph(id=SCATTER, figure=scatter.empty_figure("preparing the embedding ..."),
                  config=theme.graph_config("featurescope-embedding"), className="scatter-graph"),
        big_scatter.notes(),
        dcc.Store(id=SCATTER_LAYOUT), dcc.Store(id=SCATTER_DRAWN), dcc.Store(id=FIRST_SCREEN),
        class_name="explore",
    )


def scatter_request(layer, method, features) -> Request:
    return Request("explore.scatter", {"layer": layer, "method": method, "features": features},
                   {"layer": layer, "method": method})


def background_requests(layers: list[str], default_layer: str, method: str) -> list[Request]:
    """The scatters computed after start-up, in order: the PCA layout of every layer first (one extraction and a
    PCA each, about half a second), so that any later layer change draws its first picture from the cache at once;
    then ``method``'s layout of every layer, the slow part (seconds each), the default layer first."""
    ordered = [default_layer, *(name for name in layers if name != default_layer)]
    first = [scatter_request(layer, "pca", "auto") for layer in ordered] if method != "pca" else []
    return first + [scatter_request(layer, method, "auto") for layer in ordered]


def _rounded(values) -> list[float]:
    """Coordinates as short JSON numbers: 5 significant digits of the layout's extent are more than a screen shows."""
    values = np.asarray(values, dtype=np.float64)
    extent = float(np.ptp(values)) if values.size else 0.0
    decimals = int(max(0, 5 - np.floor(np.log10(extent)))) if extent > 0 else 6
    return np.round(values, decimals).tolist()


def scatter_title(result: dict, shown: dict, final: bool = True) -> str:
    """The title of the layout ``result`` holds (a final result or a partial one, whose ``method`` may be PCA)."""
    method = result.get("method") or shown["method"]
    title = scatter.scatter_title(embedding.EMBEDDERS[method].label, shown["layer"], result["mode"],
                                  result["values_per_image"], len(result["labels"]), result.get("sample_size"))
    if result.get("generated"):
        title += " (generated layout)"
    if not final:
        wanted = embedding.EMBEDDERS[shown["method"]].label
        title += f" · {wanted} converging" if method == shown["method"] else f" · {wanted} on its way"
    return title


def placed_layout(result: dict, shown: dict, final: bool) -> dict:
    """What the page's PLACE_POINTS needs to move the points: x, y in sample order, the title, and ``revision`` (the
    layer, method and features: a new one resets the zoom)."""
    coords = np.asarray(result["coords"])
    if big_scatter.is_big_result(result):  # the server draws a big layout (dashboard.views.big_scatter): no points
        return {"title": scatter_title(result, shown, final), "final": final, "stage": result.get("method"),
                "revision": f"{shown['layer']}|{shown['method']}|{result['mode']}", "count": len(coords)}
    return {"x": _rounded(coords[:, 0]), "y": _rounded(coords[:, 1]), "title": scatter_title(result, shown, final),
            "revision": f"{shown['layer']}|{shown['method']}|{result['mode']}", "final": final,
            "stage": result.get("method")}


def scatter_render(context: ViewContext):
    def render(result: dict, shown: dict) -> tuple:
        return placed_layout(result, shown, True), f"test accuracy {result['accuracy']:.1%}"

    return render


def scatter_render_partial(context: ViewContext):
    def render(partial: dict, shown: dict) -> tuple:
        return placed_layout(partial, shown, False), f"test accuracy {partial['accuracy']:.1%}"

    return render


def scatter_figure(result: dict, shown: dict, classes: list[str], color_by: str, selected: int | None, final: bool,
                   output_names: list[str] | None = None):
    """The whole figure for a final or partial result: drawn once per page (later layouts only move its points)."""
    return scatter.embedding_scatter(result["coords"], result["labels"], result["predicted"], classes, color_by,
                                     selected, title=scatter_title(result, shown, final),
                                     revision=f"{shown['layer']}|{shown['method']}|{result['mode']}",
                                     output_names=output_names)


def recolour(result: dict, classes: list[str], color_by: str) -> Patch:
    """A colour change as a Patch: the points' colour numbers and sizes, and the legend keys; x, y, customdata and
    every other trace (rings, highlights, thumbnails) stay in the browser."""
    look = scatter.point_colours(color_by, result["labels"], result["predicted"], classes)
    patch = Patch()
    patch["data"][0]["marker"] = look["marker"]
    for slot, key in enumerate(scatter.legend_traces(look["legend"], scatter.legend_slots(classes))):
        patch["data"][1 + slot]["name"] = key["name"]
        patch["data"][1 + slot]["showlegend"] = key["showlegend"]
        patch["data"][1 + slot]["marker"] = key["marker"]
    patch["layout"]["legend"]["title"]["text"] = scatter.COLOUR_MODES.get(color_by, "")
    return patch


def _latest(service, job: dict | None) -> tuple[dict | None, dict, bool]:
    """The scatter job's result, or else its latest partial result, held by the service; whether it is final."""
    if not job or service is None:
        return None, {}, False
    status = service.status(job["key"])
    result = status.result if status.state == "done" else status.partial
    usable = isinstance(result, dict) and "coords" in result
    return (result if usable else None), job.get("context", {}), status.state == "done"


def register(app, context: ViewContext) -> None:
    panel.register(app, context, scatter_request, scatter_render(context), scatter_render_partial(context))
    draw_at_gl_pixel_ratio(app, SCATTER)
    app.clientside_callback(FIT_FIRST_SCREEN, Output(FIRST_SCREEN, "data"), Input(FIRST_SCREEN, "id"))
    classes = context.meta.classes

    @app.callback(
        Output(SCATTER, "figure", allow_duplicate=True),
        Output(SCATTER_DRAWN, "data"),
        Output(big_scatter.VIEW, "data", allow_duplicate=True),
        Output(big_scatter.VIEW_NOTE, "children", allow_duplicate=True),
        Input(panel.job_id, "data"),
        Input(COLOR_BY, "value"),
        State(SCATTER_DRAWN, "data"),
        State(SELECTION, "data"),
        State(big_scatter.VIEW, "data"),
        prevent_initial_call=True,
    )
    def draw_points(job, color_by, drawn, selection, view):
        """The figure whole when the page has none of this data yet; a colour change as a Patch; else nothing (new
        layouts move the points in the browser: PLACE_POINTS). A big layout: :func:`draw_big`."""
        result, shown, final = _latest(context.service, job)
        if result is None:
            return no_update, no_update, no_update, no_update
        if big_scatter.is_big_result(result):
            return draw_big(result, shown, final, job, color_by, drawn, selection, view)
        count = len(result["labels"])
        if drawn and drawn.get("count") == count:
            if drawn.get("color") == color_by:
                return no_update, no_update, no_update, no_update
            return recolour(result, classes, color_by), {"count": count, "color": color_by}, no_update, ""
        figure = scatter_figure(result, shown, classes, color_by, selected_index(selection), final,
                                context.meta.model_classes)
        return figure, {"count": count, "color": color_by}, None, ""

    def draw_big(result, shown, final, job, color_by, drawn, selection, view):
        """A big layout: whole and zoomed out when the page shows another layout; the same layout in a new colour
        or a newer stage of it (t-SNE converging) as a Patch of the view on screen."""
        count, revision = len(result["labels"]), f"{shown['layer']}|{shown['method']}|{result['mode']}"
        stage = f"{job.get('key')}|{job.get('revision', 0)}|{final}"
        now = {"count": count, "color": color_by, "big": True, "revision": revision, "stage": stage}
        title = scatter_title(result, shown, final)
        if drawn and drawn.get("big") and drawn.get("revision") == revision and view:
            if drawn.get("color") == color_by and drawn.get("stage") == stage:
                return no_update, no_update, no_update, no_update
            patch, note = big_scatter.view_patch(result, classes, color_by, view, context.meta.model_classes, title)
            return patch, now, no_update, note
        figure, view, note = big_scatter.full_figure(result, classes, color_by, selected_index(selection), title,
                                                     revision, context.meta.model_classes)
        return figure, now, view, note

    big_scatter.register(app, SCATTER, panel.job_id, COLOR_BY, SCATTER_DRAWN,
                         lambda job: _latest(context.service, job), classes, context.meta.model_classes)

    app.clientside_callback(
        PLACE_POINTS,
        Output(SCATTER, "figure", allow_duplicate=True),
        Input(SCATTER_LAYOUT, "data"),
        State(SCATTER, "figure"),
        prevent_initial_call=True,
    )

    @app.callback(Output(SELECTION, "data"), Input(SCATTER, "clickData"), prevent_initial_call=True)
    def select_clicked_point(click):
        try:
            return {"index": int(click["points"][0]["customdata"][0])}
        except (TypeError, KeyError, IndexError, ValueError):
            return no_update

    app.clientside_callback(
        DRAW_HIGHLIGHT,
        Output(SCATTER, "figure", allow_duplicate=True),
        Input(HIGHLIGHT, "data"),
        Input(SCATTER_DRAWN, "data"),  # a figure drawn whole gets the marks again
        State(SCATTER, "figure"),
        prevent_initial_call=True,
    )

    app.clientside_callback(
        HIGHLIGHT_SELECTION,
        Output(SCATTER, "figure", allow_duplicate=True),
        Input(SELECTION, "data"),
        State(SCATTER, "figure"),
        prevent_initial_call=True,
    )
