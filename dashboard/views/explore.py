"""The centre view: the embedding scatter of a layer, the click that selects a sample, and the shareable URL."""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from dash import Input, Output, State, ctx, dcc, html, no_update

from components import controls, scatter, theme
from compute import embedding
from dashboard.views.context import HIGHLIGHT, OPEN_VIEWS, SELECTION, STATUS, URL, ViewContext, selected_index
from dashboard.views.panel import BackgroundPanel, Request

NAME = "explore"
TITLE = "Feature distribution"
OPENABLE = False

LAYER = "layer"
EMBEDDING = "embedding-method"
FEATURES = "feature-mode"
COLOR_BY = "color-by"
SCATTER = "scatter"
URL_KEYS = ("layer", "embedding", "features", "color", "sample", "views")

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

# Draws what another view marks (HIGHLIGHT) as two traces of its own, in the browser: rings on data points found by
# their sample index, stars for new points, and lines between them. The figure's other traces are untouched.
DRAW_HIGHLIGHT = """
function(mark, figure) {
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

panel = BackgroundPanel(
    "scatter",
    outputs=[Output(SCATTER, "figure"), Output(STATUS, "children")],
    inputs=[Input(LAYER, "value"), Input(EMBEDDING, "value"), Input(FEATURES, "value"), Input(COLOR_BY, "value")],
    states=[State(SELECTION, "data")],
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
        class_name="explore",
    )


def scatter_request(layer, method, features, color_by, selection) -> Request:
    return Request("explore.scatter", {"layer": layer, "method": method, "features": features},
                   {"color_by": color_by, "selected": selected_index(selection), "layer": layer, "method": method})


def scatter_render(context: ViewContext):
    classes = context.meta.classes

    def render(result: dict, shown: dict) -> tuple:
        title = scatter.scatter_title(embedding.EMBEDDERS[shown["method"]].label, shown["layer"], result["mode"],
                                      result["values_per_image"], len(result["labels"]))
        figure = scatter.embedding_scatter(result["coords"], result["labels"], result["predicted"], classes,
                                           shown["color_by"], shown["selected"], title=title,
                                           revision=f"{shown['layer']}|{shown['method']}|{result['mode']}")
        return figure, f"test accuracy {result['accuracy']:.1%}"

    return render


def _query(search: str | None) -> dict[str, str]:
    values = parse_qs((search or "").lstrip("?"))
    return {key: values[key][0] for key in URL_KEYS if key in values}


def register(app, context: ViewContext) -> None:
    panel.register(app, context, scatter_request, scatter_render(context))

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

    url_controls = [(LAYER, "layer"), (EMBEDDING, "embedding"), (FEATURES, "features"), (COLOR_BY, "color")]
    meta = context.meta
    allowed = {"layer": set(meta.layers), "embedding": set(embedding.EMBEDDERS),
               "features": {"auto", "flat", "pooled"}, "color": set(scatter.COLOUR_MODES)}

    @app.callback(
        Output(URL, "search"),
        *[Output(component, "value") for component, _ in url_controls],
        Output(SELECTION, "data", allow_duplicate=True),
        Output(OPEN_VIEWS, "value"),
        Input(URL, "search"),
        *[Input(component, "value") for component, _ in url_controls],
        Input(SELECTION, "data"),
        Input(OPEN_VIEWS, "value"),
        State(OPEN_VIEWS, "options"),
        prevent_initial_call="initial_duplicate",
    )
    def sync_url(search, layer, method, features, color_by, selection, open_views, view_options):
        """The URL mirrors the view (layer, method, features, colour, sample, open views), so it can be shared."""
        unchanged = [no_update] * (len(url_controls) + 2)
        # On page load every input fires at once; the URL then wins, so a shared link restores its view.
        if ctx.triggered_id is None or f"{URL}.search" in ctx.triggered_prop_ids:
            query = _query(search)
            if not query:
                return no_update, *unchanged
            values = [query[key] if query.get(key) in allowed[key] else no_update for _, key in url_controls]
            sample = query.get("sample", "")
            chosen = {"index": int(sample)} if sample.isdigit() and int(sample) < meta.count else no_update
            known = {option["value"] for option in view_options or []}
            views = [v for v in query["views"].split(",") if v in known] if "views" in query else no_update
            return no_update, *values, chosen, views
        current = dict(zip((key for _, key in url_controls), (layer, method, features, color_by)))
        index = selected_index(selection)
        if index is not None:
            current["sample"] = index
        current["views"] = ",".join(open_views or [])
        return "?" + urlencode(current), *unchanged
