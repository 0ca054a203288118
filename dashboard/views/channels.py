"""Dead and sparse channels: per channel of a layer the share of its activations that are zero over the whole data
set, beside the share of images it fires on and its mean (sortable), the dead channels of every ReLU layer, and the
images that activate a clicked channel most, ringed in the scatter.

A channel is chosen by a click on its bar here, or on its map in the detail view's feature-map grid; the choice
is a small key in ``CHANNEL`` ({"layer", "channel"}), and the gallery's image indices go to the page-wide
``HIGHLIGHT`` store, which the explore view draws as rings.
"""
from __future__ import annotations

import math

import numpy as np
from dash import Input, Output, State, ctx, dcc, html, no_update

from components import channels as figures
from components import controls, scatter, theme
from dashboard.views.context import FEATURE_MAPS, HIGHLIGHT, OPEN_VIEWS, SELECTION, ViewContext
from dashboard.views.context import LAYER as PAGE_LAYER
from dashboard.views.links import Entry, LayerChannel
from dashboard.views.panel import BackgroundPanel, Message, Request

NAME = "channels"
TITLE = "Channels: dead and sparse"
OPENABLE = True
OPEN_AT_START = False

LAYER = "channels-layer"
STATS = "channels-stats"
SHOWN_LAYER = "channels-shown-layer"  # the layer the statistics chart shows (a click on it names this layer)
SUMMARY = "channels-summary"
SORT = "channels-sort"  # the chart's order: a key of components.channels.SORT_KEYS
CHANNEL = "channels-channel"  # {"layer": str, "channel": int}: the channel whose top images are shown
GALLERY = "channels-gallery"
GALLERY_NOTE = "channels-gallery-note"
MARK = "channels-mark"  # what this view wants ringed in the scatter; copied to HIGHLIGHT while the view is open
DEAD_TABLE = "channels-dead-table"
TOP_K = 9  # one k for the statistics, the dead table and the gallery: they share one cached pass per layer
FOLLOW_EXPLORE = ""  # the layer dropdown's value for "the layer of the toolbar above"
HIGHLIGHT_PREFIX = "top images of "
URL_STATE = [Entry("channels.layer", LAYER), Entry("channels.channel", CHANNEL, "data", LayerChannel()),
             Entry("channels.sort", SORT)]

stats_panel = BackgroundPanel(
    "channels-stats",
    outputs=[Output(STATS, "figure"), Output(SUMMARY, "children"), Output(SHOWN_LAYER, "data")],
    inputs=[Input(LAYER, "value"), Input(PAGE_LAYER, "value")],
    states=[State(CHANNEL, "data"), State(SORT, "value")],
    view=NAME,
)
gallery_panel = BackgroundPanel(
    "channels-gallery",
    outputs=[Output(GALLERY, "figure"), Output(GALLERY_NOTE, "children"), Output(MARK, "data")],
    inputs=[Input(CHANNEL, "data")],
    view=NAME,
    idle_text="Click a channel's bar above, or a map in the feature-map grid, to see the images it responds to most.",
)
dead_panel = BackgroundPanel("channels-dead", outputs=[Output(DEAD_TABLE, "children")], inputs=[], view=NAME)

# Copies the gallery's mark into the page-wide highlight while this view is open, and takes it back when the view
# closes; a highlight another view set is left alone.
SHARE_MARK = """
function(mark, open, current) {
    const none = window.dash_clientside.no_update;
    const ours = !current || String(current.label || '').startsWith('""" + HIGHLIGHT_PREFIX + """');
    const isOpen = (open || []).includes('""" + NAME + """');
    if (!isOpen) { return (current && ours) ? null : none; }
    if (!mark) { return (current && ours) ? null : none; }
    return mark;
}
"""

# Outlines the chosen channel in every bar of the statistics chart, in the browser (as channel_stats_figure's
# ``selected``): every point carries its channel in customdata[0].
OUTLINE_CHANNEL = """
function(chosen, figure, layer) {
    if (!figure || !figure.data) { return window.dash_clientside.no_update; }
    const c = (chosen && chosen.layer === layer) ? chosen.channel : null;
    const data = figure.data.map(trace => {
        if (trace.type !== 'bar') { return trace; }
        const widths = (trace.customdata || []).map(row => Number(row[0]) === c ? 3 : 0);
        const marker = Object.assign({}, trace.marker, {line: Object.assign({}, (trace.marker || {}).line, {width: widths})});
        return Object.assign({}, trace, {marker: marker});
    });
    return Object.assign({}, figure, {data: data});
}
"""

# Sorts the chart's channels in the browser, from the orders the figure carries (layout.meta.orders).
SORT_CHART = """
function(order, figure) {
    const meta = (figure && figure.layout && figure.layout.meta) || {};
    const orders = meta.orders, labels = meta.labels || {};
    if (!orders || !orders[order]) { return window.dash_clientside.no_update; }
    const names = orders[order].map(String);
    const layout = Object.assign({}, figure.layout);
    for (const key of Object.keys(layout)) {
        if (key.startsWith('xaxis')) {
            layout[key] = Object.assign({}, layout[key], {categoryorder: 'array', categoryarray: names});
        }
    }
    const title = order === 'channel' ? 'channel' : 'channel (sorted by ' + labels[order] + ')';
    layout.xaxis2 = Object.assign({}, layout.xaxis2, {title: Object.assign({}, (layout.xaxis2 || {}).title, {text: title})});
    return Object.assign({}, figure, {layout: layout});
}
"""


def layout(context: ViewContext) -> html.Section:
    return controls.card(
        TITLE,
        html.P("Over the whole data set, every position of every image: the bars are the share of each channel's "
               "activations that are zero (sparse features: most values are zero); the diamonds the share of images "
               "on which it fires anywhere (its largest value above zero), which is high even for a sparse channel; "
               "below, its mean. A dead channel fires on no image. Sparse features are normal in a well-trained "
               "network; many dead ones waste capacity.", className="hint"),
        html.Div([
            controls.labelled("Layer", dcc.Dropdown(
                id=LAYER, options=[{"label": "(the layer above)", "value": FOLLOW_EXPLORE}] + list(context.meta.layers),
                value=FOLLOW_EXPLORE, clearable=False), "the toolbar's layer, or any other"),
            controls.labelled("Sort channels by", dcc.RadioItems(
                id=SORT, value="channel", inline=True,
                options=[{"label": label, "value": key} for key, label in figures.SORT_KEYS.items()])),
        ], className="toolbar"),
        stats_panel.status(),
        html.Div([
            dcc.Graph(id=STATS, figure=scatter.empty_figure("firing rate per channel", figures.STATS_HEIGHT),
                      config=theme.graph_config("featurescope-channel-stats")),
            html.Div(id=SUMMARY, className="channels-summary"),
        ], className="channels-stats"),
        html.H3("The images a channel responds to most", className="channels-heading"),
        gallery_panel.status(),
        html.Div(id=GALLERY_NOTE, className="hint"),
        dcc.Graph(id=GALLERY, figure=scatter.empty_figure("click a channel to see its top images", 200),
                  config=theme.graph_config("featurescope-top-images")),
        html.H3("Dead channels in every ReLU layer", className="channels-heading"),
        html.P("After a ReLU, never firing is final; the rows are the model's ReLU layers (or its conv layers when "
               "it applies ReLU as a function).", className="hint"),
        dead_panel.status(),
        html.Div(id=DEAD_TABLE),
        dcc.Store(id=CHANNEL),
        dcc.Store(id=SHOWN_LAYER),
        dcc.Store(id=MARK),
        class_name="channels",
    )


def stats_request(layer, explore_layer, chosen, order=None):
    layer = layer or explore_layer
    if not layer:
        return None
    selected = chosen["channel"] if isinstance(chosen, dict) and chosen.get("layer") == layer else None
    order = order if order in figures.SORT_KEYS else "channel"
    return Request("channels.stats", {"layer": layer, "k": TOP_K}, {"layer": layer, "selected": selected,
                                                                     "order": order})


def _share(value: float) -> str:
    """A share in percent that never rounds a non-zero share to 0% or a partial one to 100%."""
    if 0 < value < 0.005:
        return "< 1%"
    if 0.995 <= value < 1:
        return "> 99%"
    return f"{value:.0%}"


def summary_text(result: dict) -> list:
    """The layer's sparsity (share of zeros overall and per channel, against the share of images each fires on) and
    its dead channels, in words."""
    layer, count, channels = result["layer"], result["count"], result["channels"]
    dead = list(result["dead_channels"])
    live = ~np.asarray(result["dead"], dtype=bool)
    zero_share = np.asarray(result["zero_share"], dtype=float)
    firing = np.asarray(result["firing_rate"], dtype=float)
    parts = [html.B(_share(result["zero_fraction"])),
             f" of {layer}'s activations are exactly zero over {count:,} images ({channels} channels)."]
    if figures.has_negative_values(result["zero_share"], result["inactive_share"]):
        inactive = float(np.mean(result["inactive_share"]))
        parts.append(f" Before a ReLU values are rarely exactly zero: {_share(inactive)} are ≤ 0 (what a ReLU would "
                     "zero), as the bars show; pick a ReLU layer to see its sparsity.")
    elif live.any():
        parts += [" Per live channel, from ", html.B(_share(zero_share[live].min())), " to ",
                  html.B(_share(zero_share[live].max())), f" of its activations are zero (median "
                  f"{_share(float(np.median(zero_share[live])))}), while it fires somewhere on a median "
                  f"{_share(float(np.median(firing[live])))} of the images: sparse in positions, not in images."]
    parts.append(html.Br())
    if dead:
        listed = ", ".join(str(c) for c in dead[:figures.DEAD_LIST_LIMIT])
        more = f" and {len(dead) - figures.DEAD_LIST_LIMIT} more" if len(dead) > figures.DEAD_LIST_LIMIT else ""
        parts += [html.B(f"{len(dead)} of {channels} channels dead"), f" (never fire): {listed}{more}."]
    else:
        parts.append(f"{figures.NO_DEAD[:1].upper()}{figures.NO_DEAD[1:]}: every channel fires on some image.")
    parts += [html.Br(), "Click a bar (or an ✕) to see the images that channel responds to most."]
    return parts


def stats_render(result: dict, shown: dict) -> tuple:
    figure = figures.channel_stats_figure(result["zero_share"], result["inactive_share"], result["firing_rate"],
                                          result["mean_activation"], result["dead"], result["layer"], result["count"],
                                          selected=shown.get("selected"), order=shown.get("order", "channel"))
    return figure, summary_text(result), result["layer"]


def _first(data):
    """``customdata[0]`` of a clicked point: a list, a typed array (which reaches Dash as {"0": ..., "1": ...}),
    or a scalar customdata itself."""
    if isinstance(data, (list, tuple)):
        return data[0] if data else None
    if isinstance(data, dict):
        return data.get("0")
    return data


def channel_from_click(click, layer: str | None) -> dict | None:
    """{"layer", "channel"} from a click on a chart whose points carry the channel in ``customdata[0]`` (the
    statistics chart, the feature-map grid), or a scalar ``customdata`` (a grid of 1-D units); None for a gap."""
    try:
        data = click["points"][0]["customdata"]
    except (TypeError, KeyError, IndexError):
        return None
    value = _first(data)
    try:
        channel = float(value)
    except (TypeError, ValueError):
        return None
    if not layer or not math.isfinite(channel) or channel < 0:
        return None
    return {"layer": layer, "channel": int(channel)}


def gallery_request(chosen):
    if not isinstance(chosen, dict) or not chosen.get("layer") or chosen.get("channel") is None:
        return None
    if int(chosen["channel"]) < 0:
        return Message(f"Channel {chosen['channel']} is negative: channels are numbered from 0.", "error")
    return Request("channels.top_images", {"layer": chosen["layer"], "channel": int(chosen["channel"]), "k": TOP_K})


def gallery_render(result: dict, shown: dict) -> tuple:
    """The gallery, a line about the channel, and the mark for the scatter (no rings for a dead channel, whose
    "top" images are only the first ones: they all tie at zero)."""
    layer, channel = result["layer"], result["channel"]
    indices = [int(i) for i in result["indices"]]
    figure = figures.top_images_figure(result["images"], result["maps"], result["indices"], result["values"],
                                       layer, channel, result["labels"], result["classes"])
    if result["dead"]:
        note = controls.message(f"{layer} channel {channel} is dead: it fires on no image, so these {len(indices)} "
                                "images are simply the first ones (every image ties at zero).", "warning")
        return figure, note, None
    size = f" (its {result['map_size'][0]}×{result['map_size'][1]} map upsampled)" if result["map_size"] else ""
    note = (f"{layer} channel {channel} fires on {result['firing_rate']:.0%} of the images. The overlay is the "
            f"channel's map{size} where it is positive. Rings in the scatter mark these {len(indices)} images; "
            "click one here to select it.")
    return figure, note, {"label": f"{HIGHLIGHT_PREFIX}{layer} channel {channel}", "indices": indices}


def dead_request():
    return Request("channels.dead_table", {"k": TOP_K})


def dead_render(result: dict, shown: dict) -> tuple:
    return (figures.dead_table(result["rows"], result["count"]),)


def image_from_click(click) -> dict | None:
    """{"index": i} from a click on a gallery image (every pixel carries its image's index)."""
    try:
        return {"index": int(_first(click["points"][0]["customdata"]))}
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def register(app, context: ViewContext) -> None:
    stats_panel.register(app, context, stats_request, stats_render)
    gallery_panel.register(app, context, gallery_request, gallery_render)
    dead_panel.register(app, context, dead_request, dead_render)

    @app.callback(Output(CHANNEL, "data"), Input(STATS, "clickData"), Input(FEATURE_MAPS, "clickData"),
                  State(SHOWN_LAYER, "data"), State(PAGE_LAYER, "value"), prevent_initial_call=True)
    def choose_channel(stats_click, maps_click, shown_layer, explore_layer):
        """A click on a bar names a channel of the chart's layer; one on a feature map, of the toolbar's layer."""
        if ctx.triggered_id == FEATURE_MAPS:
            return channel_from_click(maps_click, explore_layer) or no_update
        return channel_from_click(stats_click, shown_layer) or no_update

    @app.callback(Output(SELECTION, "data", allow_duplicate=True), Input(GALLERY, "clickData"),
                  prevent_initial_call=True)
    def select_gallery_image(click):
        return image_from_click(click) or no_update

    app.clientside_callback(SHARE_MARK, Output(HIGHLIGHT, "data", allow_duplicate=True), Input(MARK, "data"),
                            Input(OPEN_VIEWS, "value"), State(HIGHLIGHT, "data"), prevent_initial_call=True)
    app.clientside_callback(OUTLINE_CHANNEL, Output(STATS, "figure", allow_duplicate=True), Input(CHANNEL, "data"),
                            State(STATS, "figure"), State(SHOWN_LAYER, "data"), prevent_initial_call=True)
    app.clientside_callback(SORT_CHART, Output(STATS, "figure", allow_duplicate=True), Input(SORT, "value"),
                            State(STATS, "figure"), prevent_initial_call=True)
