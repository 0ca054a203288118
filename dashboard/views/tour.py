"""The guided tour: the course's story in order, one step per screen, each step a link (``?tour=N``).

A step is a sentence or two from the course's slides and the URL state that sets up the views it talks about
(see :mod:`dashboard.views.links`): the page is built from that link, so Back and Next are plain links, the
browser's own back and forward work, and an instructor can send any step's address to the class. A bare ``?tour=N``
is the whole step too: :func:`link_defaults` fills in the step's settings that the link does not name. On the
page, the step's view is brought on screen below the banner, which stays at the top of the screen while the class
scrolls (``FOLLOW_VIEW``).

``STEPS`` is the one table of the tour's settings. Each step's claim ("the classes separate", "a tiny change fools
the model") was measured on the built-in model with exactly these settings, and tests/test_tour_claims.py checks
every claim again through the jobs the page runs for the step, so a retrained model that breaks one is caught.
Steps whose view is not installed are left out; a layer the model does not have is left to the view's default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from dash import Input, Output, State, dcc, html

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
STEP_VIEWS = "tour-step-views"  # the view of every step, in order (read by FOLLOW_VIEW in the browser)
LAYER_KEYS = ("layer", "evolution.layer", "inversion.layer", "channels.layer", "weights.layer")
SAMPLE = 7  # one image followed through the steps: a clear 7 the model reads at 100%
# Occlusion's box for the digits: the default 8 px grey box covers too little of #7 to matter (p(7) drops by 0.04
# at most on the built-in model with 5x5 first-layer filters, 0.17 with a 12 px box); a 16 px box drops it by 0.96
# where the stroke is (measured; tests/test_tour_claims.py measures it again). SmoothGrad averages 64 noisy copies (its map then varies
# from pixel to pixel 0.78 times as much as the plain gradient's; 0.82 with the default 32).
# Step 8's attack, chosen by measurement on the built-in model (tests/test_tour_claims.py measures it again): image
# #292, a 0 read at 100%, pushed by 20-step PGD within 16/255 towards a 5 becomes a 5 at 98%; image #7 does not flip
# at 16/255 (99% "7"). At the logits the attacked image lands among the 5s, 2.3 layout radii from its original;
# at relu2 it stays on its original (the early layers barely change).
ATTACK_SAMPLE, ATTACK_TARGET, ATTACK_EPSILON, ATTACK_STEPS = 292, 5, 16, 20


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    view: str  # the view the step needs ("explore" for the scatter, always there)
    query: dict = field(default_factory=dict)


STEPS = (
    Step("Features (activations)",
         "Each point is one image, placed by its activations at a layer; the selected image shows its feature maps "
         "(above). In good training, features are usually sparse, and we can find “dead” features that never "
         "activate: below, each channel of relu2 over the whole data set, and the dead ones.",
         "channels", {"views": "channels", "layer": "relu2", "sample": SAMPLE}),
    Step("The embedding before and after training",
         "The logits of every image at every saved epoch, in two dimensions (PCA), coloured by class: before "
         "training the classes overlap; press play to watch them separate as the network trains. The k-NN "
         "accuracy under the scatter counts how well they separate.",
         "evolution", {"views": "evolution", "sample": SAMPLE, "evolution.layer": "logits",
                       "evolution.embedding": "pca"}),
    Step("Filters (weights)",
         "The filter kernels of a conv layer, useful for CNN kernels, not for fully connected layers. After a "
         "successful training they are typically smooth and diverse: drag the epoch slider to see them form from "
         "noise, and read their smoothness against white noise's.",
         "weights", {"views": "weights", "sample": SAMPLE, "weights.layer": "conv2"}),
    Step("Approximate inversion",
         "Reconstruct the input from one feature channel: what information does the channel focus on? "
         "(Zeiler and Fergus 2014.)",
         "inversion", {"views": "inversion", "sample": SAMPLE, "inversion.layer": "relu2"}),
    Step("Occlusion",
         "Perturbation-based attribution: slide a grey box over the image and record the probability of the correct "
         "class with the box centred at each pixel. Where it drops, the model was looking.",
         "attribution", {"views": "attribution", "sample": SAMPLE, "methods": "occlusion", "occlusion.box": 16}),
    Step("Gradients and SmoothGrad",
         "Gradient-based attribution: the derivative of the class probability with respect to the input pixels. "
         "Which parts of the input is the class sensitive to? SmoothGrad removes noise by adding noise "
         "(Smilkov et al. 2017).",
         "attribution", {"views": "attribution", "sample": SAMPLE, "methods": "saliency,smoothgrad",
                         "smoothgrad.samples": 64}),
    Step("How faithful is each map",
         "The maps disagree, so test them: delete the pixels a map calls most important and watch the class "
         "probability fall; a map that points at what the model uses beats a random order. Hover a curve to see the "
         "image at that step.",
         "faithfulness", {"views": "attribution,faithfulness", "sample": SAMPLE,
                          "methods": "occlusion,saliency,smoothgrad,integrated_gradients,gradcam"}),
    Step("Inputs that maximize a class",
         "Optimize an input, starting from noise, until the network's response for one class is as high as it can "
         "be: a local maximum of the response shows what the class means to the model (Yosinski et al. 2015).",
         "maximize", {"views": "maximize", "sample": SAMPLE, "maximize.run": 1}),
    Step("Inputs that maximize the error",
         f"Adversarial examples: changing every pixel by at most {ATTACK_EPSILON} of its 255 grey levels, a change "
         "under which we still see the same digit, makes the model say another class with high confidence "
         "(Goodfellow et al. 2015). In the scatter above (the logits), a star marks where the changed image lands: "
         "among the other class.",
         "adversarial", {"views": "adversarial", "sample": ATTACK_SAMPLE, "layer": "logits", "attack.method": "pgd",
                         "attack.epsilon": ATTACK_EPSILON, "attack.steps": ATTACK_STEPS,
                         "attack.target": ATTACK_TARGET}),
)

URL_STATE = [Entry("tour", STEP, "data", Number(1, len(STEPS), optional=True, integer=True))]


def steps_for(views: set[str]) -> list[Step]:
    """The steps whose view this installation has."""
    return [step for step in STEPS if step.view in views]


def step_query(step: Step, layers: list[str]) -> dict:
    """The step's settings, less a layer the model does not have."""
    return {key: value for key, value in step.query.items() if key not in LAYER_KEYS or value in layers}


def step_link(steps: list[Step], number: int, layers: list[str]) -> str:
    """The link of step ``number`` (1-based) of ``steps``: its state and ``tour=number``."""
    return "?" + urlencode({**step_query(steps[number - 1], layers), "tour": number}, quote_via=quote, safe=",")


def link_defaults(query: dict[str, str], context: ViewContext) -> dict[str, str]:
    """What a link to a step means without saying it (``links.restoring`` puts the link's own keys over these): a
    bare ``?tour=5`` is the whole step 5, its views open and its image selected."""
    steps = steps_for({view.NAME for view in context.views})
    number = query.get("tour", "")
    if not number.isdigit() or not 1 <= int(number) <= len(steps):
        return {}
    return {key: str(value) for key, value in step_query(steps[int(number) - 1], list(context.meta.layers)).items()}


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
                  html.H2(step.title, className="tour-title"),
                  html.A("leave the tour", href="?", className="tour-leave")], className="tour-head"),
        html.Div([html.P(step.text, className="tour-text"),
                  html.Div([back, forward], className="tour-buttons")], className="tour-body"),
    ], {}


def header(context: ViewContext) -> html.A:
    """The link that starts the tour (in the page's header)."""
    steps = steps_for({view.NAME for view in context.views})
    return html.A("▶ Guided tour", id=START, href=step_link(steps, 1, list(context.meta.layers)) if steps else "?",
                  className="pill tour-start", title="walk a class through the course, one step per screen")


def layout(context: ViewContext) -> html.Div:
    steps = steps_for({view.NAME for view in context.views})
    return html.Div([
        dcc.Store(id=STEP, data=None),
        dcc.Store(id=STEP_VIEWS, data=[step.view for step in steps]),
        html.Div(id=BANNER, className="tour-banner card", style={"display": "none"}),
    ], className="tour")


# Brings the step's view on screen: its section's top just below the banner (which sticks to the top of the screen),
# again whenever the page's height changes as figures arrive above or inside it, until the reader scrolls, clicks or
# types (then the page is theirs). Each step is a page of its own (Back and Next are links), so this runs once per
# step. The scatter's step ("explore") needs no scrolling: it is at the top.
FOLLOW_VIEW = """
function(step, views) {
    const none = window.dash_clientside.no_update;
    const view = Number.isInteger(step) && views ? views[step - 1] : null;
    if (window.featurescopeTourFollow) { window.featurescopeTourFollow.stop(); }
    if (!view || view === 'explore') { return none; }
    const section = () => Array.from(document.querySelectorAll('.view-section')).find(element => {
        try { return JSON.parse(element.id).name === view; } catch (error) { return false; }
    });
    let stopped = false;
    const place = () => {
        const element = section();
        if (stopped || !element || !element.checkVisibility()) { return; }
        const banner = document.getElementById('%(banner)s');
        const offset = (banner && banner.checkVisibility() ? banner.getBoundingClientRect().height : 0) + 10;
        const top = Math.max(0, Math.round(element.getBoundingClientRect().top + window.scrollY - offset));
        if (Math.abs(window.scrollY - top) > 2) { window.scrollTo({top: top, behavior: 'instant'}); }
    };
    const watch = new ResizeObserver(place);
    watch.observe(document.querySelector('.page') || document.body);
    const events = ['wheel', 'touchstart', 'keydown', 'mousedown'];
    const stop = () => {
        stopped = true;
        watch.disconnect();
        events.forEach(name => window.removeEventListener(name, stop, true));
    };
    events.forEach(name => window.addEventListener(name, stop, true));
    window.featurescopeTourFollow = {stop: stop, place: place};
    place();
    return none;
}
""" % {"banner": BANNER}


def register(app, context: ViewContext) -> None:
    steps = steps_for({view.NAME for view in context.views})
    layers = list(context.meta.layers)

    @app.callback(Output(BANNER, "children"), Output(BANNER, "style"), Input(STEP, "data"))
    def show_step(number):
        return banner(steps, number, layers)

    app.clientside_callback(FOLLOW_VIEW, Output(STEP_VIEWS, "modified_timestamp"), Input(STEP, "data"),
                            State(STEP_VIEWS, "data"))

