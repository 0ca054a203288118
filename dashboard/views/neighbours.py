"""Nearest neighbours: the selected image shown large, and the k data-set images closest to it in the layer's
feature space (the space the scatter embeds, not its 2-D layout: two points near in a t-SNE picture may be far apart
to the model, and the other way round). A click on a neighbour selects it."""
from __future__ import annotations

import base64
import io

import numpy as np
from dash import ALL, Input, Output, ctx, dcc, html, no_update

from components import controls, gallery
from dashboard import thumbnails
from dashboard.thumbnails import thumbnail_url, upload_url
from dashboard.views.context import (FEATURES, LAYER, SELECTION, ViewContext, sample_params, selected_index,
                                     selected_variant)
from dashboard.views.links import Entry
from dashboard.views.panel import BackgroundPanel, Request

NAME = "neighbours"
TITLE = "Nearest neighbours in the layer's feature space"
MENU = "Neighbours"  # its name in the toolbar's Views checklist
OPENABLE = True
OPEN_AT_START = True

COUNT = "neighbours-count"
RESULT = "neighbours-result"
PICK = "neighbours-pick"  # pattern id of a neighbour tile: {"type": PICK, "index": sample}
COUNTS = (6, 12, 24, 48)
URL_STATE = [Entry("neighbours.count", COUNT)]  # what a link keeps of this view
TILE_SIZE = 72
LARGE_SIZE = 192
SOURCE_SIZE = 128  # pixels fetched for every picture here (the large one is drawn larger, pixelated)

panel = BackgroundPanel(
    "neighbours",
    outputs=[Output(RESULT, "children")],
    inputs=[Input(SELECTION, "data"), Input(LAYER, "value"), Input(FEATURES, "value"),
            Input(COUNT, "value")],
    view=NAME,
    idle_text="Click a point in the scatter to see the images the model finds most alike.",
)


def layout(context: ViewContext) -> html.Section:
    return controls.card(
        TITLE,
        html.Div([controls.labelled("Neighbours", dcc.RadioItems(
            id=COUNT, value=12, inline=True, options=[{"label": f" {k}", "value": k} for k in COUNTS]),
            "how many of the closest images to list")], className="toolbar"),
        panel.status(),
        html.Div(id=RESULT, className="neighbours-result"),
        class_name="neighbours",
    )


def neighbours_request(selection, layer, features, count):
    index = selected_index(selection)
    if index is None or not layer:
        return None
    label = selection.get("label") if isinstance(selection, dict) else None
    return Request("neighbours.nearest", {**sample_params(selection), "layer": layer, "features": features or "auto",
                                          "k": int(count or 12)},
                   {"index": index, "variant": selected_variant(selection), "label": label, "layer": layer})


def image_data_url(image: np.ndarray) -> str:
    """(C, H, W) float in [0, 1] -> a PNG data URL (for a derived image, which has no thumbnail URL)."""
    from PIL import Image

    pixels = (np.clip(np.asarray(image, dtype=np.float32), 0, 1) * 255).round().astype(np.uint8)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def query_source(result: dict, shown: dict) -> str:
    """Where the large picture comes from: the thumbnail route for data-set images and uploads, else the job's image."""
    variant = shown.get("variant")
    if not variant:
        return thumbnail_url(shown["index"], SOURCE_SIZE)
    if variant.get("kind") == "upload":
        return upload_url(variant["id"], 256)
    return image_data_url(result["image"])


def neighbours_render(context: ViewContext, prefetch=None):
    """``prefetch(indices, size)``: warms the thumbnail store before the page asks for the pictures."""
    classes = context.meta.classes

    def render(result: dict, shown: dict) -> tuple:
        indices, distances, labels = result["indices"], result["distances"], result["labels"]
        if prefetch is not None:
            prefetch([int(i) for i in indices] + ([] if shown.get("variant") else [shown["index"]]), SOURCE_SIZE)
        tiles = [gallery.Tile(thumbnail_url(int(i), SOURCE_SIZE), f"{classes[int(c)]} · d {d:.3g}",
                              f"#{int(i)} · class {classes[int(c)]} · distance {d:.4g} (click to select)")
                 for i, d, c in zip(indices, distances, labels)]
        name = shown.get("label") or f"image #{shown['index']}"
        if not shown.get("variant"):
            name += f" · class {classes[int(result['label'])]}" if result.get("label") is not None else ""
        agreeing = int((labels == result["label"]).sum()) if result.get("label") is not None else None
        summary = (f"{len(indices)} nearest in layer {shown['layer']} ({result['mode']}, "
                   f"{result['dimensions']} dimensions after PCA)"
                   + (f"; {agreeing} of them share its class" if agreeing is not None else ""))
        return (html.Div([
            gallery.large_image(query_source(result, shown), name, LARGE_SIZE),
            html.Div([html.P(summary, className="hint"),
                      gallery.thumbnail_grid(tiles, TILE_SIZE, [{"type": PICK, "index": int(i)} for i in indices])],
                     className="neighbours-list"),
        ], className="neighbours-body"),)

    return render


def register(app, context: ViewContext) -> None:
    panel.register(app, context, neighbours_request, neighbours_render(context, thumbnails.prefetcher(app)))

    @app.callback(Output(SELECTION, "data", allow_duplicate=True), Input({"type": PICK, "index": ALL}, "n_clicks"),
                  prevent_initial_call=True)
    def select_neighbour(clicks):
        # New tiles arrive with n_clicks 0 and fire this too: only a real click selects.
        if not ctx.triggered or not ctx.triggered[0]["value"] or not isinstance(ctx.triggered_id, dict):
            return no_update
        return {"index": int(ctx.triggered_id["index"])}
