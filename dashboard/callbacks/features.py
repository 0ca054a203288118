"""The detail panels of the selected image: the image, its top-5 predictions and the layer's feature maps."""
from __future__ import annotations

import torch
from dash import Input, Output, html, no_update

from components import images
from compute import activations, channels, predictions
from dashboard import ids, state
from dashboard.callbacks.common import error_message, selected_index
from dashboard.config import AppConfig


def sparsity_text(stats: channels.Sparsity) -> list:
    silent = stats.silent_channels
    silent_text = f"{len(silent)} of {stats.channels} channels silent for this image"
    if silent:
        silent_text += f" ({', '.join(map(str, silent[:12]))}{' ...' if len(silent) > 12 else ''})"
    parts = [html.B(f"sparsity {stats.zero_fraction:.0%}"), " of activations are exactly zero"]
    if stats.nonpositive_fraction > stats.zero_fraction + 1e-9:
        parts += [f"; {stats.nonpositive_fraction:.0%} are ≤ 0 (a ReLU would zero them)"]
    return parts + [html.Br(), silent_text]


def detail_panels(config: AppConfig, index: int, layer: str, scale: str):
    """(title, image figure, top-5 figure, feature-map figure, sparsity text) for sample ``index``."""
    dataset = state.dataset(config)
    model = state.model(config)
    image = dataset.image(index)
    outputs = activations.single(model, image, [layer])
    probabilities = torch.softmax(outputs["__logits__"].flatten(), 0)
    true_name = dataset.classes[int(dataset.labels[index])]
    predicted = int(probabilities.argmax())
    split = "test" if bool(dataset.is_test[index]) else "training"
    title = [html.B(f"#{index}"), f" · true class {true_name} · predicted {dataset.classes[predicted]} "
             f"({float(probabilities[predicted]):.1%}) · {split} split"]
    pairs = [(dataset.classes[k], p) for k, p in predictions.top_k(probabilities, 5)]
    layer_output = outputs[layer]
    maps_figure = images.feature_map_grid(layer_output.numpy(), scale,
                                          title=f"layer {layer} · {tuple(layer_output.shape)} · image #{index}")
    return (
        title,
        images.image_figure(image.numpy(), f"image #{index} ({true_name})"),
        images.top_k_figure(pairs, true_name),
        maps_figure,
        sparsity_text(channels.sparsity(layer_output)),
    )


def register(app, config: AppConfig) -> None:
    @app.callback(
        Output(ids.DETAIL_TITLE, "children"),
        Output(ids.DETAIL_IMAGE, "figure"),
        Output(ids.DETAIL_TOPK, "figure"),
        Output(ids.FEATURE_MAPS, "figure"),
        Output(ids.SPARSITY, "children"),
        Output(ids.DETAIL_MESSAGE, "children"),
        Input(ids.SELECTION, "data"),
        Input(ids.LAYER, "value"),
        Input(ids.MAP_SCALE, "value"),
    )
    def update_details(selection, layer, scale):
        index = selected_index(selection)
        if index is None:
            return (no_update,) * 6
        try:
            return (*detail_panels(config, index, layer, scale), None)
        except Exception as error:
            return (no_update,) * 5 + (error_message(error),)
