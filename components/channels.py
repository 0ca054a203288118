"""Figures of channel statistics: sparsity per channel (share of zero activations, share of images it fires on, mean;
dead ones marked; sortable), the dead-channel table of all layers, and the gallery of the images that activate a
channel most, each with the channel's map overlaid.

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

STATS_HEIGHT = 420
GALLERY_TILE = 150  # CSS pixels per gallery image
DEAD_LIST_LIMIT = 24  # dead channel indices listed in a table cell before "..."
NO_DEAD = "no dead channels in this layer"
ZEROS_TRACE, DEAD_TRACE = "share of its activations that are", "dead (never fires)"
FIRES_TRACE, MEAN_TRACE = "share of images it fires on", "mean activation"


def dead_colour() -> str:
    """The colour that marks dead channels everywhere (read at call time, so a swapped theme applies)."""
    return theme.CORRECT_COLOURS["wrong"]


SORT_KEYS = {  # the chart's sort menu: label of each order, highest first except the channel number
    "channel": "channel number",
    "zeros": "share of zeros",
    "fires": "share of images it fires on",
    "mean": "mean activation",
}


def channel_orders(shown_share: np.ndarray, firing_rate: np.ndarray, mean_activation: np.ndarray) -> dict:
    """Channel indices in each order of :data:`SORT_KEYS`: by number, or by a statistic highest first (ties by the
    lower channel number), as plain lists (the browser re-sorts the chart from these without asking the server)."""
    channels = np.arange(len(firing_rate))

    def descending(values: np.ndarray) -> list[int]:
        return [int(c) for c in np.lexsort((channels, -np.asarray(values, dtype=float)))]

    return {"channel": channels.tolist(), "zeros": descending(shown_share), "fires": descending(firing_rate),
            "mean": descending(mean_activation)}


def has_negative_values(zero_share: np.ndarray, inactive_share: np.ndarray) -> bool:
    """True when some activations are below zero (a layer before its ReLU): there the share a ReLU would zero
    (``<= 0``) says more than the share exactly zero, which is then about 0."""
    return bool(np.any(np.asarray(inactive_share) > np.asarray(zero_share) + 1e-12))


def channel_stats_figure(zero_share: np.ndarray, inactive_share: np.ndarray, firing_rate: np.ndarray,
                         mean_activation: np.ndarray, dead: np.ndarray, layer: str, count: int,
                         selected: int | None = None, order: str = "channel") -> go.Figure:
    """Sparsity per channel of ``layer`` over ``count`` images: the share of its activations that are zero (bars),
    beside the share of images it fires on (markers) and, below, its mean activation.

    All arrays (C,); ``dead`` bool. Where the layer has negative values (before a ReLU) the bars show the share
    ``<= 0`` instead, and the axis says so. Dead channels are bars of their own colour and legend entry. Channels
    are categories ordered by ``order`` (a key of :data:`SORT_KEYS`); ``layout.meta["orders"]`` holds every order
    for the browser's sort menu. Every point's ``customdata[0]`` is its channel index, so a click selects that
    channel; ``selected`` is outlined.
    """
    firing_rate = np.asarray(firing_rate, dtype=float)
    mean_activation = np.asarray(mean_activation, dtype=float)
    dead = np.asarray(dead, dtype=bool)
    negative = has_negative_values(zero_share, inactive_share)
    shown = np.asarray(inactive_share if negative else zero_share, dtype=float)
    what = "≤ 0" if negative else "zero"
    channels = np.arange(len(firing_rate))
    names = [str(c) for c in channels]
    orders = channel_orders(shown, firing_rate, mean_activation)
    order = order if order in orders else "channel"
    rows = np.stack([channels, shown, firing_rate, mean_activation], axis=1)

    def outline(subset: np.ndarray) -> dict:
        return {"color": theme.SELECTED, "width": [3 if c == selected else 0 for c in subset]}

    hover = ("channel %{customdata[0]}<br>" + what + ": %{customdata[1]:.1%} of its activations"
             f"<br>fires on %{{customdata[2]:.1%}} of {count:,} images<br>mean %{{customdata[3]:.3g}}<extra></extra>")
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.07)
    for name, subset, colour in ((f"{ZEROS_TRACE} {what}", channels[~dead], theme.CLASS_COLOURS[0]),
                                 (DEAD_TRACE, channels[dead], dead_colour())):
        figure.add_trace(go.Bar(
            name=name, x=[names[c] for c in subset], y=shown[subset].tolist(), customdata=rows[subset].tolist(),
            hovertemplate=hover, marker={"color": colour, "line": outline(subset)},
            showlegend=name != DEAD_TRACE or bool(dead.any()),
        ), row=1, col=1)
    figure.add_trace(go.Scatter(
        name=FIRES_TRACE, x=names, y=firing_rate.tolist(), customdata=rows.tolist(), hovertemplate=hover,
        mode="markers", cliponaxis=False,
        marker={"symbol": "diamond", "size": 9, "color": theme.CLASS_COLOURS[1], "line": {"color": theme.TEXT, "width": 1}},
    ), row=1, col=1)
    figure.add_trace(go.Bar(
        name=MEAN_TRACE, x=names, y=mean_activation.tolist(), customdata=rows.tolist(), hovertemplate=hover,
        marker={"color": theme.BAR, "line": outline(channels)}, showlegend=False,
    ), row=2, col=1)
    note = NO_DEAD if not dead.any() else f"{int(dead.sum())} of {len(dead)} channels dead (never fire)"
    theme.base_layout(figure, f"{layer}: sparsity of each channel over {count:,} images", STATS_HEIGHT, note=note)
    figure.update_layout(clickmode="event", bargap=0.15, showlegend=True, meta={"orders": orders, "labels": SORT_KEYS},
                         # Above the plot, not below: under the axis title a legend in rows runs into it once the
                         # projector's larger text makes both taller (the page's text fit grows the top margin).
                         legend={"orientation": "h", "yref": "paper", "y": 1.0, "x": 0, "yanchor": "bottom"},
                         margin={"l": 64, "b": 56})
    category_order = [names[c] for c in orders[order]]
    figure.update_xaxes(type="category", categoryorder="array", categoryarray=category_order, showgrid=False)
    figure.update_xaxes(title={"text": f"channel (sorted by {SORT_KEYS[order]})" if order != "channel" else "channel"},
                        row=2, col=1)
    # Up to 108%: the diamonds at 100% and the top tick stay clear of the subtitle above the plot.
    figure.update_yaxes(range=[0, 1.08], tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0], tickformat=".0%", showgrid=True,
                        gridcolor=theme.GRID, row=1, col=1, title={"text": "share"})
    figure.update_yaxes(showgrid=True, gridcolor=theme.GRID, row=2, col=1, title={"text": "mean"})
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
