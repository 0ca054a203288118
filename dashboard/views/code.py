"""Show code: for each panel shown now, the few lines of the Python API that reproduce its numbers in a notebook.

The code is filled in from the panel's current job (its parameters are the view's current settings) by
``dashboard.snippets``; it follows the settings while shown, and each block has a copy button.
"""
from __future__ import annotations

from dash import Input, Output, dcc, html

from components import controls
from dashboard import snippets
from dashboard.views import panel_results
from dashboard.views.context import OPEN_VIEWS, ViewContext

NAME = "code"
TITLE = "Code for this view"
OPENABLE = False

SHOW = "code-show"
BLOCKS = "code-blocks"
SNIPPET = "code-snippet"  # pattern id {"type": SNIPPET, "index": panel name}


def layout(_context: ViewContext) -> html.Section:
    return controls.card(
        TITLE,
        html.Div([
            html.Button("Show code", id=SHOW, n_clicks=0, className="button",
                        title="the Python that computes what each open panel shows, with its current settings"),
            html.Span("Runs in a notebook with this project's venv: compute/ needs no Dash and no server.",
                      className="hint"),
        ], className="code-toolbar"),
        html.Div(id=BLOCKS, className="code-blocks"),
        class_name="code view-section",
    )


def code_blocks(context: ViewContext, stores: list, open_views: list | None) -> list:
    """One titled block of code per panel result shown now (its job and settings), each with a copy button."""
    service, blocks = context.service, []
    cache_dir = context.config.cache_dir
    for info, key in panel_results.current_jobs(context.views, stores, open_views):
        request = panel_results.request_of(service, key)
        if request is None:
            continue
        job, params = request
        status = service.status(key)
        result = status.result if status.state == "done" else None
        text = snippets.snippet(info.view, job, params, service.source, result, cache_dir)
        code_id = {"type": SNIPPET, "index": info.panel}
        blocks.append(html.Details([
            html.Summary([f"{info.title} ", html.Code(job)]),
            html.Div([dcc.Clipboard(target_id=code_id, title="copy", className="code-copy"),
                      html.Pre(html.Code(text), id=code_id, className="code-snippet")], className="code-block"),
        ], open=True, className="code-details"))
    if not blocks:
        return [controls.message("No panel has computed anything yet: open a view or click a point first.", "info")]
    return blocks


def register(app, context: ViewContext) -> None:
    stores = panel_results.job_states(context.views)

    @app.callback(Output(BLOCKS, "children"), Output(SHOW, "children"), Input(SHOW, "n_clicks"),
                  Input(OPEN_VIEWS, "value"), *[Input(state.component_id, "data") for state in stores])
    def show(clicks, open_views, *jobs):
        if not clicks or clicks % 2 == 0:
            return [], "Show code"
        return code_blocks(context, list(jobs), open_views), "Hide code"

