"""Export: every figure as PNG or SVG at a chosen scale, each panel's numbers as CSV or NPZ, and a one-file HTML
report of the current view that opens offline.

Figures are drawn by the browser's Plotly (``Plotly.downloadImage``): the chosen format and scale apply to every
graph's own camera button and to "download every figure". Numbers come from the results the server already holds
for the panels' jobs (``panel_results``; no job re-runs). The report gathers the page's visible figures and images
in the browser and builds the file here (``components.report``), with plotly.js inlined.
"""
from __future__ import annotations

import base64
import re
import time

from dash import Input, Output, State, dcc, html, no_update
from flask import Response, abort

from components import controls, report
from dashboard.views import panel_results
from dashboard.views.context import OPEN_VIEWS, ViewContext
from dashboard.views.links import Entry

NAME = "export"
TITLE = "Export"
OPENABLE = False

FORMAT = "export-format"
SCALE = "export-scale"
URL_STATE = [Entry("export.format", FORMAT), Entry("export.scale", SCALE)]  # what a link keeps of this view
SETTINGS = "export-settings"
ALL_FIGURES = "export-all-figures"
NUMBERS = "export-numbers"
REPORT = "export-report"
REPORT_PAYLOAD = "export-report-payload"
REPORT_DOWNLOAD = "export-report-download"
REPORT_MESSAGE = "export-report-message"
ROUTE = "/_featurescope/export"
THEME_APPLIED = "theme-applied"  # dashboard/views/theme_switch.py's store of the theme in use

# Every graph's camera button reads its options when clicked: a listener that runs first (capture phase) puts the
# chosen format and scale there, so graphs drawn later and redrawn ones follow too.
# An export copies the graph's config when it starts: WebGL drawn at the screen's pixel ratio (1 where the browser
# has no GPU, for fast redraws) is raised to the export's scale for that one copy, so exported points stay sharp.
SHARP_EXPORT = """
function sharpExport(gd, scale) {
    const ratio = gd._context.plotGlPixelRatio;
    gd._context.plotGlPixelRatio = Math.min(4, Math.max(ratio || 2, 2, Math.ceil(Number(scale) || 2)));
    setTimeout(() => { gd._context.plotGlPixelRatio = ratio; }, 0);
}
"""

USE_SETTINGS = """
function(format, scale) {
    %s
    window.featurescopeExport = {format: format || 'png', scale: Number(scale) || 2};
    if (!window.featurescopeExportListener) {
        window.featurescopeExportListener = true;
        document.addEventListener('click', event => {
            const button = event.target.closest && event.target.closest('.modebar-btn[data-title^="Download plot"]');
            const gd = button && button.closest('.js-plotly-plot');
            if (!gd || !gd._context) { return; }
            const base = (gd._context.toImageButtonOptions || {}).filename || gd.parentElement.id || 'featurescope';
            gd._context.toImageButtonOptions = Object.assign({}, gd._context.toImageButtonOptions,
                {format: window.featurescopeExport.format, scale: window.featurescopeExport.scale, filename: base});
            sharpExport(gd, window.featurescopeExport.scale);
        }, true);
    }
    return window.featurescopeExport;
}
""" % SHARP_EXPORT

DOWNLOAD_ALL = """
function(clicks, settings) {
    if (!clicks) { return window.dash_clientside.no_update; }
    %s
    const shown = [...document.querySelectorAll('.js-plotly-plot')].filter(gd => gd.offsetParent !== null);
    shown.forEach((gd, k) => {
        const name = ((gd._context && gd._context.toImageButtonOptions || {}).filename || 'figure') + '-' + (k + 1);
        sharpExport(gd, settings.scale);
        window.Plotly.downloadImage(gd, {format: settings.format, scale: settings.scale, filename: name});
    });
    return shown.length + ' figure' + (shown.length === 1 ? '' : 's') + ' as ' + settings.format.toUpperCase();
}
""" % SHARP_EXPORT

# The visible cards, in page order: title, hint text, figures (as Plotly holds them, theme included) and images.
# Typed arrays become plain arrays (JSON); images the page loads by URL become data URIs (the file must stand alone).
GATHER_REPORT = """
async function(clicks) {
    if (!clicks) { return window.dash_clientside.no_update; }
    const plain = (key, value) => ArrayBuffer.isView(value) ? Array.from(value) : value;
    const figure = gd => JSON.parse(JSON.stringify({data: gd.data, layout: gd.layout}, plain));
    async function dataUri(src) {
        if (!src || src.startsWith('data:')) { return src; }
        const blob = await (await fetch(src)).blob();
        return await new Promise(done => { const r = new FileReader(); r.onload = () => done(r.result);
                                           r.readAsDataURL(blob); });
    }
    const sections = [];
    for (const card of document.querySelectorAll('main .card')) {
        if (card.offsetParent === null) { continue; }
        // Placeholders ("click a point") have no traces: only figures with data go in.
        const graphs = [...card.querySelectorAll('.js-plotly-plot')]
            .filter(gd => gd.data && gd.data.length && gd.offsetParent !== null);
        const figures = graphs.map(figure);
        for (const f of figures) {
            for (const image of (f.layout.images || [])) { image.source = await dataUri(image.source); }
        }
        const images = [];
        for (const img of card.querySelectorAll('img')) {
            if (img.offsetParent !== null && !img.closest('.js-plotly-plot')) { images.push(await dataUri(img.src)); }
        }
        if (!figures.length && !images.length) { continue; }
        const title = card.querySelector('.card-title');
        const texts = [...card.querySelectorAll('.hint, .detail-title, .sparsity')].map(e => e.innerText.trim());
        sections.push({title: title ? title.innerText : '', texts: texts, figures: figures, images: images});
    }
    return {sections: sections, url: window.location.href, asked: Date.now()};
}
"""


def layout(_context: ViewContext) -> html.Section:
    return controls.card(
        TITLE,
        html.Div([
            controls.labelled("Figure format", dcc.RadioItems(
                id=FORMAT, value="png", inline=True,
                options=[{"label": "PNG", "value": "png"}, {"label": "SVG", "value": "svg"}])),
            controls.labelled("Scale", dcc.RadioItems(
                id=SCALE, value=2, inline=True, options=[{"label": f"{k}×", "value": k} for k in (1, 2, 3, 4)]),
                "pixels per CSS pixel of a PNG: 2× for slides, 4× for print"),
            html.Button("Download every figure", id=ALL_FIGURES, n_clicks=0, className="button",
                        title="each figure on the page, in the format and scale above; each plot's camera button "
                              "uses them too"),
            html.Button("HTML report of this view", id=REPORT, n_clicks=0, className="button",
                        title="one file with the figures and images shown now; opens without a network"),
            html.Span(id=REPORT_MESSAGE, className="hint"),
        ], className="toolbar"),
        html.Div(id=NUMBERS, className="export-numbers"),
        dcc.Store(id=SETTINGS),
        dcc.Store(id=REPORT_PAYLOAD),
        dcc.Download(id=REPORT_DOWNLOAD),
        class_name="export view-section",
    )


def number_links(views, stores: list, open_views: list | None) -> list:
    """A line per panel result shown now: its view, its job, and links to its numbers as CSV and NPZ."""
    jobs = panel_results.current_jobs(views, stores, open_views)
    if not jobs:
        return [html.P("The numbers of each panel can be downloaded here once it has computed them.", className="hint")]
    rows = []
    for info, key in jobs:
        job = key.rsplit("-", 1)[0]
        rows.append(html.Li([
            html.Span(f"{info.title} ", className="export-view"), html.Code(job), " ",
            html.A("CSV", href=f"{ROUTE}/{key}.csv", download=f"{job}.csv"), " · ",
            html.A("NPZ", href=f"{ROUTE}/{key}.npz", download=f"{job}.npz"),
        ]))
    return [html.Div("Numbers of the panels shown now:", className="hint"), html.Ul(rows, className="export-list")]


def _inline_route_images(sections: list, server) -> list:
    """Images the page loaded from this server's routes, as data URIs (the browser sends most already inlined)."""
    client = server.test_client()
    for section in sections:
        for k, src in enumerate(section.get("images", [])):
            if isinstance(src, str) and src.startswith("/"):
                answer = client.get(src)
                kind = answer.headers.get("Content-Type", "image/png")
                section["images"][k] = f"data:{kind};base64,{base64.b64encode(answer.data).decode()}"
    return sections


def register(app, context: ViewContext) -> None:
    service = context.service

    app.clientside_callback(USE_SETTINGS, Output(SETTINGS, "data"), Input(FORMAT, "value"), Input(SCALE, "value"))
    app.clientside_callback(DOWNLOAD_ALL, Output(REPORT_MESSAGE, "children"), Input(ALL_FIGURES, "n_clicks"),
                            State(SETTINGS, "data"), prevent_initial_call=True)
    app.clientside_callback(GATHER_REPORT, Output(REPORT_PAYLOAD, "data"), Input(REPORT, "n_clicks"),
                            prevent_initial_call=True)

    stores = panel_results.job_states(context.views)

    @app.callback(Output(NUMBERS, "children"), Input(OPEN_VIEWS, "value"),
                  *[Input(state.component_id, "data") for state in stores])
    def list_numbers(open_views, *jobs):
        return number_links(context.views, list(jobs), open_views)

    @app.callback(Output(REPORT_DOWNLOAD, "data"), Output(REPORT_MESSAGE, "children", allow_duplicate=True),
                  Input(REPORT_PAYLOAD, "data"), State(THEME_APPLIED, "data"), prevent_initial_call=True)
    def send_report(payload, theme_name):
        if not payload or not payload.get("sections"):
            return no_update, controls.message("Nothing to export yet: no figure is shown.", "info")
        from plotly.offline import get_plotlyjs

        meta = context.meta
        sections = _inline_route_images(payload["sections"], app.server)
        notes = [f"model {meta.model} · data {meta.data} · {time.strftime('%Y-%m-%d %H:%M')}",
                 f"view: {payload.get('url', '')}"]
        text = report.html_report("Featurescope report", sections, get_plotlyjs(), theme_name or "light", notes)
        figures = sum(len(section.get("figures", [])) for section in sections)
        return (dict(content=text, filename="featurescope-report.html", type="text/html"),
                f"report: {figures} figures, {len(text) / 1e6:.1f} MB")

    @app.server.route(f"{ROUTE}/<key>.<kind>")
    def export_numbers(key: str, kind: str):
        if kind not in ("csv", "npz") or not re.fullmatch(r"[a-z_.]+-[0-9a-f]{24}", key):
            abort(404)
        result = panel_results.result_of(service, key)
        if result is None:
            return Response("This result is no longer held by the server; open its view again and export.\n",
                            status=404, mimetype="text/plain")
        job = key.rsplit("-", 1)[0]
        if kind == "csv":
            return Response(report.csv_text(result), mimetype="text/csv",
                            headers={"Content-Disposition": f"attachment; filename={job}.csv"})
        return Response(report.npz_bytes(result), mimetype="application/octet-stream",
                        headers={"Content-Disposition": f"attachment; filename={job}.npz"})
