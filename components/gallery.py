"""Pictures of many images: a thumbnail grid (a gallery, a row of neighbours), a large image, a class histogram.

Pictures are ``<img>`` tags whose sources are the server's thumbnail URLs (``dashboard/thumbnails.py``): the
browser fetches and caches them, so no image travels through a callback. Builders take URLs and numbers, never
tensors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from dash import html

from components import theme

HISTOGRAM_HEIGHT = 260
BAR_PITCH = 26  # pixels per class bar when classes are listed horizontally


@dataclass(frozen=True)
class Tile:
    """One picture of a grid: its URL, a caption under it (class, distance) and a tooltip."""

    src: str
    caption: str = ""
    tooltip: str = ""


def thumbnail_grid(tiles: list[Tile], size: int = 64, tile_ids: list | None = None, class_name: str = "") -> html.Div:
    """A wrapping grid of pictures ``size`` CSS pixels wide, each with its caption; with ``tile_ids`` (one Dash id per
    tile) each tile is a button (a click on a neighbour selects it)."""
    children = []
    for position, tile in enumerate(tiles):
        body = [html.Img(src=tile.src, width=size, height=size, alt=tile.tooltip or tile.caption,
                         className="gallery-image"),
                html.Span(tile.caption, className="gallery-caption")]
        if tile_ids is not None:
            children.append(html.Button(body, id=tile_ids[position], n_clicks=0, title=tile.tooltip,
                                        className="gallery-tile gallery-tile-button"))
        else:
            children.append(html.Figure(body, title=tile.tooltip, className="gallery-tile"))
    return html.Div(children, className=f"gallery-grid {class_name}".strip())


def large_image(src: str, caption: str, size: int = 192) -> html.Figure:
    """One image shown large (``size`` CSS pixels), with its caption below."""
    return html.Figure([html.Img(src=src, width=size, height=size, alt=caption, className="gallery-large-image"),
                        html.Figcaption(caption, className="gallery-caption")], className="gallery-large")


def class_counts(labels: np.ndarray, class_count: int) -> np.ndarray:
    """How many of ``labels`` (N,) fall in each of ``class_count`` classes: (class_count,) int64."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=class_count)[:class_count]


def class_histogram(labels: np.ndarray, classes: list[str], title: str = "",
                    height: int = HISTOGRAM_HEIGHT) -> go.Figure:
    """Bars of how many selected images each class has (labels: (N,) class indices), in class order, coloured
    by class as in the scatter; every bar carries its count."""
    counts = class_counts(labels, len(classes))
    figure = go.Figure(go.Bar(
        x=list(classes), y=counts.tolist(), text=[str(int(c)) for c in counts], textposition="outside",
        marker={"color": [theme.class_colour(k) for k in range(len(classes))]}, cliponaxis=False,
        hovertemplate="%{x}: %{y} images<extra></extra>",
    ))
    theme.base_layout(figure, title, height)
    figure.update_layout(showlegend=False, bargap=0.2, margin={"t": 48, "b": 40, "l": 48, "r": 16})
    figure.update_xaxes(type="category", title_text="true class")
    figure.update_yaxes(title_text="images", rangemode="tozero")
    return figure


def paths_text(names: list[str]) -> str:
    """The export of a selection: one file path (or ``digits#<index>``) a line."""
    return "".join(f"{name}\n" for name in names)
