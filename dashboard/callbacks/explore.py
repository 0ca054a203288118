"""The centre view: the embedding scatter, the click that selects a sample, and the shareable URL."""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode

import numpy as np
from dash import Input, Output, State, ctx, no_update

from components import scatter
from compute import embedding, predictions
from dashboard import ids, state
from dashboard.callbacks.common import error_message, progress_reporter, selected_index
from dashboard.config import AppConfig

URL_KEYS = ("layer", "embedding", "features", "color", "sample")

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


def scatter_figure(config: AppConfig, layer: str, method: str, features: str, color_by: str,
                   selection, progress=None):
    """Compute (or read from the cache) the embedding of ``layer`` and build the scatter; returns (figure, status)."""
    report = progress or (lambda _f, _t: None)
    dataset = state.dataset(config)
    model = state.model(config, progress=lambda f, t: report(0.3 * f, t))
    report(0.3, "class probabilities")
    probabilities = predictions.probabilities(model, dataset)
    predicted = probabilities.argmax(1).numpy()
    labels = dataset.labels.numpy()
    shape = tuple(state.layer_output_shape(config, layer))
    mode = embedding.feature_mode(shape, features)
    coords = embedding.layer_embedding(model, dataset, layer, method, mode,
                                       progress=lambda f, t: report(0.35 + 0.65 * f, t))
    test = dataset.is_test.numpy()
    accuracy = float((predicted[test] == labels[test]).mean()) if test.any() else float("nan")
    label = embedding.EMBEDDERS[method].label
    mode_note = "channel means" if mode == "pooled" else "flattened"
    title = f"{label} of layer {layer} ({mode_note}, {int(np.prod(shape))} values per image), {len(labels)} images"
    figure = scatter.embedding_scatter(coords, labels, predicted, dataset.classes, color_by, selected_index(selection),
                                       title=title, revision=f"{layer}|{method}|{mode}")
    return figure, f"test accuracy {accuracy:.1%}"


def _query(search: str | None) -> dict[str, str]:
    values = parse_qs((search or "").lstrip("?"))
    return {key: values[key][0] for key in URL_KEYS if key in values}


def register(app, config: AppConfig) -> None:
    @app.callback(
        Output(ids.SCATTER, "figure"),
        Output(ids.SCATTER_MESSAGE, "children"),
        Output(ids.STATUS, "children"),
        Input(ids.LAYER, "value"),
        Input(ids.EMBEDDING, "value"),
        Input(ids.FEATURES, "value"),
        Input(ids.COLOR_BY, "value"),
        State(ids.SELECTION, "data"),
        background=True,
        interval=300,
        progress=[Output(ids.SCATTER_PROGRESS, "value"), Output(ids.SCATTER_PROGRESS_TEXT, "children")],
        running=[(Output(ids.SCATTER_PROGRESS_BLOCK, "style"), {"display": "flex"}, {"display": "none"})],
    )
    def update_scatter(set_progress, layer, method, features, color_by, selection):
        try:
            figure, status = scatter_figure(config, layer, method, features, color_by, selection,
                                            progress_reporter(set_progress))
        except Exception as error:  # the page must show the problem, not freeze
            return no_update, error_message(error), no_update
        return figure, None, status

    @app.callback(
        Output(ids.SELECTION, "data"),
        Input(ids.SCATTER, "clickData"),
        prevent_initial_call=True,
    )
    def select_clicked_point(click):
        try:
            return {"index": int(click["points"][0]["customdata"][0])}
        except (TypeError, KeyError, IndexError, ValueError):
            return no_update

    app.clientside_callback(
        HIGHLIGHT_SELECTION,
        Output(ids.SCATTER, "figure", allow_duplicate=True),
        Input(ids.SELECTION, "data"),
        State(ids.SCATTER, "figure"),
        prevent_initial_call=True,
    )

    controls = [(ids.LAYER, "layer"), (ids.EMBEDDING, "embedding"), (ids.FEATURES, "features"), (ids.COLOR_BY, "color")]

    @app.callback(
        Output(ids.URL, "search"),
        *[Output(component, "value") for component, _ in controls],
        Output(ids.SELECTION, "data", allow_duplicate=True),
        Input(ids.URL, "search"),
        *[Input(component, "value") for component, _ in controls],
        Input(ids.SELECTION, "data"),
        prevent_initial_call="initial_duplicate",
    )
    def sync_url(search, layer, method, features, color_by, selection):
        """The URL mirrors the view (layer, method, features, colour, sample), so a view can be shared."""
        unchanged = [no_update] * (len(controls) + 1)
        # On page load every input fires at once; the URL then wins, so a shared link restores its view.
        if ctx.triggered_id is None or f"{ids.URL}.search" in ctx.triggered_prop_ids:
            query = _query(search)
            if not query:
                return no_update, *unchanged
            allowed = {
                "layer": set(state.layer_names(config)), "embedding": set(embedding.EMBEDDERS),
                "features": {"auto", "flat", "pooled"}, "color": set(scatter.COLOUR_MODES),
            }
            values = [query[key] if query.get(key) in allowed[key] else no_update for _, key in controls]
            sample = query.get("sample", "")
            chosen = {"index": int(sample)} if sample.isdigit() and int(sample) < len(state.dataset(config)) else no_update
            return no_update, *values, chosen
        current = dict(zip((key for _, key in controls), (layer, method, features, color_by)))
        index = selected_index(selection)
        if index is not None:
            current["sample"] = index
        return "?" + urlencode(current), *unchanged
