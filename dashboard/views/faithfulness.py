"""Faithfulness: does each attribution map point at what the model uses? Deletion, insertion and ROAD curves of the
maps the attribution view shows, the best and worst map for the image in words, and a ranking over the test split.

Three background panels on the jobs of ``compute.jobs.faithfulness``. The curves follow the selection, the attribution
view's methods, parameters and target, and this view's settings (built from ``compute.specs.faithfulness.SETTINGS``).
Hovering (or clicking) a point of a curve asks for the image at that step. The ranking runs on its button, reports
its tables as it goes, and can be cancelled; its numbers download as CSV.
"""
from __future__ import annotations

from dash import Input, Output, State, dcc, html, no_update

from components import controls, scatter, theme
from components import faithfulness as figures
from compute.specs import attribution
from compute.specs.faithfulness import (FLOOR_ROW, KINDS, PER_IMAGE_SETTINGS, RANKING_RANDOM_ORDERS,
                                        RANKING_SETTINGS, SETTINGS)
from compute.specs.params import Method
from dashboard.views import attribution as attribution_view
from dashboard.views import panel_results
from dashboard.views.context import SELECTION, ViewContext, sample_params, selected_index, selection_note
from dashboard.views.links import Entry, Number, Pressed
from dashboard.views.method_panel import MethodPanel
from dashboard.views.panel import BackgroundPanel, Message, Request

NAME = "faithfulness"
TITLE = "Faithfulness: does each map point at what the model uses"
OPENABLE = True
OPEN_AT_START = False

CURVES = "faithfulness-curves"
STEP = "faithfulness-step-image"
TABLE = "faithfulness-table"
VERDICT = "faithfulness-verdict"
NOTES = "faithfulness-notes"
RANK_RUN = "faithfulness-rank-run"
RANK_FIGURE = "faithfulness-rank-figure"
RANK_TABLE = "faithfulness-rank-table"
RANK_VERDICT = "faithfulness-rank-verdict"
RANK_CSV = "faithfulness-rank-csv"
RANK_DOWNLOAD = "faithfulness-rank-download"
SETTINGS_METHOD = "settings"
RANKING_ROAD = True  # the ranking always has ROAD's curves: the issue ranks by them
STEP_HEIGHT = 300

settings = MethodPanel("faithfulness-settings", {SETTINGS_METHOD: Method(None, "settings", SETTINGS)},
                       (SETTINGS_METHOD,))
# What a link keeps: every setting (``faithfulness.steps=10``) and whether the ranking was asked for.
URL_STATE = [Entry(f"faithfulness.{spec.name}", settings.control_id(SETTINGS_METHOD, spec.name),
                   kind=Number(spec.low, spec.high, optional=True) if spec.kind in ("int", "float") else None)
             for spec in SETTINGS] + [Entry("faithfulness.rank", RANK_RUN, "n_clicks", Pressed())]

panel = BackgroundPanel(
    "faithfulness",
    outputs=[Output(CURVES, "figure"), Output(TABLE, "children"), Output(VERDICT, "children"),
             Output(NOTES, "children")],
    inputs=[Input(SELECTION, "data"), *attribution_view.methods.inputs(), Input(attribution_view.TARGET, "value"),
            Input(attribution_view.USE_PREDICTED, "value"), Input(settings.any_control, "value")],
    states=[*attribution_view.methods.states(), State(settings.any_control, "id")],
    view=NAME,
    idle_text="Click a point in the scatter: the maps of the attribution view are then put to the test.",
)
step_panel = BackgroundPanel(
    "faithfulness-step",
    outputs=[Output(STEP, "figure")],
    inputs=[Input(CURVES, "hoverData"), Input(CURVES, "clickData")],
    states=[State(panel.job_id, "data")],
    view=NAME,
)
ranking_panel = BackgroundPanel(
    "faithfulness-ranking",
    outputs=[Output(RANK_FIGURE, "figure"), Output(RANK_TABLE, "children"), Output(RANK_VERDICT, "children"),
             Output(RANK_CSV, "disabled")],
    inputs=[Input(RANK_RUN, "n_clicks")],
    states=[State(attribution_view.methods.any_control, "value"), *attribution_view.methods.states(),
            State(settings.any_control, "value"), State(settings.any_control, "id")],
    view=NAME,
)


def kinds_of(keys) -> list[tuple[str, str, str, str]]:
    """(key, title, axis, better) of curve kinds, for the figure builders."""
    return [(key, KINDS[key]["label"], KINDS[key]["axis"], KINDS[key]["better"]) for key in keys]


def method_labels(names) -> dict[str, str]:
    return {name: attribution.METHODS[name].label for name in names}


def method_colours() -> dict[str, str]:
    """One colour per attribution method, by its place in the table: the same whatever else is shown."""
    return {name: figures.method_colour(k) for k, name in enumerate(attribution.METHODS)}


def layout(context: ViewContext) -> html.Section:
    shape = tuple(context.meta.image_shape)
    start = settings.starting_values(SETTINGS_METHOD, shape)
    return controls.card(
        TITLE,
        html.P("Delete the pixels a map calls most important and watch the class probability fall (deletion), put them "
               "back into a blurred copy and watch it rise (insertion). ROAD (Rong et al. 2022) fills removed pixels "
               "from their neighbours instead, so the image stays like the data. A map that points at what the model "
               "uses beats a random order. The maps are those of the attribution view: its methods, parameters and "
               "target.", className="hint"),
        html.Div([controls.param_control(spec, settings.control_id(SETTINGS_METHOD, spec.name), None,
                                         start[spec.name]) for spec in SETTINGS], className="toolbar"),
        panel.status(),
        html.Div(id=NOTES),
        html.Div([
            dcc.Graph(id=CURVES, figure=scatter.empty_figure("click a point in the scatter", figures.CURVE_HEIGHT),
                      config=theme.graph_config("featurescope-faithfulness"), className="faithfulness-curves"),
            html.Div([step_panel.status(),
                      dcc.Graph(id=STEP, figure=scatter.empty_figure("hover a point of a curve", STEP_HEIGHT),
                                config=theme.graph_config("featurescope-faithfulness-step"))],
                     className="faithfulness-step"),
        ], className="faithfulness-figures"),
        html.Div(id=VERDICT, className="faithfulness-verdict"),
        html.Div(id=TABLE),
        html.H3("Which method is most faithful over the test split", className="faithfulness-heading"),
        html.P("Every method (with the attribution view's parameters) on a sample of the test images, evenly spaced "
               "through the split, each image's maps for its predicted class: the mean area of each curve with a 95 % "
               "bootstrap interval, how often each method comes first when the images are drawn again, ROAD, and the "
               "sanity check's rank correlation with the untrained model beside them; one random order per image is "
               "the floor. 200 images by default: on the built-in model the intervals of the means are then ±0.01 to "
               "±0.04 wide. Cached per image, so a cancelled ranking resumes where it stopped.", className="hint"),
        html.Div([html.Button("Rank the methods over the test split", id=RANK_RUN, n_clicks=0, className="button"),
                  html.Button("Download the ranking as CSV", id=RANK_CSV, n_clicks=0, className="button",
                              disabled=True),
                  dcc.Download(id=RANK_DOWNLOAD)], className="toolbar"),
        ranking_panel.status(),
        html.Div(id=RANK_VERDICT, className="faithfulness-verdict"),
        dcc.Graph(id=RANK_FIGURE, figure=scatter.empty_figure("press the button", figures.CURVE_HEIGHT),
                  config=theme.graph_config("featurescope-faithfulness-ranking")),
        html.Div(id=RANK_TABLE),
        class_name="faithfulness",
    )


def read_settings(values, ids, names, image_shape) -> tuple[dict, list[str]]:
    """This view's settings ``names`` from its controls, coerced by their specs, and a note per clamped value (the
    blur, typed in percent of the side, goes to the job as a share)."""
    read, notes = settings.parameters(SETTINGS_METHOD, values, ids, image_shape)
    chosen = {name: read[name] for name in names}
    if "blur" in chosen:
        chosen["blur"] = chosen["blur"] / 100
    return chosen, notes


def method_parameters(names, values, ids, image_shape) -> tuple[dict, list[str]]:
    """The attribution view's parameters of each method of ``names`` (in the table's order), and clamp notes."""
    params, notes = {}, []
    for name in [name for name in attribution.METHODS if name in names]:
        params[name], clamped = attribution_view.methods.parameters(name, values, ids, image_shape)
        notes += clamped
    return params, notes


def curves_request(context: ViewContext):
    image_shape = tuple(context.meta.image_shape)

    def request(selection, chosen, values, target, use_predicted, setting_values, control_ids, setting_ids):
        index = selected_index(selection)
        if index is None:
            return None
        if not chosen:
            return Message("Pick at least one method in the attribution view.")
        params, notes = method_parameters(chosen, values, control_ids, image_shape)
        chosen_settings, clamped = read_settings(setting_values, setting_ids, PER_IMAGE_SETTINGS, image_shape)
        job = {**sample_params(selection), "methods": params, "target": target, "use_predicted": bool(use_predicted),
               **chosen_settings}
        return Request("faithfulness.curves", job, {"index": index, "note": selection_note(selection),
                                                     "notes": notes + clamped, "params": job})

    return request


def class_namer(context: ViewContext):
    names = context.meta.model_classes or context.meta.classes
    return lambda target: names[target] if 0 <= target < len(names) else f"output {target}"


def curves_render(context: ViewContext):
    class_name = class_namer(context)

    def render(result: dict, shown: dict) -> tuple:
        target = class_name(int(result["target"]))
        methods = list(result["methods"])
        labels = method_labels(methods)
        kinds = kinds_of(result["kinds"])
        title = f"class {target} ({result['target_how']}) · image #{shown['index']}{shown.get('note', '')}"
        figure = figures.curves_figure(result["fractions"], result["curves"], result["random"], kinds, labels,
                                       methods, target, title, int(result["settings"]["random_count"]),
                                       method_colours(), FLOOR_ROW)
        table = figures.auc_table(result["auc"], result["random_auc"], kinds, labels, methods)
        verdict = html.P(figures.verdict(result["auc"], result["random_auc"], labels))
        return figure, table, verdict, [controls.message(note, "warning") for note in shown.get("notes", [])]

    return render


STEP_PARAMS = ("index", "variant", "epoch", "methods", "target", "use_predicted", "steps", "fill", "blur",
               "random_orders")


def step_request(hover, click, curves_job):
    data = hover or click
    points = (data or {}).get("points") or []
    if not points or not isinstance(curves_job, dict):
        return None
    custom = points[0].get("customdata")
    params = (curves_job.get("context") or {}).get("params")
    if not isinstance(custom, (list, tuple)) or len(custom) != 3 or not params:
        return None
    row, kind, point = custom
    return Request("faithfulness.step", {**{key: params[key] for key in STEP_PARAMS if key in params},
                                         "row": str(row), "kind": str(kind), "point": int(point)})


def step_render(context: ViewContext):
    class_name = class_namer(context)

    def render(result: dict, shown: dict) -> tuple:
        row = result["row"]
        name = attribution.METHODS[row].label if row in attribution.METHODS else "random order 1"
        verb = {"deletion": "removed", "insertion": "inserted"}.get(result["kind"], "imputed")
        title = (f"{name} · {KINDS[result['kind']]['label']} · {result['fraction']:.0%} {verb} · "
                 f"p({class_name(int(result['target']))}) = {result['probability']:.3f}")
        return (figures.step_figure(result["image"], title, STEP_HEIGHT),)

    return render


def ranking_request(context: ViewContext):
    image_shape = tuple(context.meta.image_shape)

    def request(clicks, values, control_ids, setting_values, setting_ids):
        if not clicks:
            return None
        params, notes = method_parameters(list(attribution.METHODS), values, control_ids, image_shape)
        chosen, clamped = read_settings(setting_values, setting_ids, RANKING_SETTINGS, image_shape)
        return Request("faithfulness.ranking", {"methods": params, **chosen, "random_orders": RANKING_RANDOM_ORDERS,
                                                "road": RANKING_ROAD},
                       {"notes": notes + clamped})

    return request


def ranking_outputs(result: dict, partial: bool = False) -> tuple:
    """The ranking's figure, table, verdict and the CSV button's state (a partial ranking cannot be downloaded)."""
    methods = list(result["methods"])
    labels = method_labels(methods)
    kinds = kinds_of([key for key in KINDS if key in result["summary"]])
    so_far = f" so far ({result['count']:,} images; more on the way)" if partial else ""
    figure = figures.ranking_figure(result["summary"], list(result["scores"]), kinds, labels, methods,
                                    int(result["count"]),
                                    f"Faithfulness over {int(result['count']):,} test images{so_far}")
    verdict = html.P(figures.ranking_verdict(result, kinds, labels) + (" (Partial: still ranking.)" if partial else ""))
    return figure, figures.ranking_table(result, kinds, labels), verdict, partial


def ranking_render(result: dict, shown: dict) -> tuple:
    return ranking_outputs(result)


def ranking_render_partial(partial: dict, shown: dict) -> tuple:
    return ranking_outputs(partial, partial=True)


def ranking_csv(result: dict) -> str:
    methods = list(result["methods"])
    return figures.ranking_csv(result, kinds_of([key for key in KINDS if key in result["summary"]]),
                               method_labels(methods))


def register(app, context: ViewContext) -> None:
    panel.register(app, context, curves_request(context), curves_render(context))
    step_panel.register(app, context, step_request, step_render(context))
    ranking_panel.register(app, context, ranking_request(context), ranking_render, ranking_render_partial)

    @app.callback(Output(RANK_DOWNLOAD, "data"), Input(RANK_CSV, "n_clicks"), State(ranking_panel.job_id, "data"),
                  prevent_initial_call=True)
    def download(clicks, job):
        if not clicks or not isinstance(job, dict) or not job.get("key"):
            return no_update
        result = panel_results.result_of(context.service, job["key"])
        if result is None:
            return no_update
        return dcc.send_string(ranking_csv(result), "featurescope-faithfulness-ranking.csv")
