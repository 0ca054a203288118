"""The images of a box or lasso selection in the scatter: a gallery, a class histogram, and the list of files.

The scatter's ``selectedData`` carries each selected point's ``customdata`` (its sample index); the compute process
answers with their labels and file paths (job ``images.selection``: the server holds no data set); the pictures come
from the thumbnail route. The scatter opens in pan mode, so this card has the switch to box and lasso selection.
"""
from __future__ import annotations

from dash import Input, Output, State, dcc, html, no_update

from components import controls, gallery, scatter, theme
from dashboard import thumbnails
from dashboard.thumbnails import thumbnail_url
from dashboard.views.context import SCATTER, ViewContext
from dashboard.views.links import Entry
from dashboard.views.panel import BackgroundPanel, Message, Request

NAME = "gallery"
TITLE = "Selection gallery: box or lasso a group of points"
MENU = "Gallery"  # its name in the toolbar's Views checklist
OPENABLE = True
OPEN_AT_START = True

DRAG = "gallery-drag"
URL_STATE = [Entry("gallery.drag", DRAG)]  # what a link keeps of this view
SUMMARY = "gallery-summary"
GRID = "gallery-grid"
HISTOGRAM = "gallery-histogram"
EXPORT = "gallery-export"
DOWNLOAD = "gallery-download"
DRAG_SINK = "gallery-drag-sink"
SHOWN = 120  # thumbnails drawn at most; the histogram and the export cover the whole selection
TILE_SIZE = 64
TILE_SOURCE_SIZE = 128  # pixels fetched per tile: sharp on high-density screens
HISTOGRAM_HEIGHT = 260
EXPORT_TIMEOUT_S = 60.0

# Sets how a drag in the scatter acts (pan, box select, lasso), on the figure in the browser: no figure is resent.
SET_DRAG_MODE = """
function(mode) {
    const graph = document.querySelector('#""" + SCATTER + """ .js-plotly-plot');
    if (graph && window.Plotly && mode) { window.Plotly.relayout(graph, {dragmode: mode}); }
    return mode || '';
}
"""

panel = BackgroundPanel(
    "gallery",
    outputs=[Output(SUMMARY, "children"), Output(GRID, "children"), Output(HISTOGRAM, "figure"),
             Output(EXPORT, "disabled")],
    inputs=[Input(SCATTER, "selectedData")],
    view=NAME,
)


def layout(context: ViewContext) -> html.Section:
    return controls.card(
        TITLE,
        html.Div([
            controls.labelled("Drag in the scatter to", dcc.RadioItems(
                id=DRAG, value="pan", inline=True,
                options=[{"label": " pan", "value": "pan"}, {"label": " box select", "value": "select"},
                         {"label": " lasso select", "value": "lasso"}, {"label": " zoom", "value": "zoom"}]),
                "box or lasso a group of points to see their images; double-click the scatter to clear"),
            html.Button("export the list of files", id=EXPORT, n_clicks=0, disabled=True, className="button"),
            dcc.Download(id=DOWNLOAD),
            html.Span(id=DRAG_SINK, hidden=True),
        ], className="toolbar"),
        panel.status(),
        html.Div(html.P("Choose box or lasso select above, then drag around points in the scatter.", className="hint"),
                 id=SUMMARY),
        html.Div([
            html.Div(id=GRID, className="gallery-selection"),
            dcc.Graph(id=HISTOGRAM, figure=scatter.empty_figure("no selection", HISTOGRAM_HEIGHT),
                      config=theme.graph_config("featurescope-selection-classes"), className="gallery-histogram"),
        ], className="gallery-body"),
        class_name="gallery",
    )


def selected_indices(selected) -> list[int]:
    """The sample indices of a scatter selection (``selectedData``), each once, in index order. Points without a
    sample index (marks drawn by other views) are left out."""
    found = set()
    for point in (selected or {}).get("points") or []:
        data = point.get("customdata") if isinstance(point, dict) else None
        try:
            found.add(int(data[0] if isinstance(data, (list, tuple)) else data))
        except (TypeError, ValueError, IndexError):
            continue
    return sorted(index for index in found if index >= 0)


def gallery_request(selected):
    if selected is None:
        return None
    indices = selected_indices(selected)
    if not indices:
        return Message("No images in the selection: drag around some points of the scatter.", "info")
    return Request("images.selection", {"indices": indices}, {"count": len(indices)})


def gallery_render(context: ViewContext, prefetch=None):
    """``prefetch(indices, size)``: warms the thumbnail store before the page asks for the pictures."""
    classes = context.meta.classes

    def render(result: dict, shown: dict) -> tuple:
        indices, labels = result["indices"], result["labels"]
        count = len(indices)
        if prefetch is not None:
            prefetch(indices[:SHOWN].tolist(), TILE_SOURCE_SIZE)
        tiles = [gallery.Tile(thumbnail_url(int(i), TILE_SOURCE_SIZE), classes[int(c)],
                              f"#{int(i)} · class {classes[int(c)]}")
                 for i, c in zip(indices[:SHOWN], labels[:SHOWN])]
        summary = html.P([html.B(f"{count} image{'s' * (count != 1)} selected"),
                          f" · showing the first {SHOWN}" if count > SHOWN else ""], className="gallery-count")
        histogram = gallery.class_histogram(labels, classes, f"Classes of the {count} selected images",
                                            HISTOGRAM_HEIGHT)
        return summary, gallery.thumbnail_grid(tiles, TILE_SIZE), histogram, False

    return render


def export_request(indices: list[int]) -> dict:
    return {"indices": indices}


def register(app, context: ViewContext) -> None:
    panel.register(app, context, gallery_request, gallery_render(context, thumbnails.prefetcher(app)))
    app.clientside_callback(SET_DRAG_MODE, Output(DRAG_SINK, "children"), Input(DRAG, "value"))

    @app.callback(Output(DOWNLOAD, "data"), Input(EXPORT, "n_clicks"), State(SCATTER, "selectedData"),
                  prevent_initial_call=True)
    def export(clicks, selected):
        indices = selected_indices(selected)
        if not clicks or not indices:
            return no_update
        # The same request as the gallery's: the service answers from the result it holds.
        result = context.service.run("images.selection", export_request(indices), timeout=EXPORT_TIMEOUT_S)
        return dcc.send_string(gallery.paths_text(result["names"]), "featurescope-selection.txt")
