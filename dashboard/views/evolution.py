"""Evolution during training: a layer's embedding at every saved epoch, aligned and animated in the browser.

Slides 5 and 6 (Rauber et al. 2017). One job, ``evolution.embed``, returns every epoch's aligned layout; the
figure carries them all as plotly frames, so the slider and the play button run in the browser with no round
trip per frame. The epoch the slider shows is a small key in the browser (``EPOCH``, set from plotly's animation
events); it marks the per-epoch numbers and drives a second run's scatter ("compare with") to the same epoch.

A click selects the image page-wide (``SELECTION``). Its ring and path are moved in every frame by a ``Patch``
made on the server from the job's result (the browser sends the job's key, not the arrays). Another run is
trained from here (``evolution.train``, with progress) and joins the run lists when it ends.
"""
from __future__ import annotations

import base64
import time

import numpy as np
from dash import Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import MissingCallbackContextException

from components import controls, scatter, theme
from components import evolution as figures
from compute.specs import embedding, training
from dashboard.views.context import LAYER as PAGE_LAYER
from dashboard.views.context import SELECTION, ViewContext, draw_at_gl_pixel_ratio, selected_index
from dashboard.views.links import Entry, Number, Text
from dashboard.views.panel import BackgroundPanel, Message, Request

NAME = "evolution"
TITLE = "Evolution during training: the embedding from the untrained to the trained model"
MENU = "Evolution"  # its name in the toolbar's Views checklist
OPENABLE = True
OPEN_AT_START = False

LAYER = "evolution-layer"
METHOD = "evolution-method"
RUN = "evolution-run"
COMPARE = "evolution-compare"
SCATTER = "evolution-scatter"
COMPARE_SCATTER = "evolution-compare-scatter"
COMPARE_COLUMN = "evolution-compare-column"
BEFORE_AFTER = "evolution-before-after"
METRICS = "evolution-metrics"
ALIGNMENT = "evolution-alignment"
TRACK = "evolution-track"
EPOCH = "evolution-epoch"  # the epoch the main scatter's slider shows (set in the browser)
TRAIN = "evolution-train"
TRAIN_NOTE = "evolution-train-note"
TRAINED = "evolution-trained"  # the runs trained from this page: [{"name", "settings", "test_accuracy"}, ...]
TRAIN_FIELDS = {"epochs": ("Epochs", 3, 1), "lr": ("Learning rate", 3e-3, "any"), "width": ("Width", 1.0, "any"),
                "seed": ("Seed", 1, 1)}
NO_RUN = ""
SCATTER_HEIGHT = 560
# What a link keeps: the runs are names (the list of runs arrives after the page is built); the epoch the slider
# shows (0, the untrained model, when absent): the scatters open at it.
URL_STATE = [Entry("evolution.layer", LAYER), Entry("evolution.embedding", METHOD),
             Entry("evolution.run", RUN, kind=Text(optional=False)), Entry("evolution.compare", COMPARE, kind=Text()),
             Entry("evolution.epoch", EPOCH, "data", Number(0, 10_000, integer=True))]

panel = BackgroundPanel(
    "evolution",
    outputs=[Output(SCATTER, "figure"), Output(BEFORE_AFTER, "figure"), Output(METRICS, "figure"),
             Output(ALIGNMENT, "children"), Output(TRACK, "children")],
    inputs=[Input(RUN, "value"), Input(LAYER, "value"), Input(PAGE_LAYER, "value"), Input(METHOD, "value")],
    states=[State(SELECTION, "data"), State(EPOCH, "data")],
    view=NAME,
)
compare_panel = BackgroundPanel(
    "evolution-compare",
    outputs=[Output(COMPARE_SCATTER, "figure")],
    inputs=[Input(COMPARE, "value"), Input(LAYER, "value"), Input(PAGE_LAYER, "value"), Input(METHOD, "value")],
    states=[State(SELECTION, "data"), State(EPOCH, "data")],
    view=NAME,
)
train_panel = BackgroundPanel(
    "evolution-train",
    outputs=[Output(TRAINED, "data"), Output(TRAIN_NOTE, "children")],
    inputs=[Input(TRAIN, "n_clicks")],
    states=[*[State(f"{TRAIN}-{field}", "value") for field in TRAIN_FIELDS], State(TRAINED, "data")],
    view=NAME,
)
runs_panel = BackgroundPanel(
    "evolution-runs",
    outputs=[Output(RUN, "options"), Output(COMPARE, "options"), Output(COMPARE, "value")],
    inputs=[Input(TRAINED, "data")],
    view=NAME,
)


# The slider's epoch as a page key, and the second run's scatter moved to the same epoch. The listeners are bound
# once per plot element; the callback's own output is the epoch the figure starts at. The page key (and with it
# the numbers' marker) is set 150 ms after the last frame, not in each: a Dash store update re-renders the page's
# components, which took three quarters of a frame's time when the slider was dragged. Playing, frames come
# every FRAME_MS (600 ms), so the marker still follows each one.
FOLLOW_SLIDER = """
function(figure) {
    const noUpdate = window.dash_clientside.no_update;
    const slider = figure && figure.layout && figure.layout.sliders && figure.layout.sliders[0];
    if (!slider) { return noUpdate; }
    const gd = document.querySelector('#%(scatter)s .js-plotly-plot');
    if (gd && gd.on && !gd._evolutionFollowed) {
        gd._evolutionFollowed = true;
        let settle = null;
        const follow = (name) => {
            const epoch = Number(name);
            if (!Number.isFinite(epoch)) { return; }
            clearTimeout(settle);
            settle = setTimeout(() => window.dash_clientside.set_props('%(epoch)s', {data: epoch}), 150);
            const other = document.querySelector('#%(compare)s .js-plotly-plot');
            const frames = other && other._transitionData && other._transitionData._frameHash;
            if (frames && frames[String(epoch)]) {
                Plotly.animate(other, [String(epoch)], {mode: 'immediate', frame: {duration: 0, redraw: true},
                                                         transition: {duration: 0}});
            }
        };
        gd.on('plotly_animatingframe', (event) => follow(event.name));
        gd.on('plotly_sliderchange', (event) => follow(event.step.label));
    }
    return Number(slider.steps[slider.active || 0].label);
}
""" % {"scatter": SCATTER, "compare": COMPARE_SCATTER, "epoch": EPOCH}

# The per-epoch numbers' marker (the chart's first shape) follows the slider.
MARK_EPOCH = """
function(epoch, figure) {
    if (epoch === null || epoch === undefined || !figure || !figure.layout || !figure.layout.shapes) {
        return window.dash_clientside.no_update;
    }
    const shapes = figure.layout.shapes.map((s, i) => i === 0 ? Object.assign({}, s, {x0: epoch, x1: epoch}) : s);
    return Object.assign({}, figure, {layout: Object.assign({}, figure.layout, {shapes: shapes})});
}
"""

SELECT_CLICKED = """
function(main, compared, pair, run) {
    const context = window.dash_clientside.callback_context;
    const trigger = context.triggered_id || (context.triggered[0] || {prop_id: ''}).prop_id.split('.')[0];
    const click = {'%(main)s': main, '%(compared)s': compared, '%(pair)s': pair}[trigger];
    const row = click && click.points && click.points.length ? click.points[0].customdata : null;
    // A typed-array row arrives as {"0": sample, "1": epoch}.
    const index = row ? Number(row[0]) : NaN;
    if (!Number.isInteger(index)) { return window.dash_clientside.no_update; }
    // A point of the default run's animation names its epoch: the detail panels then use that epoch's model.
    const epoch = Number(row[1]);
    if (trigger === '%(main)s' && run === '%(default)s' && Number.isInteger(epoch)) {
        return {index: index, epoch: epoch};
    }
    return {index: index};
}
""" % {"main": SCATTER, "compared": COMPARE_SCATTER, "pair": BEFORE_AFTER, "default": training.DEFAULT_RUN}

SHOW_COMPARE = """function(run) { return run ? {} : {display: 'none'}; }"""


def _run_label(run: dict) -> str:
    settings, accuracy = run["settings"], run["test_accuracy"]
    name = "default (the built-in training)" if run["name"] == training.DEFAULT_RUN else run["name"]
    return (f"{name} · {settings['epochs']} epochs, lr {settings['lr']:g}, width {settings['width']:g}, "
            f"seed {settings['seed']} · {accuracy[-1]:.1%}")


def _number_input(field: str) -> html.Div:
    label, value, step = TRAIN_FIELDS[field]
    low, high = training.LIMITS[field]
    return controls.labelled(label, dcc.Input(id=f"{TRAIN}-{field}", type="number", value=value, min=low, max=high,
                                              step=step, className="number-input"), f"{low:g} to {high:g}")


def layout(context: ViewContext) -> html.Section:
    default = [{"label": "default (the built-in training)", "value": training.DEFAULT_RUN}]
    return controls.card(
        TITLE,
        html.P("Each point is one image, placed by its activations at the chosen layer after each epoch of "
               "training; press play or move the slider to watch the classes form. The early conv layers of the "
               "digits CNN separate the digits before training (k-NN accuracy in their features is about 97% "
               "untrained): training shows at relu4 and the logits.", className="hint"),
        html.Div([
            controls.labelled("Layer", dcc.Dropdown(id=LAYER, options=[{"label": "(the layer above)", "value": ""}]
                                                    + list(context.meta.layers), value="", clearable=False)),
            controls.labelled("Embedding", dcc.RadioItems(
                id=METHOD, value="pca", inline=True,
                options=[{"label": m.label, "value": name, "title": m.description}
                         for name, m in embedding.EMBEDDERS.items()],
            ), "PCA is fast; t-SNE and UMAP take a minute or more for every epoch of a run"),
            controls.labelled("Run", dcc.Dropdown(id=RUN, options=default, value=training.DEFAULT_RUN,
                                                  clearable=False)),
            controls.labelled("Compare with", dcc.Dropdown(id=COMPARE, options=default, value=None,
                                                           placeholder="no second run"),
                              "a second run's evolution beside the first"),
        ], className="toolbar"),
        html.Details([
            html.Summary("Train another run"),
            html.P("The built-in CNN trained again with other settings; every epoch is kept, and the run "
                   "joins the lists above when it ends.", className="hint"),
            html.Div([*[_number_input(field) for field in TRAIN_FIELDS],
                      html.Button("Train", id=TRAIN, n_clicks=0, className="button evolution-train-button")],
                     className="toolbar"),
            train_panel.status(),
            html.Div(id=TRAIN_NOTE),
            runs_panel.status(),
        ], className="evolution-train"),
        panel.status(),
        html.P(id=ALIGNMENT, className="hint evolution-alignment"),
        html.Div([
            dcc.Graph(id=SCATTER, figure=scatter.empty_figure("the evolution appears here", SCATTER_HEIGHT),
                      config=theme.graph_config("featurescope-evolution"), className="evolution-scatter-graph"),
            html.Div([
                compare_panel.status(),
                dcc.Graph(id=COMPARE_SCATTER, figure=scatter.empty_figure("the second run appears here",
                                                                          SCATTER_HEIGHT),
                          config=theme.graph_config("featurescope-evolution-compare"),
                          className="evolution-scatter-graph"),
            ], id=COMPARE_COLUMN, style={"display": "none"}),
        ], className="evolution-scatters"),
        html.Div(id=TRACK, className="evolution-track"),
        dcc.Graph(id=BEFORE_AFTER, figure=scatter.empty_figure("", 360),
                  config=theme.graph_config("featurescope-before-after"), className="evolution-pair-graph"),
        dcc.Graph(id=METRICS, figure=scatter.empty_figure("", 300), config=theme.graph_config("featurescope-epochs")),
        dcc.Store(id=EPOCH, data=0),
        dcc.Store(id=TRAINED, data=[]),
        class_name="evolution",
    )


# ------------------------------------------------------------------------------------------ requests and figures

def evolution_request(run, layer, explore_layer, method, selection, epoch=0, compared: bool = False):
    if compared and not run:
        return Message("Pick a run to compare with.")
    layer = layer or explore_layer
    return Request("evolution.embed", {"layer": layer, "method": method, "run": run or training.DEFAULT_RUN},
                   {"selected": selected_index(selection), "layer": layer, "method": method, "epoch": epoch})


def compare_request(run, layer, explore_layer, method, selection, epoch=0):
    return evolution_request(run, layer, explore_layer, method, selection, epoch, compared=True)


def frame_of(result: dict, epoch) -> int:
    """The frame (index into the result's epochs) that shows ``epoch``; the first one when the run lacks it."""
    epochs = [int(e) for e in result["epochs"]]
    return epochs.index(epoch) if epoch in epochs else 0


def start_frame(result: dict, shown: dict) -> int:
    """The frame the scatters open at: the epoch the slider showed (or a link named), else the first one."""
    return frame_of(result, shown.get("epoch"))


def _title(result: dict, shown: dict) -> str:
    label = embedding.EMBEDDERS[shown["method"]].label if shown["method"] in embedding.EMBEDDERS else shown["method"]
    return f"run {result['run']} · {shown['layer']} · {label} · epochs {result['epochs'][0]}–{result['epochs'][-1]}"


def _listed(values) -> list:
    """An array as nested lists, also when plotly has already encoded it ({"dtype", "bdata", "shape"})."""
    if isinstance(values, dict) and "bdata" in values:
        array = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        return array.reshape([int(size) for size in str(values.get("shape", len(array))).split(",")]).tolist()
    return np.asarray(values).tolist()


def clickable(figure) -> dict:
    """``figure`` as a dict whose customdata are lists, in its data and its frames.

    Plotly sends arrays (lists too: it turns them into arrays) as base64 typed arrays; dcc.Graph reads a click's
    customdata from the figure's raw data, where such an array cannot be indexed, so a click would name no sample.
    """
    figure = figure.to_plotly_json()
    for trace in [*figure["data"], *(trace for frame in figure.get("frames", ()) for trace in frame["data"])]:
        if trace.get("customdata") is not None:
            trace["customdata"] = _listed(trace["customdata"])
    return figure


def scatter_figure(result: dict, shown: dict) -> dict:
    """The animated scatter of the job's result at its start frame (:func:`start_frame`), the selected image ringed."""
    figure = figures.evolution_scatter(
        result["layouts"], result["labels"], result["classes"], result["epochs"], shown.get("selected"),
        start=start_frame(result, shown),
        title=_title(result, shown), revision=f"{result['run']}|{shown['layer']}|{shown['method']}")
    return clickable(figure)  # the slider has its own row below the buttons (components.evolution), so it fits any width


def numbers(result: dict) -> dict[str, list[float]]:
    return {key: list(result[key]) for key, _, _ in figures.METRICS}


def evolution_render(result: dict, shown: dict) -> tuple:
    epochs = list(result["epochs"])
    pair = clickable(figures.before_after(result["layouts"], result["labels"], result["classes"], epochs,
                                          shown.get("selected")))
    metrics = figures.evolution_metrics(numbers(result), epochs, current=epochs[start_frame(result, shown)],
                                        title=f"per epoch · {shown['layer']} · run {result['run']}")
    alignment = [html.B("Aligned: "), result["alignment"],
                 f" k-NN: k=5, test split predicted from the training split; trustworthiness on "
                 f"{result['trust_sample']} points."]
    return scatter_figure(result, shown), pair, metrics, alignment, prediction_track(result, shown.get("selected"))


def compare_render(result: dict, shown: dict) -> tuple:
    return (scatter_figure(result, shown),)


def train_request(clicks, epochs, lr, width, seed, trained):
    if not clicks:
        return None
    try:
        settings = training.check_settings(epochs, lr, width, seed)
    except (TypeError, ValueError) as error:
        text = str(error) if isinstance(error, ValueError) else "Fill in every setting."
        return Message(text, "error")
    return Request("evolution.train", settings, {"trained": trained or []})


def train_render(result: dict, shown: dict) -> tuple:
    run = {"name": result["run"], "settings": result["settings"], "test_accuracy": list(result["test_accuracy"])}
    trained = [r for r in shown.get("trained", []) if r["name"] != run["name"]] + [run]
    note = controls.message(f"Run {run['name']} is ready: test accuracy {run['test_accuracy'][-1]:.1%} after "
                            f"{run['settings']['epochs']} epochs. It is shown beside the first run.", "info")
    return trained, note


def _just_trained() -> bool:
    """Whether this callback runs because a training run has just ended (False outside a callback)."""
    try:
        return ctx.triggered_id == TRAINED
    except MissingCallbackContextException:
        return False


def runs_request(trained, just_trained: bool | None = None):
    trained = trained or []
    fresh = _just_trained() if just_trained is None else just_trained
    return Request("evolution.runs", {"asked": time.time_ns()}, {"trained": trained, "show": trained[-1]["name"] if trained and fresh else None})


def runs_render(result: dict, shown: dict) -> tuple:
    """Every completed run as options, the runs this page trained added (the job's answer is shared by equal
    requests, so it may predate them); a run that has just been trained is shown beside the first."""
    found = {run["name"]: run for run in result["runs"]}
    for run in shown.get("trained", []):
        found.setdefault(run["name"], run)
    options = [{"label": _run_label(run), "value": name} for name, run in found.items()]
    return options, options, shown.get("show") or no_update


# ------------------------------------------------------------------------------------------ the selection

def _trace_counts(labels: np.ndarray, classes: list[str]) -> int:
    """How many class traces the figures have (one per class present)."""
    return int(sum(bool(np.any(labels == k)) for k in range(len(classes))))


def _class_members(labels: np.ndarray, classes: list[str]) -> list[np.ndarray]:
    return [m for m in (np.flatnonzero(labels == k) for k in range(len(classes))) if len(m)]


def selection_patch(result: dict, index: int | None, epoch: int | None) -> Patch:
    """The animated scatter's ring and path moved to ``index`` in every frame, the figure shown at ``epoch``.

    The figure's traces are the class traces, then the path, then the ring; each frame moves the class traces
    and the ring. The class traces are set to ``epoch``'s positions too, since the page redraws from them.
    """
    layouts, epochs = np.asarray(result["layouts"]), [int(e) for e in result["epochs"]]
    members = _class_members(np.asarray(result["labels"]), result["classes"])
    count = len(members)
    current = frame_of(result, epoch)
    chosen = index is not None and 0 <= index < layouts.shape[1]
    patch = Patch()

    def ring(k: int) -> dict:
        if not chosen:
            return {"x": [], "y": [], "customdata": []}
        return {"x": [float(layouts[k, index, 0])], "y": [float(layouts[k, index, 1])],
                "customdata": [[index, epochs[k]]]}

    for k in range(len(epochs)):
        patch["frames"][k]["data"][count].update(ring(k))
    patch["data"][count].update(figures.selection_path(layouts, index if chosen else None))
    patch["data"][count + 1].update(ring(current))
    for trace, sample in enumerate(members):
        positions = np.round(layouts[current, sample].astype(np.float32), 3)  # as the figure rounds them
        patch["data"][trace].update({"x": positions[:, 0].tolist(), "y": positions[:, 1].tolist(),
                                     "customdata": [[int(s), epochs[current]] for s in sample]})
    patch["layout"]["sliders"][0]["active"] = current
    return patch


def pair_patch(result: dict, index: int | None) -> Patch:
    """The before | after pair's two rings moved to ``index`` (each panel: its class traces, then its ring)."""
    layouts, epochs = np.asarray(result["layouts"]), [int(e) for e in result["epochs"]]
    count = _trace_counts(np.asarray(result["labels"]), result["classes"])
    chosen = index is not None and 0 <= index < layouts.shape[1]
    patch = Patch()
    for trace, k in ((count, 0), (2 * count + 1, len(epochs) - 1)):
        patch["data"][trace].update({"x": [float(layouts[k, index, 0])] if chosen else [],
                                     "y": [float(layouts[k, index, 1])] if chosen else [],
                                     "customdata": [[index, epochs[k]]] if chosen else []})
    return patch


def prediction_track(result: dict, index: int | None):
    """The selected image's predicted class after every epoch (right ones and wrong ones told apart)."""
    if index is None or not 0 <= index < len(result["labels"]):
        return None
    classes, truth = result["classes"], int(result["labels"][index])
    cells = []
    for k, e in enumerate(result["epochs"]):
        guess = int(result["predicted"][k][index])
        cells.append(html.Span(f"{e}: {classes[guess]}", title=f"epoch {e}: predicted {classes[guess]}",
                               className="evolution-guess " + ("right" if guess == truth else "wrong")))
    return html.Div([html.Span(f"Image #{index} (class {classes[truth]}), predicted after each epoch: ",
                               className="evolution-track-title"), *cells,
                     html.Span(" The detail panels show the trained model.", className="hint")])


def _result(context: ViewContext, job) -> dict | None:
    if not isinstance(job, dict) or not job.get("key"):
        return None
    status = context.service.status(job["key"])
    return status.result if status.state == "done" else None


def register(app, context: ViewContext) -> None:
    panel.register(app, context, evolution_request, evolution_render)
    compare_panel.register(app, context, compare_request, compare_render)
    train_panel.register(app, context, train_request, train_render)
    runs_panel.register(app, context, runs_request, runs_render)

    app.clientside_callback(FOLLOW_SLIDER, Output(EPOCH, "data"), Input(SCATTER, "figure"))
    app.clientside_callback(MARK_EPOCH, Output(METRICS, "figure", allow_duplicate=True), Input(EPOCH, "data"),
                            State(METRICS, "figure"), prevent_initial_call=True)
    app.clientside_callback(SELECT_CLICKED, Output(SELECTION, "data", allow_duplicate=True),
                            Input(SCATTER, "clickData"), Input(COMPARE_SCATTER, "clickData"),
                            Input(BEFORE_AFTER, "clickData"), State(RUN, "value"), prevent_initial_call=True)
    app.clientside_callback(SHOW_COMPARE, Output(COMPARE_COLUMN, "style"), Input(COMPARE, "value"))
    draw_at_gl_pixel_ratio(app, SCATTER, COMPARE_SCATTER)

    @app.callback(Output(SCATTER, "figure", allow_duplicate=True),
                  Output(BEFORE_AFTER, "figure", allow_duplicate=True),
                  Output(COMPARE_SCATTER, "figure", allow_duplicate=True),
                  Output(TRACK, "children", allow_duplicate=True),
                  Input(SELECTION, "data"), State(EPOCH, "data"),
                  State(panel.job_id, "data"), State(compare_panel.job_id, "data"),
                  State(COMPARE, "value"), prevent_initial_call=True)
    def follow_selection(selection, epoch, job, compare_job, compared):
        """Ring the selected image in every frame (a Patch built from the job's arrays) and list its predictions.
        The epoch is a state, not an input: the slider and the play button never call the server."""
        result = _result(context, job)
        if result is None:
            return no_update, no_update, no_update, None
        index = selected_index(selection)
        track = prediction_track(result, index)
        second = _result(context, compare_job) if compared else None
        compare_patch = selection_patch(second, index, epoch) if second is not None else no_update
        return selection_patch(result, index, epoch), pair_patch(result, index), compare_patch, track
