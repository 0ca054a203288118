"""The guided tour: the course's story in order, one step per screen, each step a link (``?tour=N&...``).

A step is a sentence or two from the course's slides and the URL state that opens the views it talks about
(see :mod:`dashboard.views.links`): the page is built from that link, so Back and Next are plain links, the
browser's own back and forward work, and an instructor can send any step's address to the class. Steps whose view
is not installed are left out; a layer the model does not have is left to the view's default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from dash import Input, Output, dcc, html

from dashboard.views.context import ViewContext
from dashboard.views.links import Entry, Number

NAME = "tour"
TITLE = "Guided tour"
OPENABLE = False

START = "tour-start"
STEP = "tour-step"  # the step shown (1-based), None outside the tour; the URL's ``tour`` key
BANNER = "tour-banner"
BACK = "tour-back"
NEXT = "tour-next"
LAYER_KEYS = ("layer", "evolution.layer", "inversion.layer", "channels.layer", "weights.layer")
SAMPLE = 7  # one image followed through the attribution and adversarial steps


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    view: str  # the view the step needs ("explore" for the scatter, always there)
    query: dict = field(default_factory=dict)


STEPS = (
    Step("Features (activations)",
         "Each point is one image, placed by its activations at a layer; the selected image shows its feature maps. "
         "In good training, features are usually sparse, and we can find “dead” features that never activate.",
         "channels", {"views": "channels", "layer": "relu2", "sample": SAMPLE}),
    Step("The embedding before and after training",
         "A low-dimensional embedding of the features, coloured by class: before training the classes overlap; "
         "press play to watch them separate as the network trains.",
         "evolution", {"views": "evolution", "evolution.layer": "relu4", "evolution.embedding": "pca"}),
    Step("Filters (weights)",
         "The filter kernels of a conv layer, useful for CNN kernels, not for fully connected layers. After a "
         "successful training they are typically smooth and diverse: drag the epoch slider to see them form.",
         "weights", {"views": "weights"}),
    Step("Approximate inversion",
         "Reconstruct the input from one feature channel: what information does the channel focus on? "
         "(Zeiler and Fergus 2014.)",
         "inversion", {"views": "inversion", "sample": SAMPLE, "inversion.layer": "relu2"}),
    Step("Occlusion",
         "Perturbation-based attribution: slide a grey box over the image and record the probability of the correct "
         "class with the box centred at each pixel. Where it drops, the model was looking.",
         "attribution", {"views": "attribution", "sample": SAMPLE, "methods": "occlusion"}),
    Step("Gradients and SmoothGrad",
         "Gradient-based attribution: the derivative of the class probability with respect to the input pixels. "
         "Which parts of the input is the class sensitive to? SmoothGrad removes noise by adding noise "
         "(Smilkov et al. 2017).",
         "attribution", {"views": "attribution", "sample": SAMPLE, "methods": "saliency,smoothgrad"}),
    Step("How faithful is each map",
         "The maps disagree, so test them: delete the pixels a map calls most important and watch the class "
         "probability fall; a map that points at what the model uses beats a random order. Hover a curve to see the "
         "image at that step.",
         "faithfulness", {"views": "attribution,faithfulness", "sample": SAMPLE,
                          "methods": "occlusion,saliency,smoothgrad,integrated_gradients,gradcam"}),
    Step("Inputs that maximize a class",
         "Optimize an input, starting from noise, until the network's response for one class is as high as it can "
         "be: a local maximum of the response shows what the class means to the model (Yosinski et al. 2015).",
         "maximize", {"views": "maximize", "maximize.run": 1}),
    Step("Inputs that maximize the error",
         "Adversarial examples: a change of every pixel too small to see makes the model say another class, "
         "with high confidence (Goodfellow et al. 2015).",
         "adversarial", {"views": "adversarial", "sample": SAMPLE, "attack.method": "pgd"}),
)

URL_STATE = [Entry("tour", STEP, "data", Number(1, len(STEPS), optional=True, integer=True))]


def steps_for(views: set[str]) -> list[Step]:
    """The steps whose view this installation has."""
    return [step for step in STEPS if step.view in views]


def step_link(steps: list[Step], number: int, layers: list[str]) -> str:
    """The link of step ``number`` (1-based) of ``steps``: its state and ``tour=number``."""
    query = {key: value for key, value in steps[number - 1].query.items()
             if key not in LAYER_KEYS or value in layers}
    return "?" + urlencode({**query, "tour": number}, quote_via=quote, safe=",")


def banner(steps: list[Step], number, layers: list[str]) -> tuple:
    """The banner's children and style for step ``number`` (hidden outside the tour)."""
    if not isinstance(number, int) or not 1 <= number <= len(steps):
        return [], {"display": "none"}
    step = steps[number - 1]
    back = html.A("← Back", id=BACK, className="button tour-nav", href=step_link(steps, number - 1, layers)) \
        if number > 1 else html.Span("← Back", id=BACK, className="button tour-nav tour-nav-off")
    forward = html.A("Next →", id=NEXT, className="button button-active tour-nav",
                     href=step_link(steps, number + 1, layers)) \
        if number < len(steps) else html.Span("Next →", id=NEXT, className="button tour-nav tour-nav-off")
    return [
        html.Div([html.Span(f"Guided tour · step {number} of {len(steps)}", className="tour-count"),
                  html.A("leave the tour", href="?", className="tour-leave")], className="tour-head"),
        html.H2(step.title, className="tour-title"),
        html.P(step.text, className="tour-text"),
        html.Div([back, forward], className="tour-buttons"),
    ], {}


def header(context: ViewContext) -> html.A:
    """The link that starts the tour (in the page's header)."""
    steps = steps_for({view.NAME for view in context.views})
    return html.A("▶ Guided tour", id=START, href=step_link(steps, 1, list(context.meta.layers)) if steps else "?",
                  className="pill tour-start", title="walk a class through the course, one step per screen")


def layout(context: ViewContext) -> html.Div:
    return html.Div([
        dcc.Store(id=STEP, data=None),
        html.Div(id=BANNER, className="tour-banner card", style={"display": "none"}),
    ], className="tour")


def register(app, context: ViewContext) -> None:
    steps = steps_for({view.NAME for view in context.views})
    layers = list(context.meta.layers)

    @app.callback(Output(BANNER, "children"), Output(BANNER, "style"), Input(STEP, "data"))
    def show_step(number):
        return banner(steps, number, layers)
