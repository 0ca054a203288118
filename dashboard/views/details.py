"""The selected image: the image, its top-5 predictions, and the chosen layer's feature maps with their sparsity."""
from __future__ import annotations

import numpy as np
from dash import Input, Output, dcc, html

from components import controls, images, scatter, theme
from dashboard.views.context import (FEATURE_MAPS, LAYER, SELECTION, ViewContext, image_name, sample_params,
                                     selected_index, selection_note)
from dashboard.views.links import Entry
from dashboard.views.panel import BackgroundPanel, Request

NAME = "details"
TITLE = "Selected image"
OPENABLE = False

DETAIL_TITLE = "detail-title"
DETAIL_IMAGE = "detail-image"
DETAIL_TOPK = "detail-topk"
MAP_SCALE = "map-scale"
SPARSITY = "sparsity"
IMAGE_HEIGHT, TOPK_HEIGHT = images.IMAGE_HEIGHT, images.TOP_K_HEIGHT
URL_STATE = [Entry("scale", MAP_SCALE)]  # what a link keeps of this view

panel = BackgroundPanel(
    "details",
    outputs=[Output(DETAIL_TITLE, "children"), Output(DETAIL_IMAGE, "figure"), Output(DETAIL_TOPK, "figure"),
             Output(FEATURE_MAPS, "figure"), Output(SPARSITY, "children")],
    inputs=[Input(SELECTION, "data"), Input(LAYER, "value"), Input(MAP_SCALE, "value")],
)


def layout(context: ViewContext) -> list:
    detail = controls.card(
        TITLE,
        html.Div("Click a point in the scatter.", id=DETAIL_TITLE, className="detail-title"),
        panel.status(),
        html.Div([
            dcc.Graph(id=DETAIL_IMAGE, figure=scatter.empty_figure("no image selected", IMAGE_HEIGHT),
                      config=theme.graph_config("featurescope-image")),
            dcc.Graph(id=DETAIL_TOPK, figure=scatter.empty_figure("", TOPK_HEIGHT),
                      config=theme.graph_config("featurescope-top5")),
        ], className="detail-figures"),
        class_name="detail",
    )
    maps = controls.card(
        "Feature maps",
        html.Div([
            controls.labelled("Colour scale", dcc.RadioItems(
                id=MAP_SCALE, value="shared", inline=True,
                options=[{"label": "shared", "value": "shared"}, {"label": "per map", "value": "per-map"}],
            ), "shared: one scale, raw values; per map: each map stretched to its own range"),
            html.Div(id=SPARSITY, className="sparsity"),
        ], className="toolbar"),
        # The placeholder is as tall as the maps of the first layer will be, so the page does not jump on a click.
        dcc.Graph(id=FEATURE_MAPS, figure=scatter.empty_figure(
            "click a point to see its feature maps",
            images.feature_map_height(tuple(context.meta.layer_shapes[context.meta.default_layer]))),
                  config=theme.graph_config("featurescope-feature-maps")),
        class_name="maps",
    )
    return [detail, maps]


def sparsity_text(result: dict, is_logits: bool) -> list:
    if is_logits:
        return ["The logits are the class scores before the softmax: sparsity does not apply to them."]
    silent = result["silent_channels"]
    channels = len(result["layer_output"])
    silent_text = f"{len(silent)} of {channels} channels silent for this image"
    if silent:
        silent_text += f" ({', '.join(map(str, silent[:12]))}{' ...' if len(silent) > 12 else ''})"
    parts = [html.B(f"sparsity {result['zero_fraction']:.0%}"), " of activations are exactly zero"]
    if result["nonpositive_fraction"] > result["zero_fraction"] + 1e-9:
        parts += [f"; {result['nonpositive_fraction']:.0%} are ≤ 0 (a ReLU would zero them)"]
    return parts + [html.Br(), silent_text]


def details_request(selection, layer, scale):
    index = selected_index(selection)
    if index is None:
        return None
    return Request("details.panels", {**sample_params(selection), "layer": layer},
                   {"scale": scale, "layer": layer, "note": selection_note(selection)})


def details_render(context: ViewContext):
    meta = context.meta
    classes = meta.classes
    logits_layer = meta.layers[-1]

    def render(result: dict, shown: dict) -> tuple:
        index, label = result["index"], result["label"]
        probabilities = np.asarray(result["probabilities"])
        predicted = int(probabilities.argmax())
        # The model's outputs may not be the data's classes (ImageNet weights on a folder of three classes).
        outputs = meta.model_classes if len(meta.model_classes) == len(probabilities) else classes
        truth = "no true class" if label is None else f"true class {classes[label]}"
        split = "" if result.get("test_split") is None else f" · {'test' if result['test_split'] else 'training'} split"
        title = [html.B(f"#{index}{shown.get('note', '')}" if index >= 0 else image_name(index, shown.get('note', ''))),
                 f" · {truth} · predicted {outputs[predicted]} ({float(probabilities[predicted]):.1%}){split}"]
        order = np.argsort(-probabilities)[:5]
        pairs = [(outputs[k], float(probabilities[k])) for k in order]
        named = classes[label] if label is not None else outputs[predicted]
        output = np.asarray(result["layer_output"])
        is_logits = shown["layer"] == logits_layer and output.ndim == 1 and len(output) == len(probabilities)
        maps_title = f"layer {shown['layer']} · {tuple(output.shape)} · {image_name(index)}"
        if is_logits:
            maps = images.unit_bars(output, classes, title=maps_title)
        else:
            maps = images.feature_map_grid(output, shown["scale"], title=maps_title)
        return (title, images.image_figure(result["image"], f"{image_name(index, shown.get('note', ''))} ({named})",
                                           IMAGE_HEIGHT),
                images.top_k_figure(pairs, named, TOPK_HEIGHT), maps, sparsity_text(result, is_logits))

    return render


def register(app, context: ViewContext) -> None:
    panel.register(app, context, details_request, details_render(context))
