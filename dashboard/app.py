"""create_app(config, service, meta): the Dash app, the client of the compute process, and every view registered.

The web server runs no model: every panel asks the compute process through ``service`` (see dashboard/service.py)
and draws the arrays it gets back. Requests are served on many threads, so a slow one never stalls another page.
"""
from __future__ import annotations

import logging
import os
import sys
import uuid
from pathlib import Path

import dash
from dash import ALL, Input, Output, State, dcc, html

from components import controls
from dashboard import thumbnails
from dashboard.config import AppConfig
from dashboard.service import ComputeService
from dashboard.views import VIEWS, explore, links
from dashboard.views.context import HIGHLIGHT, OPEN_VIEWS, SELECTION, SESSION, STATUS, URL, Meta, ViewContext

ASSETS = Path(__file__).resolve().parent.parent / "assets"
AUDIT_ENV = "FEATURESCOPE_AUDIT"
SECTION = "view-section"
PRECOMPUTE_MAX_IMAGES = 5_000

HEARTBEAT = "heartbeat"
HEARTBEAT_MS = 20_000  # a visible page says it is open this often; the service forgets one silent for SESSION_TTL_S
# Only a page someone can see beats: a hidden tab's panels are released after the time-to-live, as a closed one's.
VISIBLE_BEAT = """
function(n) {
    return document.visibilityState === 'hidden' ? window.dash_clientside.no_update : n;
}
"""

SHOW_OPEN_VIEWS = """
function(open, ids) {
    return ids.map(id => (open || []).includes(id.name) ? {} : {display: 'none'});
}
"""


def _header(context: ViewContext) -> html.Header:
    meta = context.meta
    skipped = f" ({len(meta.skipped)} unreadable files skipped)" if meta.skipped else ""
    return html.Header([
        html.Div([html.H1("Featurescope"), html.Span("what a convolutional network has learned", className="tagline")]),
        html.Div([
            html.Span(f"model: {meta.model}", className="pill"),
            # The data set's name; its description (how the images were made) and any skipped files on hover.
            html.Span(f"data: {meta.data.split(': ', 1)[0]}{skipped}", className="pill",
                      title="\n".join([meta.data, *meta.skipped[:50]])),
            html.Span(f"device: {meta.device}", className="pill"),
            html.Span(id=STATUS, className="pill pill-accent"),
            *[view.header(context) for view in VIEWS if hasattr(view, "header")],  # e.g. the theme switches
        ], className="header-pills"),
    ])


def _view_switcher() -> html.Div:
    openable = [view for view in VIEWS if view.OPENABLE]
    return controls.labelled("Views", dcc.Checklist(
        id=OPEN_VIEWS, inline=True,
        options=[{"label": f" {getattr(view, 'MENU', view.TITLE.split(':')[0])}", "value": view.NAME,
                  "title": view.TITLE} for view in openable],
        value=[view.NAME for view in openable if getattr(view, "OPEN_AT_START", False)],
    ), "open a view to compute it; closed views do no work", class_name="control-inline views-switcher")


def _page(context: ViewContext):
    def layout() -> html.Div:
        sections = []
        for view in VIEWS:
            parts = view.layout(context)
            parts = parts if isinstance(parts, list) else [parts]
            if view.OPENABLE:
                parts = [html.Div(parts, id={"type": SECTION, "name": view.NAME}, className="view-section")]
            sections += parts
        return html.Div([
            dcc.Location(id=URL, refresh=False),
            dcc.Store(id=SESSION, data=uuid.uuid4().hex),  # one per page load: the service's holder of its jobs
            dcc.Interval(id=HEARTBEAT, interval=HEARTBEAT_MS), dcc.Store(id=f"{HEARTBEAT}-visible"),
            dcc.Store(id=SELECTION, data=None),
            dcc.Store(id=HIGHLIGHT, data=None),
            _header(context),
            # Two rows on a 1280 screen: the scatter's controls (and its images), then the views and the link.
            html.Div([*VIEWS[0].toolbar(context).children,
                      *[view.toolbar(context) for view in VIEWS[1:] if hasattr(view, "toolbar")],  # images on the scatter
                      _view_switcher(), links.bar()],
                     className="toolbar page-toolbar"),
            html.Main(sections, className="grid"),
            html.Footer("Featurescope · figures export as PNG or SVG at any scale, numbers as CSV or NPZ, the view as an offline HTML report (Export card) · the URL keeps the current view"),
        ], className="page")

    return layout


_modules_built: dict[str, int] = {}


def start_audit() -> None:
    """With $FEATURESCOPE_AUDIT set, serve /_featurescope/audit (call it first): the tests' proof that the web server
    never imports torch, so it never loads a model or touches CUDA."""
    if os.environ.get(AUDIT_ENV):
        _modules_built["count"] = 0


def _audit_route(app: dash.Dash, service: ComputeService) -> None:
    @app.server.route("/_featurescope/audit")
    def audit():
        facts = list(service.worker_facts().values())
        torch = sys.modules.get("torch")  # never imported here, unless something broke the rule
        return {"torch_imported": torch is not None, "modules_built": 0 if torch is None else -1,
                "cuda_initialized": bool(torch is not None and torch.cuda.is_initialized()),
                "pid": os.getpid(), "workers": [worker["pid"] for worker in facts], "worker_facts": facts,
                "service": service.census()}


def create_app(config: AppConfig, service: ComputeService, meta: Meta) -> dash.Dash:
    """The app for ``config``, drawing from ``service``; ``meta`` is the compute process's ``describe`` of the model."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = dash.Dash(__name__, title="Featurescope", assets_folder=str(ASSETS), update_title=None,
                    suppress_callback_exceptions=True)  # attribution graphs are created by callbacks
    if _modules_built:
        _audit_route(app, service)
    context = ViewContext(config, service, meta, VIEWS)
    app.layout = links.restoring(_page(context), context)  # a link opens the view it names
    for view in VIEWS:
        view.register(app, context)
    # Every layer's default embedding, lowest priority, so later layer switches are instant. Not for a large data
    # set: each layer would be a pass over every image (a decode of every file for a folder), hours of work
    # nobody asked for; there the layers the user visits are computed and cached as they come.
    if config.precompute and meta.count <= PRECOMPUTE_MAX_IMAGES:
        service.precompute([(request.job, request.params) for request in
                            explore.background_requests(meta.layers, meta.default_layer, config.embedding)])
    links.register(app, context, _page(context))  # the URL follows the view; back/forward; copy link
    thumbnails.register(app, context)  # /_featurescope/thumbnail/...: small PNGs of images and uploads
    app.clientside_callback(VISIBLE_BEAT, Output(f"{HEARTBEAT}-visible", "data"), Input(HEARTBEAT, "n_intervals"))

    @app.callback(Input(f"{HEARTBEAT}-visible", "data"), State(SESSION, "data"))
    def heartbeat(_beat, session):
        service.touch(session)

    app.clientside_callback(SHOW_OPEN_VIEWS, Output({"type": SECTION, "name": ALL}, "style"),
                            Input(OPEN_VIEWS, "value"), State({"type": SECTION, "name": ALL}, "id"))
    return app
