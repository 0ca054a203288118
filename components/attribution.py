"""Attribution figures: one panel layout (heatmap or overlay) shared by every method, so they compare side by side."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme
from components.images import image_trace, to_display

PANEL_HEIGHT = 270


def _map_trace(values: np.ndarray, signed: bool, opacity: float, colorbar_title: str, show_scale: bool = True,
               colorbar_x: float | None = None):
    limit = float(np.nanmax(np.abs(values))) or 1.0
    colorbar = {"thickness": 8, "title": {"text": colorbar_title, "side": "right"}, "len": 0.9}
    if colorbar_x is not None:
        colorbar["x"] = colorbar_x
    return go.Heatmap(
        z=values, colorscale=theme.SIGNED_SCALE if signed else theme.ATTRIBUTION_SCALE,
        zmin=-limit if signed else float(np.nanmin(values)),
        zmax=limit if signed else max(float(np.nanmax(values)), float(np.nanmin(values)) + 1e-12),
        opacity=opacity, showscale=show_scale, colorbar=colorbar,
        hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra></extra>",
    )


def attribution_figure(
    values: np.ndarray,
    image: np.ndarray,
    title: str,
    display: str = "heatmap",
    opacity: float = 0.6,
    colorbar_title: str = "attribution",
) -> go.Figure:
    """One attribution map (H, W) over its image (C, H, W): a heatmap, or an overlay with ``opacity``.

    Maps with negative values use a diverging scale centred on zero.
    """
    values = np.asarray(values, dtype=np.float32)
    signed = bool((values < 0).any() and (values > 0).any())
    if float(np.nanmax(values)) == float(np.nanmin(values)):
        title += " · constant map (no evidence for this class here)"
    figure = go.Figure()
    if display == "overlay":
        figure.add_trace(image_trace(image))
        figure.add_trace(_map_trace(values, signed, opacity, colorbar_title))
    else:
        figure.add_trace(_map_trace(values, signed, 1.0, colorbar_title))
    theme.base_layout(figure, title, PANEL_HEIGHT)
    return theme.image_axes(figure)


def occlusion_figure(
    probability: np.ndarray,
    image: np.ndarray,
    class_name: str,
    display: str = "heatmap",
    opacity: float = 0.6,
    title: str = "Occlusion",
) -> go.Figure:
    """Left: p(class) with the grey box centred at each pixel (like Zeiler & Fergus' figure);
    right: the drop in probability, as a heatmap or an overlay on the image."""
    probability = np.asarray(probability, dtype=np.float32)
    baseline = float(np.nanmax(probability))
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                           subplot_titles=(f"p({class_name}) with box here", "drop in probability"))
    figure.add_trace(go.Heatmap(
        z=probability, colorscale="RdBu", zmin=0, zmax=1, colorbar={"thickness": 8, "x": 0.44, "len": 0.9},
        hovertemplate="box at x %{x}, y %{y}: p=%{z:.3f}<extra></extra>",
    ), row=1, col=1)
    drop = baseline_probability_drop(probability, baseline)
    if display == "overlay":
        figure.add_trace(image_trace(image), row=1, col=2)
        figure.add_trace(_map_trace(drop, False, opacity, "drop", colorbar_x=1.0), row=1, col=2)
    else:
        figure.add_trace(_map_trace(drop, False, 1.0, "drop", colorbar_x=1.0), row=1, col=2)
    figure.update_annotations(font_size=11)
    theme.base_layout(figure, title, PANEL_HEIGHT)
    return theme.image_axes(figure)


def baseline_probability_drop(probability: np.ndarray, unoccluded: float) -> np.ndarray:
    """How much the class probability falls when the box covers each pixel, clipped at zero."""
    return np.clip(unoccluded - probability, 0.0, None)


def inversion_figure(reconstruction: np.ndarray, image: np.ndarray, title: str) -> go.Figure:
    """The input reconstructed from one channel (C, H, W), min-max scaled for display, beside its image."""
    reconstruction = np.asarray(reconstruction, dtype=np.float32)
    low, high = float(reconstruction.min()), float(reconstruction.max())
    scaled = (reconstruction - low) / (high - low) if high > low else np.zeros_like(reconstruction)
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.04, subplot_titles=("reconstruction", "image"))
    if scaled.shape[0] == 1:
        figure.add_trace(go.Heatmap(z=scaled[0], colorscale=theme.IMAGE_SCALE, showscale=False,
                                    hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"), row=1, col=1)
    else:
        figure.add_trace(go.Image(z=to_display(scaled)), row=1, col=1)
    figure.add_trace(image_trace(image), row=1, col=2)
    figure.update_annotations(font_size=11)
    theme.base_layout(figure, title, PANEL_HEIGHT)
    return theme.image_axes(figure)
