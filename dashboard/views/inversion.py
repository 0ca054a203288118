"""Approximate inversion: the selected image projected back to pixels from one channel (deconvnet, guided backprop)."""
from __future__ import annotations

from dash import Input, Output, dcc, html

from components import attribution as figures
from components import controls, scatter, theme
from compute.specs import attribution
from dashboard.views.context import LAYER as PAGE_LAYER
from dashboard.views.context import (SELECTION, ViewContext, image_name, sample_params, selected_index,
                                     selection_note)
from dashboard.views.links import Entry
from dashboard.views.panel import BackgroundPanel, Message, Request

NAME = "inversion"
TITLE = "Approximate inversion: what one feature channel sees"
MENU = "Inversion"  # its name in the toolbar's Views checklist
OPENABLE = True
OPEN_AT_START = False

METHOD = "inversion-method"
LAYER = "inversion-layer"
CHANNEL = "inversion-channel"
FIGURE = "inversion-figure"
FIGURE_HEIGHT = 320
URL_STATE = [Entry("inversion.method", METHOD), Entry("inversion.layer", LAYER), Entry("inversion.channel", CHANNEL)]

panel = BackgroundPanel(
    "inversion",
    outputs=[Output(FIGURE, "figure"), Output(CHANNEL, "placeholder")],
    inputs=[Input(SELECTION, "data"), Input(METHOD, "value"), Input(LAYER, "value"), Input(CHANNEL, "value"),
            Input(PAGE_LAYER, "value")],
    view=NAME,
    idle_text="Click a point in the scatter.",
)


def layout(context: ViewContext) -> html.Section:
    return controls.card(
        TITLE,
        html.Div([
            controls.labelled("Method", dcc.RadioItems(
                id=METHOD, value="deconvnet", inline=True,
                options=[{"label": label, "value": name} for name, label in attribution.INVERSIONS.items()],
            )),
            controls.labelled("Layer", dcc.Dropdown(id=LAYER, options=[{"label": "(the layer above)", "value": ""}]
                                                    + list(context.meta.layers), value="", clearable=False)),
            controls.labelled("Channel", dcc.Input(id=CHANNEL, type="number", min=0, step=1, debounce=True,
                                                   placeholder="most active"), "empty: the most active channel"),
        ], className="toolbar"),
        panel.status(),
        dcc.Graph(id=FIGURE, figure=scatter.empty_figure("click a point to reconstruct it from one channel",
                                                         FIGURE_HEIGHT),
                  config=theme.graph_config("featurescope-inversion")),
        class_name="inversion",
    )


def inversion_request(selection, method, layer, channel, explore_layer):
    index = selected_index(selection)
    if index is None:
        return None
    if channel not in (None, "") and int(channel) < 0:
        return Message(f"Channel {channel} is negative: channels are numbered from 0.", "error")
    layer = layer or explore_layer
    return Request("inversion.reconstruct",
                   {**sample_params(selection), "layer": layer, "method": method,
                    "channel": None if channel in (None, "") else int(channel)},
                   {"index": index, "layer": layer, "method": method, "note": selection_note(selection)})


def inversion_render(result: dict, shown: dict) -> tuple:
    title = (f"{attribution.INVERSIONS[shown['method']]} · layer {shown['layer']}, {result['how']} "
             f"{result['channel']} · {image_name(shown['index'], shown.get('note', ''))}")
    figure = figures.inversion_figure(result["reconstruction"], result["image"], title)
    placeholder = f"most active: {result['channel']}" if result["how"] == "most active channel" else "most active"
    return figure, placeholder


def register(app, context: ViewContext) -> None:
    panel.register(app, context, inversion_request, inversion_render)
