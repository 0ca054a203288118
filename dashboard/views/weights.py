"""Filter kernels of a conv layer: the grid at any saved epoch, before | after training, smoothness and diversity.

One job (``weights.evolution``) returns every saved epoch at once; the view keeps each epoch's grid figure in a
``dcc.Store`` and a clientside callback swaps them as the slider moves, so dragging through the epochs never asks
the server again.
"""
from __future__ import annotations

import math

import numpy as np
from dash import Input, Output, State, dcc, html

from components import controls, scatter, theme
from components import weights as figures
from dashboard.views.context import ViewContext
from dashboard.views.links import Entry, Number
from dashboard.views.panel import BackgroundPanel, Message, Request

NAME = "weights"
TITLE = "Weights: filter kernels"
OPENABLE = True
OPEN_AT_START = False

LAYER = "weights-layer"
MODE = "weights-mode"
INPUT_CHANNEL = "weights-input-channel"
EPOCH = "weights-epoch"
# The epoch the user moved the slider to (None: the last one): what a link keeps. The slider itself is set by each
# answer of the job (its range comes with it), so it cannot be the link's key: every load would write it.
CHOSEN_EPOCH = "weights-chosen-epoch"
FRAMES = "weights-frames"  # {"grids": [figure per epoch], "evolution": figure}: what the slider shows, in the browser
GRID = "weights-grid"
BEFORE_AFTER = "weights-before-after"
EVOLUTION = "weights-evolution"
SUMMARY = "weights-summary"
MODE_OPTIONS = {"auto": "auto", "channel": "one input channel", "norm": "norm over input channels"}
# "Near 1": random filters in many dimensions are nearly orthogonal, so diversity starts there before any training.
NEAR_ONE = 0.1
# What a link keeps: the epoch is the slider's position (0 = the first saved checkpoint), the last one when absent.
URL_STATE = [Entry("weights.layer", LAYER), Entry("weights.mode", MODE), Entry("weights.input", INPUT_CHANNEL),
             Entry("weights.epoch", CHOSEN_EPOCH, "data", Number(0, 10_000, optional=True, integer=True))]

panel = BackgroundPanel(
    "weights",
    outputs=[Output(BEFORE_AFTER, "figure"), Output(FRAMES, "data"), Output(EPOCH, "max"), Output(EPOCH, "marks"),
             Output(EPOCH, "value"), Output(SUMMARY, "children")],
    inputs=[Input(LAYER, "value"), Input(MODE, "value"), Input(INPUT_CHANNEL, "value")],
    states=[State(CHOSEN_EPOCH, "data")],
    view=NAME,
    idle_text="Pick a conv layer.",
)

# The slider's epoch -> that epoch's grid, and the evolution chart's marker moved to it (the vertical line is the
# only shape anchored to the y axis' domain; the white-noise line spans the x domain). No server round trip.
SHOW_EPOCH = """
function(position, frames) {
    const none = window.dash_clientside.no_update;
    if (!frames || !frames.grids || !frames.grids.length) { return [none, none]; }
    const last = frames.grids.length - 1;
    const k = Number.isInteger(position) ? Math.max(0, Math.min(last, position)) : last;
    const evolution = frames.evolution;
    const shapes = ((evolution.layout || {}).shapes || []).map(
        s => s.yref === 'y domain' ? Object.assign({}, s, {x0: k, x1: k}) : s);
    return [frames.grids[k], Object.assign({}, evolution, {layout: Object.assign({}, evolution.layout, {shapes: shapes})})];
}
"""

# The user's move of the slider -> the chosen epoch; the job's answer placing the slider (at the last epoch, when
# nothing was chosen) is not a choice, so an untouched view keeps its link free of an epoch.
REMEMBER_EPOCH = """
function(position, frames, chosen) {
    const none = window.dash_clientside.no_update;
    if (!Number.isInteger(position) || !frames || (position === frames.position && chosen == null)) { return none; }
    return position === chosen ? none : position;
}
"""


def layout(context: ViewContext) -> html.Section:
    conv_layers = list(context.meta.conv_layers)
    return controls.card(
        TITLE,
        html.Div([
            controls.labelled("Conv layer", dcc.Dropdown(id=LAYER, options=conv_layers,
                                                         value=conv_layers[0] if conv_layers else None,
                                                         clearable=False)),
            controls.labelled("Show per filter", dcc.RadioItems(
                id=MODE, value="auto", inline=True,
                options=[{"label": label, "value": value} for value, label in MODE_OPTIONS.items()],
            ), "auto: colour for 3 input channels, grey for 1, otherwise the norm over the input channels"),
            controls.labelled("Input channel", dcc.Input(id=INPUT_CHANNEL, type="number", min=0, step=1, value=0,
                                                         debounce=True, className="number-input", disabled=True),
                              "which input channel of each filter 'one input channel' shows"),
        ], className="toolbar"),
        panel.status(),
        html.Div([
            html.Div([
                dcc.Graph(id=GRID, figure=scatter.empty_figure("the filters appear here", 420),
                          config=theme.graph_config("featurescope-kernels")),
                controls.labelled("Saved epoch", dcc.Slider(id=EPOCH, min=0, max=0, step=1, value=0, marks=None,
                                                            updatemode="drag"),
                                  "drag through every saved checkpoint; the grid follows without a server request"),
            ], className="weights-epoch"),
            html.Div([
                dcc.Graph(id=EVOLUTION, figure=scatter.empty_figure("smoothness and diversity per epoch",
                                                                    figures.EVOLUTION_HEIGHT),
                          config=theme.graph_config("featurescope-kernels-evolution")),
                html.Div(id=SUMMARY, className="weights-summary"),
                html.P(figures.FULLY_CONNECTED_NOTE, className="hint weights-note"),
            ]),
            dcc.Graph(id=BEFORE_AFTER, figure=scatter.empty_figure("before | after training", 300),
                      config=theme.graph_config("featurescope-kernels-before-after")),
        ], className="weights-figures"),
        dcc.Store(id=FRAMES), dcc.Store(id=CHOSEN_EPOCH, data=None),
        class_name="weights",
    )


def weights_request(context: ViewContext):
    conv_layers = list(context.meta.conv_layers)

    def request(layer, mode, input_channel, chosen_epoch=None):
        if not conv_layers:
            return Message("This model has no conv layers, so there are no kernels to show. "
                           + figures.FULLY_CONNECTED_NOTE)
        if layer not in conv_layers:
            return Message(f"Pick a conv layer: {', '.join(conv_layers)}.", "error")
        mode = mode if mode in MODE_OPTIONS else "auto"
        channel = 0
        if mode == "channel":
            if input_channel in (None, ""):
                return Message("Type the input channel to show (from 0).", "info")
            channel = int(input_channel)
            if channel < 0:
                return Message(f"Input channel {channel} is negative: channels are numbered from 0.", "error")
        # Other modes ignore the input channel: it stays 0 so they share one cache entry.
        return Request("weights.evolution", {"layer": layer, "mode": mode, "input_channel": channel},
                       {"layer": layer, "epoch": chosen_epoch})

    return request


def _epoch_mark(label: str) -> str:
    return label[len("epoch "):] if label.startswith("epoch ") else label


def _number(value: float) -> str:
    return "n/a" if not math.isfinite(float(value)) else f"{float(value):.2f}"


def summary_text(result: dict) -> list:
    """What the numbers say, honestly: smoothness against white noise, and why diversity barely moves."""
    labels = result["labels"]
    smooth = np.asarray(result["mean_smoothness"], dtype=float)
    diverse = np.asarray(result["diversity"], dtype=float)
    first, last = labels[0], labels[-1]
    change = smooth[-1] - smooth[0]
    trend = "rose" if change > 0.01 else "fell" if change < -0.01 else "barely changed"
    parts = [
        html.B("Smoothness"), f" (the share of a filter's energy at low spatial frequencies, mean over "
        f"{result['shape'][0]} filters) {trend} from {_number(smooth[0])} ({first}) to {_number(smooth[-1])} "
        f"({last}); white noise scores {_number(result['noise_smoothness'])}.",
        html.Br(),
        html.B("Diversity"), f" (mean cosine distance between filters) went from {_number(diverse[0])} to "
        f"{_number(diverse[-1])}.",
    ]
    finite = diverse[np.isfinite(diverse)]
    if finite.size and np.all(np.abs(finite - 1.0) <= NEAR_ONE):
        parts.append(" It stays near 1 throughout: random filters with this many weights are already nearly "
                     "orthogonal, so here it shows that training did not collapse the filters into copies of each "
                     "other rather than that training made them diverse.")
    return parts


def weights_render(result: dict, shown: dict) -> tuple:
    """Before | after figure, the slider's frames (a grid per epoch, the evolution chart), slider settings, text."""
    layer, mode, channel = shown["layer"], result["mode"], result["input_channel"]
    labels = list(result["labels"])
    grids = np.asarray(result["grids"])
    out_channels, _, height, width = result["shape"]
    smooth, diverse = result["mean_smoothness"], result["diversity"]
    frames = [figures.kernel_grid_figure(
        grids[k], layer, mode, channel,
        title=f"{layer}, {labels[k]}: {out_channels} filters {height}×{width} · smoothness "
              f"{_number(smooth[k])} · diversity {_number(diverse[k])}") for k in range(len(labels))]
    last = len(labels) - 1
    # The epoch a link or the user chose stays through a change of layer or mode; else the trained model.
    chosen = shown.get("epoch")
    position = chosen if isinstance(chosen, int) and 0 <= chosen <= last else last
    trained = labels[-1] if labels[-1] != "checkpoint" else "trained checkpoint"
    before_after = figures.before_after_figure(grids[0], grids[-1], layer, mode, channel,
                                               titles=(f"{labels[0]} (untrained)" if labels[0] != "untrained"
                                                       else "untrained", trained))
    # "epoch 3" on every tick crowds the axis: the ticks say "3" and the axis says "epoch".
    numbered = all(label.startswith("epoch ") for label in labels)
    evolution = figures.evolution_figure([_epoch_mark(label) for label in labels] if numbered else labels, smooth,
                                         diverse, result["noise_smoothness"], result["test_accuracy"], selected=position,
                                         layer=layer)
    if numbered:
        evolution.update_xaxes(title={"text": "epoch", "standoff": 4})
    marks = {str(k): _epoch_mark(label) for k, label in enumerate(labels)}
    return (before_after, {"grids": frames, "evolution": evolution, "position": position}, last, marks, position,
            summary_text(result))


def register(app, context: ViewContext) -> None:
    panel.register(app, context, weights_request(context), weights_render)
    app.clientside_callback(SHOW_EPOCH, Output(GRID, "figure"), Output(EVOLUTION, "figure"),
                            Input(EPOCH, "value"), Input(FRAMES, "data"))
    app.clientside_callback(REMEMBER_EPOCH, Output(CHOSEN_EPOCH, "data"), Input(EPOCH, "value"),
                            State(FRAMES, "data"), State(CHOSEN_EPOCH, "data"), prevent_initial_call=True)
    app.clientside_callback("function(mode) { return mode !== 'channel'; }",
                            Output(INPUT_CHANNEL, "disabled"), Input(MODE, "value"))
