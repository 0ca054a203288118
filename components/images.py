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


IMAGE_HEIGHT = 260
TOP_K_HEIGHT = 220
# The feature-map panel's expected width in CSS pixels; the grid's height follows from it so the maps fill it.
FEATURE_PANEL_WIDTH = 640
MAX_GRID_HEIGHT = 480  # plot-area height past which the grid takes more columns instead of growing taller
COLORBAR_ROOM = 96  # pixels a colour bar with 14 px tick labels takes at the right of the plot area
MAX_BARS = 20  # a 1-D layer with class names shows at most this many bars (the largest values)
BAR_PITCH = 30  # pixels per bar: 14 px text with room to breathe


def image_figure(image: np.ndarray, title: str = "", height: int = IMAGE_HEIGHT) -> go.Figure:
    """The input image (C, H, W) in [0, 1]."""
    figure = go.Figure(image_trace(image))
    return theme.image_axes(theme.base_layout(figure, title, height))


def probability_label(probability: float) -> str:
    """A bar's label: one decimal of percent, and "<0.1%" rather than a misleading "0.0%"."""
    return "<0.1%" if probability < 0.0005 else f"{probability:.1%}"


TOP_K_LABELS = "probability labels"


def top_k_figure(pairs: list[tuple[str, float]], true_name: str, height: int = TOP_K_HEIGHT) -> go.Figure:
    """Horizontal bars of the top predicted classes (name, probability), most probable at the top; every bar
    carries its class name on the axis and its probability as text; the true class is highlighted.

    The labels are a text trace (:data:`TOP_K_LABELS`), not the bars' own text: plotly draws no text on a bar of
    zero width, and a 3e-7 probability is one. Long bars carry their label inside their end, short ones beside it.
    """
    names = [name for name, _ in pairs][::-1]
    values = [float(p) for _, p in pairs][::-1]
    colours = [theme.ACCENT if name == true_name else theme.BAR for name in names]
    figure = go.Figure(go.Bar(
        x=values, y=names, orientation="h", marker_color=colours, hovertemplate="%{y}: %{x:.3g}<extra></extra>",
    ))
    figure.add_trace(go.Scatter(
        name=TOP_K_LABELS, x=values, y=names, mode="text", text=[probability_label(v) for v in values],
        textposition=["middle left" if v >= 0.3 else "middle right" for v in values], cliponaxis=False,
        textfont={"size": theme.FONT_SIZE, "color": theme.TEXT}, hoverinfo="skip", showlegend=False,
    ))
    theme.base_layout(figure, "top-5 predicted probabilities", height)
    figure.update_layout(bargap=0.25, showlegend=False)
    figure.update_xaxes(range=[0, 1], tickformat=".0%", showgrid=True, gridcolor=theme.GRID)
    figure.update_yaxes(type="category", ticksuffix="  ")
    return figure


def unit_bars(values: np.ndarray, names: list[str], title: str = "", value_label: str = "logit",
              max_bars: int = MAX_BARS) -> go.Figure:
    """A 1-D layer's output ``values`` (C,) as horizontal bars labelled with ``names`` (C): the logits layer
    read as "how much each class scores". Classes keep their order (first at the top); past ``max_bars``
    only the largest values are shown, and the title says so. The largest bar is highlighted."""
    values = np.asarray(values, dtype=np.float32).ravel()
    if len(names) != len(values):
        raise ValueError(f"{len(values)} values but {len(names)} names")
    shown = np.arange(len(values))
    if len(values) > max_bars:
        shown = np.sort(np.argsort(-values, kind="stable")[:max_bars])
        title += f" (the {max_bars} largest of {len(values)})"
    top = int(np.argmax(values))
    limit = float(np.abs(values[shown]).max()) if len(shown) else 1.0
    number = theme.number_format(limit)
    label = theme.number_format(limit / 10)  # one more decimal on the bars than on the axis
    figure = go.Figure(go.Bar(
        x=values[shown].tolist(), y=[str(names[k]) for k in shown], orientation="h",
        marker_color=[theme.ACCENT if k == top else theme.BAR for k in shown],
        text=[format(float(values[k]), label) for k in shown], textposition="outside", cliponaxis=False,
        textfont={"size": theme.FONT_SIZE, "color": theme.TEXT},
        customdata=shown.tolist(), hovertemplate=f"%{{y}} (unit %{{customdata}})<br>{value_label}: %{{x:.4g}}<extra></extra>",
    ))
    theme.base_layout(figure, title or f"{len(values)} units", unit_bars_height(len(shown)))
    figure.update_layout(margin={"r": 16, "b": 40}, bargap=0.25)
    # Room beyond the longest bar on each side for its text label, which sits outside the bar.
    low, high = min(0.0, float(values[shown].min())), max(0.0, float(values[shown].max()))
    room = 0.18 * ((high - low) or 1.0)
    figure.update_xaxes(showgrid=True, gridcolor=theme.GRID, zeroline=True, zerolinecolor=theme.MUTED,
                        tickformat=number, exponentformat="e", title={"text": value_label},
                        range=[low - (room if low < 0 else 0.0), high + (room if high > 0 else 0.0)])
    figure.update_yaxes(type="category", autorange="reversed", ticksuffix="  ")
    return figure


def unit_bars_height(bars: int) -> int:
    """The height of :func:`unit_bars` with ``bars`` bars."""
    return 8 + theme.TITLE_SIZE + 16 + BAR_PITCH * bars + 40 + 2 * theme.FONT_SIZE


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


def grid_geometry(count: int, map_shape: tuple[int, int], width: int = FEATURE_PANEL_WIDTH,
                  gap: int | None = None) -> tuple[int, int, int]:
    """(columns, gap, figure height) of a grid of ``count`` maps of ``map_shape`` (h, w) that fills a panel
    ``width`` px wide with square pixels and the colour bar beside it.

    The fewest columns (largest maps) whose grid stays under MAX_GRID_HEIGHT; the height is then what makes the
    grid's width, not its height, the binding constraint, so the maps span the panel.
    """
    height, width_px = map_shape
    if gap is None:
        gap = max(1, round(0.15 * max(height, width_px)))
    plot_width = max(100, width - 16 - COLORBAR_ROOM)
    for columns in range(1, count + 1):
        rows = math.ceil(count / columns)
        data_width = columns * (width_px + gap) - gap
        data_height = rows * (height + gap) - gap
        plot_height = plot_width * data_height / data_width
        if plot_height <= MAX_GRID_HEIGHT or columns == count:
            break
    top = 8 + theme.TITLE_SIZE + 16
    return columns, gap, int(math.ceil(plot_height)) + top + 8


def feature_map_height(shape: tuple[int, ...], class_names: list[str] | None = None,
                       max_channels: int = MAX_CHANNELS_SHOWN, width: int = FEATURE_PANEL_WIDTH) -> int:
    """The height :func:`feature_map_grid` will give a layer whose per-image output has ``shape`` ((C, h, w) or
    (C,)): a placeholder of this height keeps the page from jumping when the real figure arrives."""
    if len(shape) == 1:
        if class_names is not None and len(class_names) == shape[0]:
            return unit_bars_height(min(shape[0], MAX_BARS))
        return grid_geometry(shape[0], (1, 1), width, gap=0)[2]
    map_shape = tuple(shape[1:]) if len(shape) == 3 else (1, int(np.prod(shape[1:])))
    return grid_geometry(min(shape[0], max_channels), map_shape, width)[2]


def feature_map_grid(
    activations: np.ndarray,
    scale: str = "shared",
    title: str = "",
    max_channels: int = MAX_CHANNELS_SHOWN,
    class_names: list[str] | None = None,
    width: int = FEATURE_PANEL_WIDTH,
) -> go.Figure:
    """Grid of a layer's feature maps for one image, most active channel first, filling a panel ``width`` px wide
    (the figure's height is :func:`feature_map_height`), with each channel's number on its map.

    activations: (C, h, w) for conv layers, or (C,) for linear layers. A (C,) output with ``class_names`` (C)
    (the logits) is drawn as :func:`unit_bars`; other (C,) outputs as a grid of single units in their own order.
    ``scale``: ``shared`` (one colour scale, raw values) or ``per-map`` (each map scaled to its own 0..1 range, so
    weak maps stay readable).
    """
    activations = np.asarray(activations, dtype=np.float32)
    if activations.ndim == 1 and class_names is not None and len(class_names) == len(activations):
        return unit_bars(activations, list(class_names), title)
    if activations.ndim == 1:
        units = activations
        columns, _, figure_height = grid_geometry(len(units), (1, 1), width, gap=0)
        padded = np.full(columns * math.ceil(len(units) / columns), np.nan, dtype=np.float32)
        padded[: len(units)] = units
        mosaic = padded.reshape(-1, columns)
        index = np.arange(padded.size).reshape(mosaic.shape)
        limit = float(np.abs(units).max()) if units.size else 1.0
        figure = go.Figure(go.Heatmap(
            z=mosaic, customdata=index, colorscale=theme.ACTIVATION_SCALE, hoverongaps=False,
            hovertemplate="unit %{customdata}: %{z:.3g}<extra></extra>", colorbar=theme.colorbar(limit, "activation"),
        ))
        theme.image_axes(theme.base_layout(figure, title or f"{len(units)} units", figure_height))
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
    height, width_px = maps.shape[1:]
    columns, gap, figure_height = grid_geometry(len(maps), (height, width_px), width)
    mosaic = tile(shown, columns, gap)
    raw = tile(maps, columns, gap)
    channel = tile(np.broadcast_to(order[:, None, None], maps.shape).astype(np.float32), columns, gap)
    limit = 1.0 if scale == "per-map" else (float(np.abs(maps).max()) if maps.size else 1.0)
    figure = go.Figure(go.Heatmap(
        z=mosaic, customdata=np.stack([channel, raw], axis=-1), colorscale=theme.ACTIVATION_SCALE,
        zmin=0 if scale == "per-map" else None, zmax=1 if scale == "per-map" else None,
        hovertemplate="channel %{customdata[0]:.0f}<br>activation %{customdata[1]:.3g}<extra></extra>",
        colorbar=theme.colorbar(limit, "0..1 per map" if scale == "per-map" else "activation"),
        hoverongaps=False,
    ))
    # One text trace for the channel labels: 64 layout annotations take ~0.3 s to validate, a trace ~5 ms.
    rows_columns = [divmod(k, columns) for k in range(len(order))]
    figure.add_trace(go.Scatter(
        name=CHANNEL_LABELS, x=[c * (width_px + gap) - 0.5 for _, c in rows_columns],
        y=[r * (height + gap) - 0.5 for r, _ in rows_columns], text=[str(int(c)) for c in order],
        mode="text", textposition="bottom right", hoverinfo="skip", showlegend=False,
        # White on a dark outline reads over the brightest and the darkest map alike.
        textfont={"size": theme.FONT_SIZE, "color": "white", "shadow": theme.LABEL_SHADOW},
    ))
    shown_note = f" (the {len(order)} most active of {activations.shape[0]})" if len(order) < activations.shape[0] else ""
    theme.base_layout(figure, title + shown_note, figure_height)
    theme.image_axes(figure)
    # Fixed ranges: left to autorange, the label trace's text would pad the axes and the maps would not span the panel.
    figure.update_xaxes(range=[-0.5, mosaic.shape[1] - 0.5], autorange=False)
    figure.update_yaxes(range=[mosaic.shape[0] - 0.5, -0.5], autorange=False)
    return figure
