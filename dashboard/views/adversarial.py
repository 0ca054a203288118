"""Adversarial examples (slide 13, Goodfellow et al. 2015): the selected image attacked with FGSM or PGD, the
perturbation that fools the model, the adversarial image's jump across the embedding scatter, the smallest epsilon
that flips the image, and the robustness curve over the test split.

Three background panels on the jobs of ``compute.adversarial``. The attack follows the selection and its controls
while the view is open (one image, fast); the smallest epsilon and the robustness curve run on their buttons. The
attacked image goes to the scatter through this view's ``MARK`` store, copied to the page-wide ``HIGHLIGHT`` while
the view is open, and becomes the page's selection on a button press, so every other panel opens for it.
"""
from __future__ import annotations

import math

from dash import Input, Output, State, ctx, dcc, html, no_update

from components import adversarial as figures
from components import controls, scatter, theme
from compute.errors import UserError
from compute.specs.adversarial import MAX_STEPS
from compute.specs.embedding import EMBEDDERS
from dashboard.views.context import (EMBEDDING, FEATURES, HIGHLIGHT, LAYER, OPEN_VIEWS, SELECTION, ViewContext,
                                     selected_index, selected_variant, share_mark)
from dashboard.views.links import Entry, Number, Pressed
from dashboard.views.panel import BackgroundPanel, Message, Request

NAME = "adversarial"
TITLE = "Adversarial examples: inputs that maximize the error"
MENU = "Adversarial"  # its name in the toolbar's Views checklist
OPENABLE = True
OPEN_AT_START = False

METHOD = "adversarial-method"
TARGET = "adversarial-target"
EPSILON = "adversarial-epsilon"  # in /255, as the user types it
STEPS = "adversarial-steps"
STEP_SIZE = "adversarial-step-size"  # in /255; empty: 2.5 epsilon / steps
FIGURE = "adversarial-figure"
TOP_K = "adversarial-topk"
SUMMARY = "adversarial-summary"
MARK = "adversarial-mark"  # what this view marks in the scatter; copied to HIGHLIGHT while the view is open
ATTACKED = "adversarial-attacked"  # {"index", "variant", "label"} of the attack shown: what "open" selects
OPEN_ADVERSARIAL = "adversarial-open"
BACK = "adversarial-back"
SMALLEST_RUN = "adversarial-smallest-run"
SMALLEST_FIGURE = "adversarial-smallest-figure"
SMALLEST_TEXT = "adversarial-smallest-text"
ROBUSTNESS_RUN = "adversarial-robustness-run"
ROBUSTNESS_FIGURE = "adversarial-robustness-figure"
ROBUSTNESS_TEXT = "adversarial-robustness-text"

DEFAULT_EPSILON, DEFAULT_STEPS = 8, 10
URL_STATE = [Entry("attack.method", METHOD), Entry("attack.target", TARGET),
             Entry("attack.epsilon", EPSILON, kind=Number(0, 255, optional=True)),
             Entry("attack.steps", STEPS, kind=Number(1, MAX_STEPS, optional=True, integer=True)),
             Entry("attack.step_size", STEP_SIZE, kind=Number(0, 255, optional=True)),
             Entry("attack.smallest", SMALLEST_RUN, "n_clicks", Pressed()),
             Entry("attack.robustness", ROBUSTNESS_RUN, "n_clicks", Pressed())]
SMALLEST_MAX_EPSILON = 64 / 255  # the digits CNN needs up to ~32/255; twice that leaves room for the stubborn ones
SEED = 0
MARK_PREFIX = "adversarial"  # a highlight whose label starts with this is this view's own
PIXEL_UNITS = ("Images stay in [0, 1] and the normalisation is part of the model, so ε is in pixel units: "
               "ε = 8/255 changes every pixel by at most 8 of its 255 grey levels.")

attack_panel = BackgroundPanel(
    "adversarial",
    outputs=[Output(FIGURE, "figure"), Output(TOP_K, "figure"), Output(SUMMARY, "children"), Output(MARK, "data"),
             Output(ATTACKED, "data")],
    inputs=[Input(SELECTION, "data"), Input(METHOD, "value"), Input(TARGET, "value"), Input(EPSILON, "value"),
            Input(STEPS, "value"), Input(STEP_SIZE, "value"), Input(LAYER, "value"),
            Input(EMBEDDING, "value"), Input(FEATURES, "value")],
    view=NAME,
    idle_text="Click a point in the scatter to attack that image.",
)
smallest_panel = BackgroundPanel(
    "adversarial-smallest",
    outputs=[Output(SMALLEST_FIGURE, "figure"), Output(SMALLEST_TEXT, "children")],
    inputs=[Input(SMALLEST_RUN, "n_clicks"), Input(SELECTION, "data"), Input(TARGET, "value")],
    view=NAME,
)
robustness_panel = BackgroundPanel(
    "adversarial-robustness",
    outputs=[Output(ROBUSTNESS_FIGURE, "figure"), Output(ROBUSTNESS_TEXT, "children")],
    inputs=[Input(ROBUSTNESS_RUN, "n_clicks")],
    states=[State(TARGET, "value")],
    view=NAME,
)

SHARE_MARK = share_mark(NAME, MARK_PREFIX)  # this view's mark in the scatter while the view is open

# The two selection buttons: "open" while the panels do not already show the attack shown here, "back" while
# they show a derived image.
SELECTION_BUTTONS = """
function(attacked, selection) {
    const variant = selection && selection.variant;
    const same = !!(attacked && variant && selection.index === attacked.index
                    && JSON.stringify(variant) === JSON.stringify(attacked.variant));
    return [!attacked || same, !variant];
}
"""


def number_box(component_id: str, value, placeholder: str = "") -> dcc.Input:
    """A number box that applies on Enter (or on leaving it)."""
    return dcc.Input(id=component_id, type="number", value=value, debounce=True, step="any", placeholder=placeholder,
                     className="number-input")


def layout(context: ViewContext) -> html.Section:
    classes = context.meta.classes
    return controls.card(
        TITLE,
        html.P(["A small, deliberate change to every pixel makes the model say another class. ", PIXEL_UNITS],
               className="hint"),
        html.Div([
            controls.labelled("Attack", dcc.RadioItems(id=METHOD, value="fgsm", inline=True, options=[
                {"label": "FGSM (one step)", "value": "fgsm"},
                {"label": "PGD (iterative, random start)", "value": "pgd"}])),
            controls.labelled("Target class", dcc.Dropdown(
                id=TARGET, options=[{"label": name, "value": k} for k, name in enumerate(classes)],
                placeholder="untargeted", clearable=True), "empty: push away from the true class"),
            controls.labelled("Epsilon (/255)", number_box(EPSILON, DEFAULT_EPSILON),
                              "largest change of any pixel, in grey levels of 255; Enter applies"),
            controls.labelled("PGD steps", number_box(STEPS, DEFAULT_STEPS), f"1 to {MAX_STEPS}; Enter applies"),
            controls.labelled("PGD step size (/255)", number_box(STEP_SIZE, None, "auto"),
                              "empty: 2.5 ε / steps (Madry et al. 2018)"),
        ], className="toolbar"),
        html.Div([
            html.Button("Open every panel for the adversarial image", id=OPEN_ADVERSARIAL, n_clicks=0,
                        className="button", disabled=True),
            html.Button("Back to the original", id=BACK, n_clicks=0, className="button", disabled=True),
        ], className="adversarial-buttons"),
        attack_panel.status(),
        html.Div([
            dcc.Graph(id=FIGURE, figure=scatter.empty_figure("click a point to attack its image", figures.PANEL_HEIGHT),
                      config=theme.graph_config("featurescope-adversarial")),
            dcc.Graph(id=TOP_K, figure=scatter.empty_figure("", figures.TOP_K_HEIGHT),
                      config=theme.graph_config("featurescope-adversarial-top5")),
        ], className="adversarial-figures"),
        html.Div(id=SUMMARY, className="adversarial-summary"),
        html.H3("The smallest ε that flips this image", className="adversarial-heading"),
        html.P(f"A bisection over 20-step PGD, up to {figures.over_255(SMALLEST_MAX_EPSILON)} (towards the target "
               "class when one is chosen); once started it follows the selection.", className="hint"),
        html.Button("Find the smallest ε", id=SMALLEST_RUN, n_clicks=0, className="button"),
        smallest_panel.status(),
        dcc.Graph(id=SMALLEST_FIGURE, figure=scatter.empty_figure("press the button", figures.PANEL_HEIGHT),
                  config=theme.graph_config("featurescope-smallest-epsilon")),
        html.Div(id=SMALLEST_TEXT, className="adversarial-summary"),
        html.H3("Robustness over the test split", className="adversarial-heading"),
        html.P("10-step PGD at each ε over the test images (at most 2,000), batched and cached: the share of "
               "images the attack succeeds on, and the accuracy left.", className="hint"),
        html.Button("Compute the robustness curve", id=ROBUSTNESS_RUN, n_clicks=0, className="button"),
        robustness_panel.status(),
        dcc.Graph(id=ROBUSTNESS_FIGURE, figure=scatter.empty_figure("press the button", figures.CURVE_HEIGHT),
                  config=theme.graph_config("featurescope-robustness")),
        html.Div(id=ROBUSTNESS_TEXT, className="hint"),
        dcc.Store(id=MARK),
        dcc.Store(id=ATTACKED),
        class_name="adversarial",
    )


def _number(value, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} {value!r} is not a number") from None


def attack_settings(method, target, epsilon, steps, step_size) -> dict | Message:
    """The attack's parameters (pixel units) from the controls (/255), or a Message saying what is wrong.

    FGSM ignores the PGD controls, so they are left out: changing them does not recompute an FGSM attack."""
    method = method if method in ("fgsm", "pgd") else "fgsm"
    level = _number(epsilon, "ε")
    if level is None:
        return Message("Type an ε in /255 (for example 8) and press Enter.")
    if not 0 <= level <= 255:
        return Message(f"ε = {level:g}/255 is outside 0 to 255/255.", "error")
    settings = {"method": method, "epsilon": level / 255,
                "target": None if target in (None, "") else int(target)}
    if method == "pgd":
        count = _number(steps, "PGD steps")
        if count is None or not 1 <= count <= MAX_STEPS or count != int(count):
            return Message(f"PGD steps must be a whole number from 1 to {MAX_STEPS}.", "error")
        size = _number(step_size, "PGD step size")
        if size is not None and size <= 0:
            return Message("The PGD step size must be above 0 (or empty for 2.5 ε / steps).", "error")
        settings.update(steps=int(count),
                        step_size=(size / 255) if size is not None else 2.5 * settings["epsilon"] / int(count))
    return settings


def attack_label(settings: dict, classes: list[str]) -> str:
    """"adversarial, FGSM 8/255" or "adversarial, PGD 8/255, 10 steps, towards “3”"."""
    label = f"{MARK_PREFIX}, {settings['method'].upper()} {figures.over_255(settings['epsilon'])}"
    if settings["method"] == "pgd":
        label += f", {settings['steps']} steps"
    if settings.get("target") is not None:
        label += f", towards “{classes[settings['target']]}”"
    return label


def attack_request(selection, method, target, epsilon, steps, step_size, layer, embedding, features):
    index = selected_index(selection)
    if index is None:
        return None
    if index < 0:  # your own image has no true class to flip away from
        return Message("The attack starts from a data-set image and its true class: click a point in the scatter.")
    settings = attack_settings(method, target, epsilon, steps, step_size)
    if isinstance(settings, Message):
        return settings
    return Request("adversarial.attack", {"index": index, **settings, "layer": layer or None,
                                          "embedding": embedding or None, "mode": features or "auto", "seed": SEED},
                   {"layer": layer, "embedding": embedding})


def _prediction(summary: dict, classes: list[str]) -> tuple[str, float]:
    return classes[summary["predicted"]], float(summary["confidence"])


def _top5(summary: dict, classes: list[str]) -> list[tuple[str, float]]:
    return [(classes[k], float(p)) for k, p in summary["top5"]]


def outcome_text(result: dict, classes: list[str]) -> str:
    """What the attack did, in words."""
    (before, p_before), (after, p_after) = _prediction(result["before"], classes), _prediction(result["after"], classes)
    how = f"{result['method'].upper()} at ε = {figures.over_255(result['epsilon'])}"
    goal = "" if result["target"] is None else f" towards “{classes[result['target']]}”"
    if result["fooled"]:
        return f"{how}{goal} turns “{before}” ({p_before:.1%}) into “{after}” ({p_after:.1%})."
    advice = "a larger ε or PGD" if result["method"] == "fgsm" else "a larger ε or more steps"
    return f"{how}{goal} does not fool the model: it says “{after}” ({p_after:.1%}). Try {advice}."


def placement_caveat(points: dict) -> str:
    """A warning when placing new points moves even the unattacked image (t-SNE, UMAP transforms): then part of
    the line is the placement, not the attack; "" when the placement puts the original back on its own point."""
    (x0, y0), (xp, yp), (x1, y1) = points["original"], points["original_placed"], points["adversarial"]
    offset, jump = math.hypot(xp - x0, yp - y0), math.hypot(x1 - xp, y1 - yp)
    if offset <= 0.2 * max(jump, 1e-12):
        return ""
    return (f" Careful: placed the same way, the unattacked image itself lands {offset:.3g} away from its own point, "
            f"and the attack moves it {jump:.3g} from there; new points are placed approximately.")


def attack_render(context: ViewContext):
    classes = context.meta.classes

    def render(result: dict, shown: dict) -> tuple:
        index = result["index"]
        settings = {key: result[key] for key in ("method", "epsilon", "target")}
        if result["method"] == "pgd":
            settings.update(steps=result["steps"], step_size=result["step_size"])
        label = attack_label(settings, classes)
        after_name, after_p = _prediction(result["after"], classes)
        figure = figures.attack_figure(
            result["original"], result["perturbation"], result["adversarial"], _prediction(result["before"], classes),
            (after_name, after_p), epsilon=result["epsilon"],
            title=f"image #{index} (true class “{classes[result['label']]}”) · {label.split(', ', 1)[1]}")
        top5 = figures.top_k_comparison(_top5(result["before"], classes), _top5(result["after"], classes),
                                        classes[result["label"]],
                                        None if result["target"] is None else classes[result["target"]])
        lines = [outcome_text(result, classes),
                 f" The largest pixel change is {figures.over_255(result['linf'])} (L∞)."]
        points = result.get("points")
        if points:
            (x0, y0), (x1, y1) = points["original"], points["adversarial"]
            star = f"{MARK_PREFIX}: “{after_name}” {after_p:.0%}"
            mark = {"label": label, "indices": [index], "points": [[x1, y1, star]], "lines": [[x0, y0, x1, y1]]}
            method = EMBEDDERS[shown["embedding"]].label if shown.get("embedding") in EMBEDDERS else "the"
            lines.append(f" In the scatter a star marks the adversarial image, placed into the {method} layout of "
                         f"{shown.get('layer')}, with a dotted line from the original.")
            lines.append(placement_caveat(points))
        else:
            mark = None
            lines.append(f" Not shown in the scatter: {result['placement_message']}.")
        variant = {"kind": "adversarial", "method": result["method"], "epsilon": result["epsilon"],
                   "steps": result["steps"], "step_size": result["step_size"], "target": result["target"], "seed": SEED}
        attacked = {"index": index, "variant": variant, "label": label}
        return figure, top5, html.P("".join(lines)), mark, attacked

    return render


def smallest_request(clicks, selection, target):
    index = selected_index(selection)
    if not clicks or index is None:
        return None
    if index < 0:
        return Message("The smallest ε is measured on a data-set image and its true class: click a point in the "
                       "scatter.")
    return Request("adversarial.smallest_epsilon",
                   {"index": index, "target": None if target in (None, "") else int(target),
                    "max_epsilon": SMALLEST_MAX_EPSILON, "seed": SEED})


def smallest_render(context: ViewContext):
    classes = context.meta.classes

    def render(result: dict, shown: dict) -> tuple:
        index, epsilon = result["index"], result["epsilon"]
        if epsilon is None:
            text = f"Image #{index}: {result['message']}."
            return scatter.empty_figure(text, figures.PANEL_HEIGHT), text
        before, after = _prediction(result["before"], classes), _prediction(result["after"], classes)
        if epsilon == 0:
            text = f"Image #{index} is already misclassified (“{before[0]}”): no attack is needed."
        else:
            text = (f"Image #{index} flips from “{before[0]}” to “{after[0]}” at ε = {figures.over_255(epsilon)} "
                    f"(20-step PGD; found within {figures.over_255(result['tolerance'])}).")
        figure = figures.attack_figure(result["original"], result["perturbation"], result["adversarial"], before,
                                       after, epsilon=epsilon, title=f"image #{index} at the smallest flipping ε")
        return figure, text

    return render


def robustness_request(clicks, target):
    if not clicks:
        return None
    return Request("adversarial.robustness", {"target": None if target in (None, "") else int(target), "seed": SEED})


def robustness_render(context: ViewContext):
    classes = context.meta.classes

    def render(result: dict, shown: dict) -> tuple:
        figure = figures.robustness_figure(result["epsilons"], result["success_rate"], result["accuracy"],
                                           result["count"], result["steps"])
        goal = ("untargeted: success is the share of correctly classified images pushed to another class"
                if result["target"] is None else
                f"towards “{classes[result['target']]}”: success is the share of images not of that class that "
                "the attack turns into it")
        return figure, f"Clean accuracy {result['clean_accuracy']:.1%}; {goal}."

    return render


def selection_for(trigger: str | None, attacked, selection):
    """The page's new selection for a button press: the attacked image (``OPEN_ADVERSARIAL``) or its original
    (``BACK``); None when there is nothing to switch to."""
    if trigger == OPEN_ADVERSARIAL and isinstance(attacked, dict) and isinstance(attacked.get("index"), int):
        return {"index": attacked["index"], "variant": attacked["variant"], "label": attacked["label"]}
    if trigger == BACK and selected_index(selection) is not None and selected_variant(selection):
        return {"index": selected_index(selection)}
    return None


def register(app, context: ViewContext) -> None:
    attack_panel.register(app, context, attack_request, attack_render(context))
    smallest_panel.register(app, context, smallest_request, smallest_render(context))
    robustness_panel.register(app, context, robustness_request, robustness_render(context))

    @app.callback(Output(SELECTION, "data", allow_duplicate=True), Input(OPEN_ADVERSARIAL, "n_clicks"),
                  Input(BACK, "n_clicks"), State(ATTACKED, "data"), State(SELECTION, "data"), prevent_initial_call=True)
    def switch_selection(_open, _back, attacked, selection):
        return selection_for(ctx.triggered_id, attacked, selection) or no_update

    app.clientside_callback(SHARE_MARK, Output(HIGHLIGHT, "data", allow_duplicate=True), Input(MARK, "data"),
                            Input(OPEN_VIEWS, "value"), State(HIGHLIGHT, "data"), prevent_initial_call=True)
    app.clientside_callback(SELECTION_BUTTONS, Output(OPEN_ADVERSARIAL, "disabled"), Output(BACK, "disabled"),
                            Input(ATTACKED, "data"), Input(SELECTION, "data"))
