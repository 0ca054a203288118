"""Figures of channel statistics: firing rate per channel (dead ones marked), the dead-channel table of all layers,
and the gallery of the images that activate a channel most, each with the channel's map overlaid.

Inputs are the plain arrays of the ``channels.*`` jobs (see ``compute/channels.py``).
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from dash import html
from plotly.subplots import make_subplots

from components import theme
from components.images import image_trace

STATS_HEIGHT = 320
GALLERY_TILE = 150  # CSS pixels per gallery image
DEAD_LIST_LIMIT = 24  # dead channel indices listed in a table cell before "..."
NO_DEAD = "no dead channels in this layer"
ALIVE_TRACE, DEAD_TRACE = "fires", "dead (never fires)"


def dead_colour() -> str:
    """The colour that marks dead channels everywhere (read at call time, so a swapped theme applies)."""
    return theme.CORRECT_COLOURS["wrong"]


def channel_stats_figure(firing_rate: np.ndarray, dead: np.ndarray, mean_activation: np.ndarray, layer: str,
                         count: int, selected: int | None = None) -> go.Figure:
    """Bars of the fraction of the ``count`` images on which each channel fires, for ``layer``.

    firing_rate, mean_activation: (C,); dead: (C,) bool. Dead channels (rate 0, so no bar) are drawn as markers
    on the axis in their own colour and legend entry. Every point's ``customdata[0]`` is its channel index, so a
    click selects that channel; ``selected`` is outlined.
    """
    firing_rate = np.asarray(firing_rate, dtype=float)
    mean_activation = np.asarray(mean_activation, dtype=float)
    dead = np.asarray(dead, dtype=bool)
    channels = np.arange(len(firing_rate))
    figure = go.Figure()
    alive = channels[~dead]
    hover = ("channel %{customdata[0]}<br>fires on %{y:.1%} of " + f"{count} images"
             + "<br>mean activation %{customdata[1]:.3g}<extra></extra>")
    figure.add_trace(go.Bar(
        name=ALIVE_TRACE, x=alive.tolist(), y=firing_rate[alive].tolist(),
        customdata=np.stack([alive, mean_activation[alive]], axis=1).tolist(),
        marker={"color": theme.CLASS_COLOURS[0],
                "line": {"color": theme.SELECTED, "width": [3 if c == selected else 0 for c in alive]}},
        hovertemplate=hover,
    ))
    gone = channels[dead]
    figure.add_trace(go.Scatter(
        name=DEAD_TRACE, x=gone.tolist(), y=[0.0] * len(gone), mode="markers", cliponaxis=False,
        customdata=np.stack([gone, mean_activation[gone]], axis=1).tolist(),
        marker={"color": dead_colour(), "symbol": "x", "size": [16 if c == selected else 11 for c in gone],
                "line": {"color": dead_colour(), "width": 1}},
        hovertemplate=f"channel %{{customdata[0]}}: dead, fires on none of {count} images"
                      "<br>mean activation %{customdata[1]:.3g}<extra></extra>",
    ))
    note = NO_DEAD if not dead.any() else f"{int(dead.sum())} of {len(dead)} channels dead (never fire)"
    theme.base_layout(figure, f"{layer}: share of images on which each channel fires", STATS_HEIGHT, note=note)
    figure.update_layout(clickmode="event", bargap=0.15, showlegend=True,
                         legend={"orientation": "h", "y": -0.22, "x": 0}, margin={"l": 56, "b": 70})
    figure.update_xaxes(title={"text": "channel"}, range=[-0.7, len(channels) - 0.3], showgrid=False)
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", showgrid=True, gridcolor=theme.GRID)
    return figure


def dead_table(rows: list[dict], count: int) -> html.Table:
    """The table of dead channels per layer (rows of the ``channels.dead_table`` job) over ``count`` images.

    A layer without dead channels says so in words; dead ones are listed by index (the first DEAD_LIST_LIMIT).
    """
    header = html.Thead(html.Tr([html.Th(text) for text in
                                 ("layer", "type", "channels", "dead", "zeros", "dead channels")]))
    body = []
    for row in rows:
        dead_list = row["dead_channels"]
        if dead_list:
            listed = ", ".join(str(c) for c in dead_list[:DEAD_LIST_LIMIT])
            listed += f", ... ({len(dead_list) - DEAD_LIST_LIMIT} more)" if len(dead_list) > DEAD_LIST_LIMIT else ""
        else:
            listed = NO_DEAD
        body.append(html.Tr([
            html.Td(row["layer"]), html.Td(row["kind"]), html.Td(str(row["channels"])),
            html.Td(str(row["dead"]), className="dead-count" if row["dead"] else None),  # coloured by the page's theme
            html.Td(f"{row['zero_fraction']:.0%}"), html.Td(listed),
        ], className="has-dead" if row["dead"] else ""))
    caption = html.Caption(f"Dead channels: never positive on any of the {count} images.")
    return html.Table([caption, header, html.Tbody(body)], className="dead-table")


def top_images_figure(images: np.ndarray, maps: np.ndarray | None, indices: np.ndarray, values: np.ndarray,
                      layer: str, channel: int, labels: np.ndarray | None = None, classes: list[str] | None = None,
                      opacity: float = 0.55, columns: int | None = None) -> go.Figure:
    """The images that activate ``channel`` of ``layer`` most, each titled by its index and the channel's max.

    images: (k, C, H, W) in [0, 1]; maps: (k, H, W) the channel's map at image size (None: no overlay), drawn
    where it is positive on one colour scale shared by the gallery; indices, values: (k,). Every trace's
    ``customdata`` is the image's index, so a click on a gallery image can select it.
    """
    images = np.asarray(images, dtype=np.float32)
    count = len(images)
    columns = columns or min(count, max(1, math.ceil(math.sqrt(count))))
    rows = max(1, math.ceil(count / columns))

    def title(k: int) -> str:
        name = f" · {classes[int(labels[k])]}" if labels is not None and classes else ""
        return f"#{int(indices[k])} · {float(values[k]):.3g}{name}"

    figure = make_subplots(rows=rows, cols=columns, subplot_titles=[title(k) for k in range(count)],
                           horizontal_spacing=0.02, vertical_spacing=0.08)
    limit = None
    if maps is not None:
        maps = np.asarray(maps, dtype=np.float32)
        limit = max(float(np.nanmax(maps)), 1e-12) if maps.size else 1.0
    for k in range(count):
        row, column = divmod(k, columns)
        index_grid = np.full(images.shape[-2:], int(indices[k]))
        figure.add_trace(image_trace(images[k], customdata=index_grid), row=row + 1, col=column + 1)
        if maps is not None:
            # Only where the channel fires: the image stays readable elsewhere.
            shown = np.where(maps[k] > 0, maps[k], np.nan)
            figure.add_trace(go.Heatmap(
                z=shown, customdata=index_grid, colorscale=theme.ACTIVATION_SCALE, zmin=0, zmax=limit,
                opacity=opacity, hoverongaps=False, showscale=k == 0, colorbar=theme.colorbar(limit, "activation"),
                hovertemplate=f"image #{int(indices[k])}<br>x %{{x}}, y %{{y}}: %{{z:.3g}}<extra></extra>",
            ), row=row + 1, col=column + 1)
    theme.base_layout(figure, f"{layer} channel {channel}: the {count} images it responds to most",
                      rows * GALLERY_TILE + 3 * theme.TITLE_SIZE + 20,
                      note="each titled by its index, the channel's largest value on it and its class")
    return theme.image_axes(figure)
