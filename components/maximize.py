"""Figures of activation maximisation: the images (several starts side by side, or a whole layer as a grid), each
labelled with its objective, how it compares with the best real image and what the model predicts; the objective
curves; and one result beside the best data-set image. Numpy in, plotly figures out (previews as uint8 work too).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme
from components.images import image_trace

LABELS = "image labels"  # name of the text trace that labels the tiles
MAX_TILE_SIDE = 128  # tiles of a big layer grid are shrunk to this (a 64 x 224 px grid would be megabytes of JSON)
SIDE_BY_SIDE = 8  # up to this many images sit in one row; more make a square grid
# The grid's geometry, in screen pixels: the images' column of the view is about PANEL_WIDTH wide at 1280 (3/5 of
# the card); tiles get up to SIDE_BY_SIDE_TILE (a row of starts) or GRID_TILE (a whole layer) pixels a side.
PANEL_WIDTH = 700
SIDE_BY_SIDE_TILE = 220
GRID_TILE = 120
CHAR_WIDTH = 0.62  # em: a generous mean character width of the house font (digits and letters)
LINE_HEIGHT = 1.3  # em
MIN_LABEL_SIZE = 9
LABEL_OVERHANG = 6  # px a label may reach past its tile (less than the figure's 8 px side margins)


def as_unit_float(images: np.ndarray) -> np.ndarray:
    """Images (n, C, H, W) as float32 in [0, 1]: uint8 previews are divided by 255, floats clipped."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return np.clip(images.astype(np.float32), 0.0, 1.0)


def shrink(images: np.ndarray, side: int) -> np.ndarray:
    """(n, C, H, W) -> block means so that H, W <= ``side`` (an integer factor; edges that do not fill a block go)."""
    factor = math.ceil(max(images.shape[2:]) / side)
    if factor <= 1:
        return images
    n, c, h, w = images.shape
    h, w = h // factor * factor, w // factor * factor
    return images[:, :, :h, :w].reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def mosaic(images: np.ndarray, columns: int, gap: int, band: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tiles (n, C, H, W) in rows of ``columns``, ``gap`` NaN pixels apart, each row below a ``band`` of NaN pixels
    (room for its labels): the canvas (rows*(band+H+gap)-gap, columns*(W+gap)-gap, C) and each tile's (top, left)."""
    count, channels, height, width = images.shape
    rows = math.ceil(count / columns)
    canvas = np.full((rows * (band + height + gap) - gap, columns * (width + gap) - gap, channels), np.nan, np.float32)
    origins = []
    for k in range(count):
        row, column = divmod(k, columns)
        top, left = row * (band + height + gap) + band, column * (width + gap)
        canvas[top : top + height, left : left + width] = images[k].transpose(1, 2, 0)
        origins.append((top, left))
    return canvas, origins


def ratio_text(ratio: float | None) -> str:
    """``1.8× best image`` (the objective over the best real image's); a dash when there is no scale."""
    if ratio is None or not np.isfinite(ratio):
        return "– best image"
    return f"{ratio:.2f}× best image"


def predictions(top_classes: np.ndarray, top_probabilities: np.ndarray,
                class_names: Sequence[str]) -> list[list[tuple[str, float]]]:
    """Each image's top-k as (class name, probability), from the job's (n, k) arrays: what images.top_k_figure takes."""
    return [[(str(class_names[int(c)]) if int(c) < len(class_names) else str(int(c)), float(p)) for c, p in zip(cs, ps)]
            for cs, ps in zip(np.asarray(top_classes), np.asarray(top_probabilities))]


def image_label(title: str, ratio: float | None = None, prediction: tuple[str, float] | None = None) -> str:
    """Two lines: the objective, then its ratio to the best data-set image and the top-1 prediction (the hover)."""
    details = [ratio_text(ratio)] if ratio is not None else []
    if prediction is not None:
        details.append(f"→ {prediction[0]} {prediction[1]:.0%}")
    return title + ("<br>" + " · ".join(details) if details else "")


def tile_lines(title: str, ratio: float | None = None, prediction: tuple[str, float] | None = None,
               short: bool = False) -> list[str]:
    """What a tile shows above itself, one short line each: the objective, then (unless ``short``, for a whole
    layer's grid, whose tiles are small) the ratio to the best data-set image and the top-1 prediction."""
    lines = [title]
    if not short:
        if ratio is not None:
            lines.append(ratio_text(ratio))
        if prediction is not None:
            lines.append(f"→ {prediction[0]} {prediction[1]:.0%}")
    return lines


def text_width(text: str, size: float) -> float:
    """A generous estimate of ``text``'s width in pixels at font ``size`` (CHAR_WIDTH em a character)."""
    return len(text) * CHAR_WIDTH * size


def fitted(text: str, size: float, width: float) -> str:
    """``text``, cut with an ellipsis where its estimated width at ``size`` would pass ``width`` pixels."""
    if text_width(text, size) <= width:
        return text
    keep = max(1, int(width / (CHAR_WIDTH * size)) - 1)
    return text[:keep] + "…"


def maximize_grid(
    images: np.ndarray,
    titles: Sequence[str],
    ratios: Sequence[float] | None = None,
    top1: Sequence[tuple[str, float]] | None = None,
    title: str = "",
    columns: int | None = None,
    max_tile_side: int = MAX_TILE_SIDE,
) -> go.Figure:
    """The images (n, C, H, W) side by side (n <= 8) or as a square grid, each labelled above itself.

    The labels (:func:`tile_lines`; the whole :func:`image_label` on hover) sit in a band above each row of tiles,
    in the theme's text colour, never over an image or a neighbour: the tiles are sized so the figure fits
    PANEL_WIDTH pixels, the font shrinks (down to MIN_LABEL_SIZE) until the longest line fits its tile, and a line
    that still would not is cut. One image trace for all tiles (gaps are NaN: the background) and one text trace of
    labels (whose ``customdata`` holds each tile's (top, left) on the canvas): a 64-tile grid stays one fast figure.
    Grey images use the grey scale on [0, 1].
    """
    images = shrink(as_unit_float(images), max_tile_side)
    count, channels, height, width = images.shape
    if columns is None:
        columns = count if count <= SIDE_BY_SIDE else math.ceil(math.sqrt(count))
    short = count > SIDE_BY_SIDE
    gap = max(1, round(0.08 * max(height, width)))
    # Screen pixels per image pixel: tiles of GRID_TILE / SIDE_BY_SIDE_TILE pixels, fewer where the columns would
    # not fit the panel's width (the figure's height follows, so the layout is limited by its height, as planned).
    scale = min((GRID_TILE if short else SIDE_BY_SIDE_TILE) / max(height, width),
                PANEL_WIDTH / (columns * (width + gap) - gap))
    # A label may reach a little into the gap (no further than the figure's right margin), never to the next tile.
    room = width * scale + min(0.8 * gap * scale, LABEL_OVERHANG)
    lines = [tile_lines(titles[k] if k < len(titles) else "", None if ratios is None else float(ratios[k]),
                        None if top1 is None else top1[k], short) for k in range(count)]
    longest = max((len(line) for tile in lines for line in tile), default=1)
    size = int(max(MIN_LABEL_SIZE, min(theme.FONT_SIZE, room / (CHAR_WIDTH * max(1, longest)))))
    lines = [[fitted(line, size, room) for line in tile] for tile in lines]
    line_count = max((len(tile) for tile in lines), default=1)
    band = math.ceil((line_count * size * LINE_HEIGHT + 4) / scale)
    canvas, origins = mosaic(images, columns, gap, band)
    figure = go.Figure()
    if channels == 1:
        figure.add_trace(go.Heatmap(z=canvas[..., 0], colorscale=theme.IMAGE_SCALE, zmin=0, zmax=1, showscale=False,
                                    hoverongaps=False, hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"))
    else:
        rgb = np.nan_to_num(canvas[..., :3], nan=1.0)  # gaps white
        figure.add_trace(go.Image(z=(rgb * 255).round().astype(np.uint8), hovertemplate="x %{x}, y %{y}<extra></extra>"))
    hover = [image_label(titles[k] if k < len(titles) else "", None if ratios is None else float(ratios[k]),
                         None if top1 is None else top1[k]) for k in range(count)]
    figure.add_trace(go.Scatter(
        name=LABELS, x=[left - 0.5 for _, left in origins], y=[top - 0.5 - 2 / scale for top, _ in origins],
        text=["<br>".join(tile) for tile in lines], hovertext=hover, customdata=[list(o) for o in origins],
        mode="text", textposition="top right", hoverinfo="text", showlegend=False, cliponaxis=False,
        textfont={"size": size, "color": theme.TEXT},
    ))
    theme.base_layout(figure, title)
    figure.update_layout(height=round(figure.layout.margin.t + figure.layout.margin.b + canvas.shape[0] * scale))
    theme.image_axes(figure)
    # Fixed ranges: left to autorange, the label trace's text would pad the axes.
    figure.update_xaxes(range=[-0.5, canvas.shape[1] - 0.5], autorange=False)
    figure.update_yaxes(range=[canvas.shape[0] - 0.5, -0.5], autorange=False)
    return figure


def objective_curves(history: np.ndarray, titles: Sequence[str], title: str = "objective per step",
                     max_lines: int = SIDE_BY_SIDE) -> go.Figure:
    """The objective of each image per step, history (steps, n). Beyond ``max_lines`` images (a whole layer) each
    is a thin grey line and the mean a bold one, so 64 curves stay readable."""
    history = np.asarray(history, dtype=np.float32)
    steps = np.arange(1, history.shape[0] + 1)
    figure = go.Figure()
    many = history.shape[1] > max_lines
    for k in range(history.shape[1]):
        name = titles[k] if k < len(titles) else f"image {k}"
        figure.add_trace(go.Scatter(
            x=steps, y=history[:, k], mode="lines", name=name, showlegend=not many,
            line={"width": 1, "color": "#c4c9d0"} if many else {"width": 2, "color": theme.class_colour(k)},
            hovertemplate=f"{name}<br>step %{{x}}: %{{y:.3g}}<extra></extra>",
        ))
    if many:
        figure.add_trace(go.Scatter(x=steps, y=history.mean(axis=1), mode="lines", name="mean",
                                    line={"width": 3, "color": theme.ACCENT},
                                    hovertemplate="mean<br>step %{x}: %{y:.3g}<extra></extra>"))
    theme.base_layout(figure, title, 260)
    figure.update_xaxes(title_text="step", showgrid=True, gridcolor=theme.GRID)
    figure.update_yaxes(title_text="objective", showgrid=True, gridcolor=theme.GRID)
    return figure


def best_image_comparison(
    image: np.ndarray,
    best_image: np.ndarray,
    value: float,
    best_value: float,
    best_index: int,
    title: str = "",
    importance: np.ndarray | None = None,
) -> go.Figure:
    """The optimised image (C, H, W) beside the data set's best image for the same objective, each titled with its
    objective value; with ``importance`` (H, W) a third panel shows where the image matters (MACO's map)."""
    panels = [f"optimised: {value:.3g}", f"best data image #{int(best_index)}: {best_value:.3g}"]
    if importance is not None:
        panels.append("where it matters")
    figure = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.04, subplot_titles=panels)
    figure.add_trace(image_trace(as_unit_float(np.asarray(image)[None])[0]), row=1, col=1)
    figure.add_trace(image_trace(as_unit_float(np.asarray(best_image)[None])[0]), row=1, col=2)
    if importance is not None:
        figure.add_trace(go.Heatmap(z=np.asarray(importance, dtype=np.float32), colorscale=theme.ATTRIBUTION_SCALE,
                                    zmin=0, zmax=1, showscale=False,
                                    hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"), row=1, col=3)
    theme.base_layout(figure, title, 280)
    return theme.image_axes(figure)
