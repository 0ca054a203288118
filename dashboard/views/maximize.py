"""Activation maximization: images that maximize a class, a channel or a neuron (or a whole layer), live.

Every control comes from a table of ``compute.maximize`` (OBJECTIVES, PARAMETERIZATIONS, TRANSFORMS,
REGULARIZERS, RUN_PARAMS); the objective's specs get the model's bounds (its classes, its layers' sizes) here.
"Run" submits ``maximize.run`` or ``maximize.layer``; while it runs the panel draws its previews and objective
curve; its cancel button stops it and the last previews stay.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from dash import ALL, Input, Output, State, dcc, html, no_update

from components import controls, images, scatter, theme
from components import maximize as figures
from compute.specs import maximize
from compute.specs.maximize import suggested_transforms
from compute.specs.params import Method, Param
from dashboard.views.context import ViewContext
from dashboard.views.links import Entry, Pressed, method_entries
from dashboard.views.method_panel import MethodPanel
from dashboard.views.panel import BackgroundPanel, Message, Request

NAME = "maximize"
TITLE = "Activation maximization: inputs that maximize a class or a channel"
MENU = "Maximization"  # its name in the toolbar's Views checklist
OPENABLE = True
OPEN_AT_START = False

RUN = "maximize-run"
MODE = "maximize-mode"
KIND = "maximize-kind"
COMBINE = "maximize-combine"
SECOND = "maximize-second-class"
WHOLE_LAYER = "maximize-whole-layer"
PARAMETERIZATION = "maximize-parameterization"
BLOCK = "maximize-block"  # pattern id {"type": BLOCK, "group": ..., "name": ...} of a block shown only when chosen
IMAGES = "maximize-images"
CURVES = "maximize-curves"
DETAILS = "maximize-details"
NOTES = "maximize-notes"
CLASSES_LAYER = "classes"  # maximize.layer's name for "one image per class"
NO_COMBINATION = "none"
IMAGES_HEIGHT = 280

# The run's own controls from RUN_PARAMS (the parameterization is a radio built from its table), as one "method".
RUN_SETTINGS = "run"
# The combinations (entries without parameters: sum, difference) join the objective with a second class.
COMBINATIONS = [name for name, entry in maximize.OBJECTIVES.items() if not entry.params]
SINGLE_KINDS = [name for name in maximize.OBJECTIVES if name not in COMBINATIONS]


@dataclasses.dataclass(frozen=True)
class SuggestingPanel(MethodPanel):
    """A method panel whose starting values also come from ``suggest(image_shape) -> {method: {param: value}}``
    (the transforms at the model's own scale)."""

    suggest: object = None

    def starting_values(self, method, image_shape):
        suggested = self.suggest(tuple(image_shape)).get(method, {}) if self.suggest else {}
        return {**super().starting_values(method, image_shape), **suggested}


# Ids only: the objective specs get this model's bounds in objective_panel.
objectives_ids = MethodPanel("maximize-objective", maximize.OBJECTIVES, ("class",))
parameterizations = MethodPanel("maximize-parameterization", maximize.PARAMETERIZATIONS, ("fourier",))
transforms = SuggestingPanel("maximize-transforms", maximize.TRANSFORMS, tuple(maximize.TRANSFORMS),
                             suggest=lambda shape: suggested_transforms(*shape[1:]))
regularizers = MethodPanel("maximize-regularizers", maximize.REGULARIZERS, ())
run_settings = MethodPanel("maximize-settings", {RUN_SETTINGS: Method(None, "run", tuple(
    spec for spec in maximize.RUN_PARAMS if spec.name != "parameterization"))}, (RUN_SETTINGS,))
# What a link keeps: every choice and parameter (``maximize.jitter.pixels=4``), and whether Run was pressed (a link
# to a result computes it again, from the cache when it is there).
URL_STATE = [Entry("maximize.mode", MODE), Entry("maximize.kind", KIND), Entry("maximize.combine", COMBINE),
             Entry("maximize.second", SECOND), Entry("maximize.layer", WHOLE_LAYER),
             Entry("maximize.parameterization", PARAMETERIZATION), Entry("maximize.run", RUN, "n_clicks", Pressed()),
             *method_entries(objectives_ids, "maximize.", None), *method_entries(parameterizations, "maximize.", None),
             *method_entries(transforms, "maximize.", "maximize.transforms"),
             *method_entries(regularizers, "maximize.", "maximize.regularizers"),
             *method_entries(run_settings, "maximize.", None)]

panel = BackgroundPanel(
    "maximize",
    outputs=[Output(IMAGES, "figure"), Output(CURVES, "figure"), Output(DETAILS, "children"),
             Output(NOTES, "children")],
    inputs=[Input(RUN, "n_clicks")],
    states=[State(MODE, "value"), State(KIND, "value"), State(COMBINE, "value"), State(SECOND, "value"),
            State(WHOLE_LAYER, "value"), State(PARAMETERIZATION, "value"),
            State(transforms.picker_id, "value"), State(regularizers.picker_id, "value"),
            *[State(p.any_control, prop) for p in (objectives_ids, parameterizations, transforms, regularizers,
                                                   run_settings) for prop in ("value", "id")]],
    view=NAME,
    idle_text="Choose an objective and press Run.",
)


def spatial_layers(meta) -> list[str]:
    """Layers with (C, h, w) maps: the ones a neuron or a whole-layer grid can use."""
    return [name for name in meta.layers if len(meta.layer_shapes.get(name, ())) == 3]


@lru_cache(maxsize=8)
def _bounded(classes: tuple, layer_shapes: tuple, default_layer: str) -> MethodPanel:
    shapes = dict(layer_shapes)
    spatial = [shape for shape in shapes.values() if len(shape) == 3]
    bounds = {"target": max(shape[0] for shape in shapes.values()) - 1,
              "y": max(shape[1] for shape in spatial) - 1, "x": max(shape[2] for shape in spatial) - 1}

    def bound(spec: Param) -> Param:
        if spec.kind == "layer":
            return dataclasses.replace(spec, default=default_layer)
        return dataclasses.replace(spec, high=bounds[spec.name])

    registry = {"class": dataclasses.replace(maximize.OBJECTIVES["class"], params=(
        class_choice("target", "class", classes, classes[0]),))}
    for kind in SINGLE_KINDS[1:]:
        entry = maximize.OBJECTIVES[kind]
        registry[kind] = dataclasses.replace(entry, params=tuple(bound(spec) for spec in entry.params))
    return MethodPanel(objectives_ids.name, registry, ("class",))


def objective_panel(meta) -> MethodPanel:
    """The objective table with this model's bounds: classes by name, channels and positions within its layers."""
    return _bounded(tuple(meta.classes), tuple((k, tuple(v)) for k, v in meta.layer_shapes.items()),
                    meta.default_layer if len(meta.layer_shapes[meta.default_layer]) == 3 else spatial_layers(meta)[0])


def class_choice(name: str, label: str, classes, default) -> Param:
    return Param(name, "choice", default, label, choices=tuple(classes))


def _block(group: str, name: str, children, shown: bool) -> html.Div:
    return html.Div(children, id={"type": BLOCK, "group": group, "name": name}, className=f"maximize-{group}",
                    style=None if shown else {"display": "none"})


def _param_blocks(method_panel: MethodPanel, group: str, chosen, image_shape, layer_options=None,
                  titled: bool = False) -> list:
    """One block of controls per entry of the panel's table (hidden until the entry is chosen)."""
    blocks = []
    for name, entry in method_panel.registry.items():
        start = method_panel.starting_values(name, image_shape)
        options = layer_options(name) if callable(layer_options) else layer_options
        parts = [controls.param_control(spec, method_panel.control_id(name, spec.name), options, start[spec.name])
                 for spec in entry.params]
        title = [html.Div(entry.label, className="maximize-block-title", title=entry.description)] if titled else []
        blocks.append(_block(group, name, [*title, *parts], name in chosen))
    return blocks


def _group(title: str, *children) -> html.Fieldset:
    return html.Fieldset([html.Legend(title), *children], className="maximize-group")


def layout(context: ViewContext) -> html.Section:
    meta = context.meta
    shape = tuple(meta.image_shape)
    run_controls = {spec.name: controls.param_control(spec, run_settings.control_id(RUN_SETTINGS, spec.name))
                    for spec in run_settings.registry[RUN_SETTINGS].params}
    layer_options = [{"label": "every class (logits)", "value": CLASSES_LAYER}] + spatial_layers(meta)
    default_parameterization = maximize.suggested_parameterization(shape)
    objective = _group(
        "What to maximize",
        dcc.RadioItems(id=MODE, value="one", options=[
            {"label": "one objective", "value": "one"}, {"label": "a whole layer at once", "value": "layer"}]),
        _block("mode", "one", [
            dcc.RadioItems(id=KIND, value="class", className="maximize-kinds", options=[
                {"label": maximize.OBJECTIVES[k].label, "value": k} for k in SINGLE_KINDS]),
            *_param_blocks(objective_panel(meta), "objective", ["class"], shape,
                           lambda kind: spatial_layers(meta) if kind == "neuron" else meta.layers),
            controls.labelled("Combine with a second class", dcc.RadioItems(
                id=COMBINE, value=NO_COMBINATION, inline=True, options=[
                    {"label": "no", "value": NO_COMBINATION},
                    *[{"label": maximize.OBJECTIVES[k].label, "value": k} for k in COMBINATIONS]])),
            _block("combine", "second", controls.param_control(
                class_choice("second", "second class", meta.classes, meta.classes[-1]), SECOND), False),
            run_controls["n"],
        ], True),
        _block("mode", "layer", controls.labelled("Layer", dcc.Dropdown(
            id=WHOLE_LAYER, options=layer_options, value=CLASSES_LAYER, clearable=False),
            "one image per class, or per channel of a layer, optimized together as one batch"), False),
    )
    return controls.card(
        TITLE,
        html.Div([
            objective,
            _group("Parameterization",
                   dcc.RadioItems(id=PARAMETERIZATION, value=default_parameterization, options=[
                       {"label": entry.label, "value": name} for name, entry in maximize.PARAMETERIZATIONS.items()]),
                   *_param_blocks(parameterizations, "parameterization", [default_parameterization], shape)),
            _group("Transforms", transforms.picker(""),
                   *_param_blocks(transforms, "transform", transforms.default_methods, shape, titled=True)),
            _group("Regularizers", regularizers.picker(""),
                   *_param_blocks(regularizers, "regularizer", [], shape, titled=True)),
            _group("Run", *[run_controls[name] for name in ("steps", "seed", "lr")],
                   html.Button("Run", id=RUN, n_clicks=0, className="button maximize-run-button")),
        ], className="maximize-controls"),
        panel.status(),
        html.Div(id=NOTES),
        html.Div([
            dcc.Graph(id=IMAGES, figure=scatter.empty_figure("press Run to optimize an image", IMAGES_HEIGHT),
                      config=theme.graph_config("featurescope-maximize")),
            dcc.Graph(id=CURVES, figure=scatter.empty_figure("the objective per step appears here", 260),
                      config=theme.graph_config("featurescope-maximize-objective")),
        ], className="maximize-figures"),
        html.Div(id=DETAILS, className="maximize-details"),
        class_name="maximize",
    )


# Which blocks show: the chosen mode, objective kind, combination, parameterization, transforms and regularizers.
SHOW_CHOSEN_BLOCKS = """
function(mode, kind, combine, parameterization, transforms, regularizers, ids) {
    const chosen = {mode: [mode], objective: [kind], combine: combine === 'none' ? [] : ['second'],
                    parameterization: [parameterization], transform: transforms || [], regularizer: regularizers || []};
    return ids.map(id => (chosen[id.group] || []).includes(id.name) ? {} : {display: 'none'});
}
"""


def _class_index(name, classes: list[str]) -> int:
    return classes.index(name) if name in classes else 0


def maximize_request(context: ViewContext):
    meta = context.meta
    shape, classes = tuple(meta.image_shape), list(meta.classes)
    bounded = objective_panel(meta)

    def request(clicks, mode, kind, combine, second, whole_layer, parameterization, chosen_transforms,
                chosen_regularizers, objective_values, objective_ids, param_values, param_ids, transform_values,
                transform_ids, regularizer_values, regularizer_ids, run_values, run_ids):
        if not clicks:
            return None
        notes: list[str] = []

        def read(method_panel: MethodPanel, method: str, values, ids) -> dict:
            params, clamped = method_panel.parameters(method, values, ids, shape)
            notes.extend(clamped)
            return params

        run = read(run_settings, RUN_SETTINGS, run_values, run_ids)
        if parameterization not in maximize.PARAMETERIZATIONS:
            parameterization = maximize.suggested_parameterization(shape)
        settings = {
            "parameterization": parameterization, "lr": run["lr"],
            "parameterization_params": read(parameterizations, parameterization, param_values, param_ids),
            "transforms": {name: read(transforms, name, transform_values, transform_ids)
                           for name in maximize.TRANSFORMS if name in (chosen_transforms or [])},
            "regularizers": {name: read(regularizers, name, regularizer_values, regularizer_ids)
                             for name in maximize.REGULARIZERS if name in (chosen_regularizers or [])},
        }
        shown = {"steps": run["steps"], "parameterization": maximize.PARAMETERIZATIONS[parameterization].label,
                 "notes": notes}
        if mode == "layer":
            if whole_layer == CLASSES_LAYER:
                titles = [maximize.describe(("class", k), classes) for k in range(len(classes))]
                heading = "every class"
            elif whole_layer in meta.layer_shapes:
                channels = meta.layer_shapes[whole_layer][0]
                titles = [maximize.describe(("channel", whole_layer, k)) for k in range(channels)]
                heading = f"every channel of {whole_layer}"
            else:
                return Message("Pick a layer.", "error")
            return Request("maximize.layer", {"layer": whole_layer, "steps": run["steps"], "seed": run["seed"],
                                              **settings}, {**shown, "titles": titles, "heading": heading})
        kind = kind if kind in SINGLE_KINDS else "class"
        values = read(bounded, kind, objective_values, objective_ids)
        if kind == "class":
            spec = ("class", _class_index(values["target"], classes))
        else:
            layer = values["layer"]
            size = meta.layer_shapes[layer]
            if values["target"] >= size[0]:
                return Message(f"{layer} has {size[0]} channels: pick a channel from 0 to {size[0] - 1}.", "error")
            spec = ("channel", layer, values["target"])
            if kind == "neuron":
                if values["y"] >= size[1] or values["x"] >= size[2]:
                    return Message(f"{layer}'s map is {size[1]}×{size[2]}: row and column must be below that.",
                                   "error")
                spec = ("neuron", layer, values["target"], values["y"], values["x"])
        if combine in COMBINATIONS:
            spec = (combine, spec, ("class", _class_index(second, classes)))
        title = maximize.describe(spec, classes)
        return Request("maximize.run", {"objective": spec, "steps": run["steps"], "n": run["n"], "seed": run["seed"],
                                        **settings},
                       {**shown, "titles": [title] * run["n"], "heading": title, "seed": run["seed"]})

    return request


def _target_class(spec: tuple, class_names: list[str]) -> str:
    """The class an objective pushes up (the first of a sum or difference), highlighted in the top-5; else ""."""
    while spec[0] in COMBINATIONS:
        spec = spec[1]
    return class_names[spec[1]] if spec[0] == "class" and 0 <= spec[1] < len(class_names) else ""


def _heading(shown: dict, count: int, steps_done: int) -> str:
    seed = shown.get("seed")
    starts = f" · {count} starts (seeds {seed}–{seed + count - 1})" if seed is not None and count > 1 else ""
    return f"{shown['heading']}{starts} · {shown['parameterization']} · step {steps_done}/{shown['steps']}"


def _notes(shown: dict) -> list:
    """The values the specs clamped, said in words above the result."""
    return [controls.message(note, "warning") for note in shown.get("notes", [])]


def _so_far(images: np.ndarray, history, step: int, shown: dict) -> tuple:
    """The images of an unfinished run and its objective so far (no comparison: the run did not get there)."""
    titles = shown["titles"]
    history = np.asarray(history, dtype=np.float32).reshape(-1, len(images))
    return (figures.maximize_grid(images, titles, title=_heading(shown, len(images), step)),
            figures.objective_curves(history, titles), None, _notes(shown))


def render_partial(partial: dict, shown: dict) -> tuple:
    """The preview images and the objective so far, while the job runs."""
    # The preview is uint8 by contract; a transport may hand it over as nested lists.
    return _so_far(np.asarray(partial["images"], dtype=np.uint8), partial["history"], partial["step"], shown)


def _result_card(result: dict, k: int, class_names: list[str]) -> html.Div:
    """One image beside the best data-set image for its objective, with where it matters and its top-5."""
    title = f"{result['titles'][k]} · seed {result['seeds'][k]} · {figures.ratio_text(float(result['ratios'][k]))}"
    comparison = figures.best_image_comparison(
        result["images"][k], result["best_images"][k], float(result["values"][k]), float(result["best_values"][k]),
        int(result["best_indices"][k]), title, result["importance"][k].astype("float32"))
    pairs = figures.predictions(result["top_classes"][k:k + 1], result["top_probabilities"][k:k + 1], class_names)[0]
    target = _target_class(maximize.item(result["objective"], k), class_names)
    return html.Div([
        dcc.Graph(id={"type": "maximize-comparison", "index": k}, figure=comparison,
                  config=theme.graph_config(f"featurescope-maximize-{k}")),
        dcc.Graph(id={"type": "maximize-top5", "index": k}, figure=images.top_k_figure(pairs, target),
                  config=theme.graph_config(f"featurescope-maximize-top5-{k}")),
    ], className="maximize-result", **{"data-index": str(k)})


def render(result: dict, shown: dict) -> tuple:
    """The finished images (each with its ratio to the best data-set image and its top-1), the objective curves,
    and per image (up to eight) the best data-set image beside it and the top-5; a whole layer's best images as a
    second grid."""
    if result.get("cancelled"):  # a result a cancel left behind: the images so far, no comparison
        if result.get("images") is None:
            return scatter.empty_figure("cancelled before the first step", IMAGES_HEIGHT), no_update, None, None
        return _so_far(np.asarray(result["images"], dtype=np.float32), result["history"], result["steps_done"], shown)
    titles, count = list(result["titles"]), len(result["images"])
    top1 = [pairs[0] for pairs in figures.predictions(result["top_classes"], result["top_probabilities"],
                                                      result["class_names"])]
    grid = figures.maximize_grid(result["images"], titles, result["ratios"], top1,
                                 title=_heading(shown, count, result["steps_done"]))
    curves = figures.objective_curves(result["history"], titles)
    if count <= figures.SIDE_BY_SIDE:
        details = [_result_card(result, k, result["class_names"]) for k in range(count)]
    else:
        best_titles = [f"#{int(i)}: {float(v):.3g}" for i, v in zip(result["best_indices"], result["best_values"])]
        details = [dcc.Graph(id={"type": "maximize-comparison", "index": 0}, config=theme.graph_config(
            "featurescope-maximize-best"), figure=figures.maximize_grid(
                result["best_images"], best_titles, title="the best data-set image of each, with its objective"))]
    return grid, curves, details, _notes(shown)


def register(app, context: ViewContext) -> None:
    panel.register(app, context, maximize_request(context), render, render_partial)
    app.clientside_callback(
        SHOW_CHOSEN_BLOCKS, Output({"type": BLOCK, "group": ALL, "name": ALL}, "style"),
        Input(MODE, "value"), Input(KIND, "value"), Input(COMBINE, "value"), Input(PARAMETERIZATION, "value"),
        Input(transforms.picker_id, "value"), Input(regularizers.picker_id, "value"),
        State({"type": BLOCK, "group": ALL, "name": ALL}, "id"),
    )
