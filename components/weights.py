"""Figures of conv kernels: the grid of filters, before | after training, and smoothness / diversity per epoch.

The grids come from ``compute.weights.kernel_grid`` (values in [0, 1], each filter normalised on its own):
(out, kh, kw) for one channel or a norm, (out, kh, kw, 3) in colour.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme
from components.images import tile

GRID_WIDTH = 420  # the plot area's expected width in CSS pixels; the height follows so the tiles stay square
EVOLUTION_HEIGHT = 300
INPUT_DESCRIPTIONS = {
    "rgb": "input channels R, G, B",
    "norm": "all input channels (L2 norm per tap)",
}
MODE_NOTES = {
    "rgb": "colour: the three input channels; mid-grey is a zero weight",
    "channel": "grey: one input channel; mid-grey is a zero weight, white the filter's largest positive",
    "norm": "brightness: the weights' norm over all input channels at each tap",
}
# Slide 7: the note the page shows next to a fully connected layer.
FULLY_CONNECTED_NOTE = ("Fully connected weights are not shown as kernels: each weight joins one input unit to one "
                        "output unit with no spatial neighbourhood, so a row of them is not a small image.")


def grid_columns(count: int) -> int:
    """Columns of a near-square grid of ``count`` tiles."""
    return max(1, math.ceil(math.sqrt(count)))


def _mosaic(grid: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(mosaic, output-channel index per pixel, gap): the tiles laid out with NaN gaps between them.

    The mosaic is (H, W) for grey grids and (H, W, 3) for colour ones; the index is NaN in the gaps.
    """
    count, height, width = grid.shape[:3]
    gap = max(1, round(0.2 * max(height, width)))
    if grid.ndim == 4:
        mosaic = np.stack([tile(grid[..., c], columns, gap) for c in range(3)], axis=-1)
    else:
        mosaic = tile(grid, columns, gap)
    index = tile(np.broadcast_to(np.arange(count, dtype=np.float32)[:, None, None], (count, height, width)), columns, gap)
    return mosaic, index, gap


def _kernel_trace(grid: np.ndarray, layer: str, mode: str, input_channel: int | None, columns: int,
                  show_scale: bool = True) -> go.BaseTraceType:
    """One trace drawing every filter of ``grid`` as a tile; hover names layer, output and input channel."""
    grid = np.asarray(grid, dtype=np.float32)
    mosaic, index, _gap = _mosaic(grid, columns)
    inputs = INPUT_DESCRIPTIONS.get(mode, f"input channel {input_channel}")
    hover = f"layer {layer}<br>output channel %{{customdata[0]:.0f}}<br>{inputs}"
    if grid.ndim == 4:
        # go.Image takes no NaN: the gaps become the background colour.
        pixels = np.where(np.isnan(mosaic), 1.0, mosaic)
        return go.Image(z=(np.clip(pixels, 0, 1) * 255).astype(np.uint8), customdata=index[..., None],
                        hovertemplate=hover + "<extra></extra>")
    return go.Heatmap(
        z=mosaic, customdata=index[..., None], zmin=0, zmax=1, hoverongaps=False,
        colorscale=theme.ACTIVATION_SCALE if mode == "norm" else theme.IMAGE_SCALE,
        hovertemplate=hover + "<br>shown value %{z:.2f}<extra></extra>",
        showscale=show_scale and mode == "norm",
        colorbar=theme.colorbar(1.0, "norm / filter's largest") if mode == "norm" else None,
    )


def _grid_height(grid: np.ndarray, columns: int, panels: int = 1) -> int:
    count, height, width = np.asarray(grid).shape[:3]
    gap = max(1, round(0.2 * max(height, width)))
    rows = math.ceil(count / columns)
    aspect = (rows * (height + gap) - gap) / (columns * (width + gap) - gap)
    return int(GRID_WIDTH / panels * aspect) + 3 * theme.TITLE_SIZE + 2 * theme.FONT_SIZE + 24


def kernel_grid_figure(grid: np.ndarray, layer: str, mode: str, input_channel: int | None = None,
                       title: str = "", columns: int | None = None) -> go.Figure:
    """The filters of ``layer`` as a grid of small images, one tile per output channel, with gaps between.

    grid: (out, kh, kw) or (out, kh, kw, 3) in [0, 1]; ``mode`` as resolved by compute (``rgb``, ``channel``,
    ``norm``). Every pixel's ``customdata[0]`` is its output channel (NaN in the gaps), so a click names the filter.
    """
    grid = np.asarray(grid, dtype=np.float32)
    columns = columns or grid_columns(len(grid))
    figure = go.Figure(_kernel_trace(grid, layer, mode, input_channel, columns))
    shape = "x".join(str(s) for s in grid.shape[1:3])
    theme.base_layout(figure, title or f"{layer}: {len(grid)} filters of {shape}", _grid_height(grid, columns),
                      note=MODE_NOTES.get(mode, ""))
    return theme.image_axes(figure)


def before_after_figure(before: np.ndarray, after: np.ndarray, layer: str, mode: str,
                        input_channel: int | None = None, titles: tuple[str, str] = ("untrained (epoch 0)", "trained"),
                        ) -> go.Figure:
    """The same layer's kernel grids side by side: ``before`` | ``after`` (each as for :func:`kernel_grid_figure`)."""
    before, after = np.asarray(before, dtype=np.float32), np.asarray(after, dtype=np.float32)
    if before.shape != after.shape:
        raise ValueError(f"before and after grids differ in shape: {before.shape} vs {after.shape}")
    columns = grid_columns(len(before))
    figure = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.04)
    for column, grid in enumerate((before, after), start=1):
        figure.add_trace(_kernel_trace(grid, layer, mode, input_channel, columns, show_scale=column == 2),
                         row=1, col=column)
    theme.base_layout(figure, f"{layer}: before and after training", _grid_height(before, columns, panels=2) + 60,
                      note=MODE_NOTES.get(mode, ""))
    return theme.image_axes(figure)


def evolution_figure(labels: list[str], mean_smoothness: np.ndarray, diversity: np.ndarray,
                     noise_smoothness: float | None = None, test_accuracy: np.ndarray | None = None,
                     selected: int | None = None, layer: str = "") -> go.Figure:
    """Smoothness (mean over filters) and diversity of a layer per saved epoch, as lines over ``labels`` (E,).

    ``noise_smoothness`` draws what white noise scores, ``test_accuracy`` (E,) adds the accuracy line where
    known, ``selected`` (an index into ``labels``) marks the epoch the slider shows.
    """
    x = list(range(len(labels)))
    figure = go.Figure()
    lines = [("smoothness (mean over filters)", mean_smoothness, theme.CLASS_COLOURS[0], "solid"),
             ("diversity (mean cosine distance)", diversity, theme.CLASS_COLOURS[1], "solid")]
    if test_accuracy is not None and np.isfinite(np.asarray(test_accuracy, dtype=float)).any():
        lines.append(("test accuracy", test_accuracy, theme.MUTED, "dot"))
    for name, values, colour, dash in lines:
        figure.add_trace(go.Scatter(
            x=x, y=np.asarray(values, dtype=float).tolist(), name=name, mode="lines+markers",
            line={"color": colour, "dash": dash, "width": 2}, marker={"size": 7}, customdata=x,
            text=labels, hovertemplate=f"%{{text}}<br>{name}: %{{y:.3f}}<extra></extra>",
        ))
    if noise_smoothness is not None:
        figure.add_hline(y=noise_smoothness, line={"color": theme.CLASS_COLOURS[0], "dash": "dash", "width": 1},
                         annotation_text="smoothness of white noise", annotation_position="bottom right",
                         annotation_font={"size": theme.FONT_SIZE, "color": theme.MUTED})
    if selected is not None and 0 <= selected < len(labels):
        figure.add_vline(x=selected, line={"color": theme.SELECTED, "width": 1})
    theme.base_layout(figure, f"{layer}: smooth and diverse over training" if layer else "smooth and diverse over training",
                      EVOLUTION_HEIGHT)
    # The legend at the figure's foot and the axis pushing the margin (a legend at a fixed fraction below the plot
    # ran into the axis title at projector size).
    figure.update_layout(legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0},
                         margin={"b": 8, "l": 50})
    figure.update_xaxes(tickvals=x, ticktext=labels, showgrid=False, automargin=True)
    top = max([1.0] + [float(v) for v in np.asarray(diversity, dtype=float) if np.isfinite(v)])
    figure.update_yaxes(range=[0, top + 0.05], showgrid=True, gridcolor=theme.GRID, tickformat=".1f")
    return figure
