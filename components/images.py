"""Figures of one image: the image itself, top-k probabilities, and grids of feature maps."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from components import theme

MAX_CHANNELS_SHOWN = 64
CHANNEL_LABELS = "channel labels"


def to_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) for one channel, (H, W, 3) uint8 for three."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[0] == 1:
        return image[0]
    if image.ndim == 3:
        return (np.clip(image.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
    return image


def image_trace(image: np.ndarray, **kwargs) -> go.BaseTraceType:
    """A grey heatmap for one channel, an RGB image for three."""
    shown = to_display(image)
    if shown.ndim == 2:
        return go.Heatmap(z=shown, colorscale=theme.IMAGE_SCALE, zmin=0, zmax=1, showscale=False,
                          hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>", **kwargs)
    return go.Image(z=shown, hovertemplate="x %{x}, y %{y}<extra></extra>", **kwargs)


def image_figure(image: np.ndarray, title: str = "", height: int = 260) -> go.Figure:
    """The input image (C, H, W) in [0, 1]."""
    figure = go.Figure(image_trace(image))
    return theme.image_axes(theme.base_layout(figure, title, height))


def top_k_figure(pairs: list[tuple[str, float]], true_name: str, height: int = 200) -> go.Figure:
    """Horizontal bars of the top predicted classes (name, probability); the true class is highlighted."""
    names = [name for name, _ in pairs][::-1]
    values = [p for _, p in pairs][::-1]
    colours = [theme.ACCENT if name == true_name else "#9aa5b1" for name in names]
    figure = go.Figure(go.Bar(
        x=values, y=[f"{n} " for n in names], orientation="h", marker_color=colours,
        text=[f"{v:.1%}" for v in values], textposition="auto", hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    theme.base_layout(figure, "top-5 predicted probabilities", height)
    figure.update_xaxes(range=[0, 1], tickformat=".0%", showgrid=True, gridcolor="#eef0f3")
    return figure


def channel_order(maps: np.ndarray) -> np.ndarray:
    """Channel indices of ``maps`` (C, h, w) from the most to the least active (mean activation)."""
    return np.argsort(-maps.reshape(len(maps), -1).mean(axis=1), kind="stable")


def tile(maps: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """Lay ``maps`` (C, h, w) out in a grid of ``columns``, separated by ``gap`` NaN pixels: (rows*(h+gap)-gap, ...)."""
    count, height, width = maps.shape
    rows = math.ceil(count / columns)
    mosaic = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan, dtype=np.float32)
    for k in range(count):
        row, column = divmod(k, columns)
        top, left = row * (height + gap), column * (width + gap)
        mosaic[top : top + height, left : left + width] = maps[k]
    return mosaic


def feature_map_grid(
    activations: np.ndarray,
    scale: str = "shared",
    title: str = "",
    max_channels: int = MAX_CHANNELS_SHOWN,
) -> go.Figure:
    """Grid of a layer's feature maps for one image, most active channel first.

    activations: (C, h, w) for conv layers, or (C,) for linear layers (shown as a grid of single units in
    their own order). ``scale``: ``shared`` (one colour scale, raw values) or ``per-map`` (each map scaled
    to its own 0..1 range, so weak maps stay readable).
    """
    activations = np.asarray(activations, dtype=np.float32)
    if activations.ndim == 1:
        units = activations
        columns = math.ceil(math.sqrt(len(units)))
        padded = np.full(columns * math.ceil(len(units) / columns), np.nan, dtype=np.float32)
        padded[: len(units)] = units
        mosaic = padded.reshape(-1, columns)
        index = np.arange(padded.size).reshape(mosaic.shape)
        figure = go.Figure(go.Heatmap(
            z=mosaic, customdata=index, colorscale=theme.ACTIVATION_SCALE,
            hovertemplate="unit %{customdata}: %{z:.3f}<extra></extra>", colorbar={"thickness": 10},
        ))
        theme.image_axes(theme.base_layout(figure, title or f"{len(units)} units", 320))
        return figure

    if activations.ndim != 3:
        activations = activations.reshape(activations.shape[0], 1, -1)
    order = channel_order(activations)[:max_channels]
    maps = activations[order]
    if scale == "per-map":
        low = maps.reshape(len(maps), -1).min(axis=1)[:, None, None]
        high = maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
        shown = (maps - low) / np.where(high > low, high - low, 1.0)
    else:
        shown = maps
    columns = math.ceil(math.sqrt(len(maps)))
    height, width = maps.shape[1:]
    gap = max(1, round(0.15 * max(height, width)))
    mosaic = tile(shown, columns, gap)
    raw = tile(maps, columns, gap)
    channel = tile(np.broadcast_to(order[:, None, None], maps.shape).astype(np.float32), columns, gap)
    figure = go.Figure(go.Heatmap(
        z=mosaic, customdata=np.stack([channel, raw], axis=-1), colorscale=theme.ACTIVATION_SCALE,
        zmin=0 if scale == "per-map" else None, zmax=1 if scale == "per-map" else None,
        hovertemplate="channel %{customdata[0]:.0f}<br>activation %{customdata[1]:.3f}<extra></extra>",
        colorbar={"thickness": 10, "title": {"text": "0..1 per map" if scale == "per-map" else "activation", "side": "right"}},
        hoverongaps=False,
    ))
    # One text trace for the channel labels: 64 layout annotations take ~0.3 s to validate, a trace ~5 ms.
    rows_columns = [divmod(k, columns) for k in range(len(order))]
    figure.add_trace(go.Scatter(
        name=CHANNEL_LABELS, x=[c * (width + gap) - 0.5 for _, c in rows_columns],
        y=[r * (height + gap) - 0.5 for r, _ in rows_columns], text=[str(int(c)) for c in order],
        mode="text", textposition="bottom right", hoverinfo="skip", showlegend=False,
        textfont={"size": 9, "color": "white", "shadow": "0px 0px 2px black"},
    ))
    shown_note = f" (the {len(order)} most active of {activations.shape[0]})" if len(order) < activations.shape[0] else ""
    theme.base_layout(figure, title + shown_note, 80 + 70 * math.ceil(len(maps) / columns))
    theme.image_axes(figure)
    return figure
