"""Attribution: which pixels make the network say a class, by every method of ``compute.attribution.METHODS``."""
from __future__ import annotations

from dash import Input, Output, State, dcc, html

from components import attribution as figures
from components import controls, theme
from compute.specs import attribution
from dashboard.views.context import (SELECTION, ViewContext, image_name, sample_params, selected_index,
                                     selection_note)
from dashboard.views.links import Entry, Flag, Parity, method_entries
from dashboard.views.method_panel import MethodPanel
from dashboard.views.panel import BackgroundPanel, Message, Request

NAME = "attribution"
TITLE = "Attribution: which pixels make the network say this"
OPENABLE = True
OPEN_AT_START = True

TARGET = "attribution-target"
USE_PREDICTED = "attribution-use-predicted"
DISPLAY = "attribution-display"
OPACITY = "attribution-opacity"
SANITY = "attribution-sanity"
PANELS = "attribution-panels"
NOTES = "attribution-notes"
DEFAULT_METHODS = ("occlusion", "saliency", "smoothgrad")

methods = MethodPanel("attribution", attribution.METHODS, DEFAULT_METHODS)
# What a link keeps: the methods and every parameter (``occlusion.box=5``), the target and the display.
URL_STATE = [*method_entries(methods), Entry("target", TARGET), Entry("predicted", USE_PREDICTED, kind=Flag()),
             Entry("display", DISPLAY), Entry("opacity", OPACITY), Entry("sanity", SANITY, "n_clicks", Parity())]
panel = BackgroundPanel(
    "attribution",
    outputs=[Output(PANELS, "children"), Output(NOTES, "children")],
    inputs=[Input(SELECTION, "data"), *methods.inputs(), Input(TARGET, "value"), Input(USE_PREDICTED, "value"),
            Input(DISPLAY, "value"), Input(OPACITY, "value"), Input(SANITY, "n_clicks")],
    states=methods.states(),
    view=NAME,
    idle_text="Click a point in the scatter.",
)


def layout(context: ViewContext) -> html.Section:
    meta = context.meta
    return controls.card(
        TITLE,
        html.Div([
            methods.picker(),
            controls.labelled("Target class", dcc.Dropdown(
                id=TARGET, options=[{"label": c, "value": k} for k, c in enumerate(meta.classes)],
                placeholder="true class", clearable=True,
            ), "default: the true class"),
            controls.labelled("", dcc.Checklist(id=USE_PREDICTED, value=[],
                                                options=[{"label": " use the predicted class", "value": "predicted"}])),
            controls.labelled("Show as", dcc.RadioItems(
                id=DISPLAY, value="overlay", inline=True,
                options=[{"label": "heatmap", "value": "heatmap"}, {"label": "overlay", "value": "overlay"}],
            )),
            controls.labelled("Overlay opacity", dcc.Slider(id=OPACITY, min=0, max=1, step=0.05, value=0.6, marks=None)),
            html.Button("Sanity check: compare with the untrained model", id=SANITY, n_clicks=0,
                        className="button", title="Adebayo et al. 2018: a map that does not change when the weights "
                                                  "are untrained does not explain what the model learned"),
        ], className="toolbar"),
        methods.blocks(tuple(meta.image_shape), meta.conv_layers),
        panel.status(),
        html.Div(id=NOTES),
        html.Div(id=PANELS, className="attribution-panels"),
        class_name="attribution",
    )


def attribution_request(context: ViewContext):
    image_shape = tuple(context.meta.image_shape)

    def request(selection, chosen, values, target, use_predicted, display, opacity, sanity_clicks, control_ids):
        index = selected_index(selection)
        if index is None:
            return None
        if not chosen:
            return Message("Pick at least one method.")
        order = [name for name in attribution.METHODS if name in chosen]
        params, notes = {}, []
        for name in order:
            params[name], clamped = methods.parameters(name, values, control_ids, image_shape)
            notes += clamped
        if "occlusion" in params and attribution.occlusion_covers_image(params["occlusion"]["box"],
                                                                         params["occlusion"]["stride"], image_shape):
            height, width = image_shape[-2:]
            notes.append(f"Occlusion: a box of {params['occlusion']['box']} covers the whole {width}×{height} image "
                         "wherever it is centred, so every position gives the same drop; a box smaller than the "
                         "image shows where the evidence is.")
        return Request(
            "attribution.maps",
            {**sample_params(selection), "methods": params, "target": target, "use_predicted": bool(use_predicted),
             "sanity": bool(sanity_clicks and sanity_clicks % 2)},
            {"index": index, "note": selection_note(selection), "order": order, "display": display, "opacity": float(opacity if opacity is not None else 0.6),
             "notes": notes},
        )

    return request


def map_specs(method: str, class_name: str) -> list[tuple[str, str, str]]:
    """(key, title, scale) of each map the method's entry says it returns (titles may name the class)."""
    specs = getattr(attribution.METHODS[method], "maps", None)
    if not specs:
        return list(figures.DEFAULT_SPECS)
    return [(spec.key, spec.title.replace("class", class_name) if "p(class)" in spec.title else spec.title,
             spec.scale) for spec in specs]


def method_figure(maps: dict, method: str, image, title: str, shown: dict, class_name: str):
    """One method's maps as its entry describes them; a method that reports the clean image's probability
    (``clean``) gets it said in words under the title."""
    note = figures.clean_probability_note(float(maps["clean"]), class_name) if "clean" in maps else ""
    return figures.method_figure(maps, map_specs(method, class_name), image, title, shown["display"],
                                 shown["opacity"], note=note)


def attribution_render(context: ViewContext):
    # The predicted class may be one of the model's outputs beyond the data's classes (ImageNet weights on a folder).
    names = context.meta.model_classes or context.meta.classes

    def render(result: dict, shown: dict) -> tuple:
        target = int(result["target"])
        target_name = names[target] if 0 <= target < len(names) else f"output {target}"
        panels = []
        for name in shown["order"]:
            label = attribution.METHODS[name].label
            title = f"{label} · class {target_name} ({result['target_how']}) · {image_name(shown['index'], shown.get('note', ''))}"
            graphs = [dcc.Graph(
                id={"type": "attribution-graph", "method": name, "variant": "trained"},
                figure=method_figure(result["maps"][name], name, result["image"], title, shown, target_name),
                config=theme.graph_config(f"featurescope-{name}"))]
            if name in result["untrained"]:
                rho = result["correlation"][name]
                # The correlation first: a narrow panel may cut a long title, never the number (the table above
                # the panels has every correlation in full).
                graphs.append(dcc.Graph(
                    id={"type": "attribution-graph", "method": name, "variant": "untrained"},
                    figure=method_figure(result["untrained"][name], name, result["image"],
                                         f"{figures.correlation_text(rho)} · {label}, untrained model",
                                         shown, target_name),
                    config=theme.graph_config(f"featurescope-{name}-untrained")))
            panels.append(html.Div(graphs, className="attribution-panel", **{"data-method": name}))
        notes = [controls.message(note, "warning") for note in shown["notes"]]
        if result["correlation"]:
            notes.append(figures.sanity_table([(attribution.METHODS[name].label, result["correlation"][name])
                                               for name in shown["order"] if name in result["correlation"]]))
        return panels, notes

    return render


def register(app, context: ViewContext) -> None:
    panel.register(app, context, attribution_request(context), attribution_render(context))
    methods.register_clamping(app)  # box 100 -> 64 shows 64

    app.clientside_callback(
        """function(n) { return (n % 2) ? 'button button-active' : 'button'; }""",
        Output(SANITY, "className"),
        Input(SANITY, "n_clicks"),
    )
    # "use the predicted class" makes the target dropdown meaningless: disable it meanwhile.
    app.clientside_callback(
        """function(value) { return !!(value && value.length); }""",
        Output(TARGET, "disabled"),
        Input(USE_PREDICTED, "value"),
    )
