"""Every step of the guided tour proves its claim on the step's own setup, on the built-in model.

The page is built from each step's link (``?tour=N``, as a class opens it), every background panel of the step's
view is asked what it would compute from those controls (its own ``request`` function, captured as the view
registers it), and the job runs through ``compute.jobs.table.run`` exactly as the compute process runs it. The
claims are then measured on the arrays the page would draw: a retrained model, or a changed default anywhere, that
breaks a step's sentence fails here, naming the step. The settings live in one table, ``dashboard.views.tour.STEPS``.

Thresholds, and what the built-in model measured when they were set (3x3 first-layer kernels, 98.3% test accuracy):
  1 relu2 of image #7: 44% of activations exactly 0; 5 dead channels of 32 over the data set.
  2 logits, PCA: k-NN accuracy of the 2-D layout 0.37 untrained -> 0.66 trained (test accuracy 0.98).
  3 conv2: smoothness 0.19 (white noise 0.19) -> 0.34; filters' correlation before/after 0.44 on average.
  4 relu2, most active channel of #7: the reconstruction's energy lies on the digit's strokes.
  5 occlusion of #7 with a 12 px box: p(7) drops by up to 0.70, on the stroke (0.17 with the default 8 px box).
  6 SmoothGrad (64 samples) of #7: total variation 0.78 of the plain gradient's.
  7 class 0 maximized with the page's defaults: read as 0 at 100%, 1.9x the best real image's logit.
  8 PGD 16/255, 20 steps, towards 5, image #292 (a 0 at 100%): "5" at 98%; at the logits the star lands among the
    5s, 2.3 layout radii from its original.
"""
from __future__ import annotations

import numpy as np
import pytest
from dash import ALL, MATCH

from compute.jobs.table import run
from dashboard.app import _page
from dashboard.views import VIEWS, links, tour
from dashboard.views.panel import BackgroundPanel, Message, Request

STEPS = tour.steps_for({view.NAME for view in VIEWS})
WILDCARDS = (type(ALL), type(MATCH))


class _RecordingApp:
    """Enough of a Dash app for ``view.register``: callbacks and routes are accepted and not wired."""

    def __init__(self):
        import flask

        self.server = flask.Flask(__name__)

    def callback(self, *args, **kwargs):
        return lambda function: function

    def clientside_callback(self, *args, **kwargs):
        return None


@pytest.fixture(scope="module")
def panels(context) -> dict[str, tuple[BackgroundPanel, object]]:
    """Every background panel of the page with the ``request`` function its view registers it with."""
    found = {}

    def record(self, app, context, request, render, render_partial=None):
        found[self.name] = (self, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BackgroundPanel, "register", record)
        app = _RecordingApp()
        for view in VIEWS:
            view.register(app, context)
    return found


def _built_from(context, search: str):
    import flask

    server = flask.Flask(__name__)
    with server.test_request_context("/_dash-layout", headers={"Referer": f"http://localhost/{search}"}):
        return links.restoring(_page(context), context)()


def _value(components: list, dependency):
    """What Dash hands a callback for ``dependency`` (an Input or State) in the page ``components``."""
    wanted, prop = dependency.component_id, dependency.component_property
    if isinstance(wanted, dict) and any(isinstance(v, WILDCARDS) for v in wanted.values()):
        fixed = {k: v for k, v in wanted.items() if not isinstance(v, WILDCARDS)}
        matched = [c for c in components if isinstance(getattr(c, "id", None), dict)
                   and all(c.id.get(k) == v for k, v in fixed.items()) and set(c.id) == set(wanted)]
        return [c.id if prop == "id" else getattr(c, prop, None) for c in matched]
    for component in components:
        if getattr(component, "id", None) == wanted:
            return getattr(component, prop, None)
    raise KeyError(f"{wanted} is not in the page")


def step_results(context, panels, number: int, panel_names: list[str]) -> dict[str, dict]:
    """The results of ``panel_names`` for step ``number`` opened from its bare link: {panel: (result, request)}."""
    tree = _built_from(context, f"?tour={number}")
    components = [tree, *tree._traverse()]
    results = {}
    for name in panel_names:
        panel, request = panels[name]
        asked = request(*[_value(components, dependency) for dependency in [*panel.inputs, *panel.states]])
        assert isinstance(asked, Request), f"step {number}: panel {name} computes nothing ({asked!r})"
        results[name] = (run(context.config.source(), asked.job, asked.params), asked)
    return results


def _step(number: int) -> tour.Step:
    return STEPS[number - 1]


def _number(title: str) -> int:
    """The step's number by its title (the numbers move when a step is added)."""
    return next(number for number, step in enumerate(STEPS, start=1) if step.title.startswith(title))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def _layout_radius(coords: np.ndarray) -> float:
    centred = coords - coords.mean(axis=0)
    return float(np.sqrt((centred ** 2).sum(axis=1).mean()))


def test_every_step_opens_its_view_with_an_image_selected(context):
    for number, step in enumerate(STEPS, start=1):
        tree = _built_from(context, f"?tour={number}")
        components = [tree, *tree._traverse()]
        assert step.view in _value(components, type("D", (), {"component_id": "open-views",
                                                             "component_property": "value"}))
        selection = next(c for c in components if getattr(c, "id", None) == "selection").data
        assert selection == {"index": step.query["sample"]}, number


def test_step_1_features_are_sparse_and_some_are_dead(context, panels):
    results = step_results(context, panels, _number("Features"), ["details", "channels-stats"])
    details, _ = results["details"]
    stats, asked = results["channels-stats"]
    assert asked.params["layer"] == _step(_number("Features")).query["layer"]
    assert details["zero_fraction"] >= 0.3  # measured 0.44: most of a map is silent
    assert len(stats["dead_channels"]) >= 1, "the step says we can find dead features: this layer has none"


def test_step_2_the_classes_separate_as_the_network_trains(context, panels):
    result, asked = step_results(context, panels, _number("The embedding"), ["evolution"])["evolution"]
    assert (asked.params["layer"], asked.params["method"]) == ("logits", "pca")
    knn = np.asarray(result["knn_layout"])
    assert result["epochs"][0] == 0 and len(knn) == len(result["epochs"])
    assert knn[0] < 0.5, "before training the classes should overlap in the 2-D layout"
    assert knn[-1] >= knn[0] + 0.2, f"the classes barely separate with training: k-NN accuracy {knn.round(2)}"
    assert result["test_accuracy"][-1] >= 0.9


def test_step_3_the_filters_become_smooth_and_visibly_change(context, panels):
    result, asked = step_results(context, panels, _number("Filters"), ["weights"])["weights"]
    assert asked.params["layer"] == _step(_number("Filters")).query["weights.layer"]
    smoothness, noise = np.asarray(result["mean_smoothness"]), float(result["noise_smoothness"])
    assert abs(smoothness[0] - noise) < 0.05, "untrained filters should be about as rough as white noise"
    assert smoothness[-1] >= noise + 0.08, f"trained filters are not clearly smoother than noise: {smoothness[-1]:.3f}"
    grids = np.asarray(result["grids"], dtype=np.float64)
    before, after = grids[0].reshape(len(grids[0]), -1), grids[-1].reshape(len(grids[-1]), -1)
    alike = np.mean([_correlation(b, a) for b, a in zip(before, after)])
    assert alike < 0.7, f"the filters drawn before and after training look alike (correlation {alike:.2f})"


def test_step_4_a_channel_reconstructs_the_digit(context, panels):
    result, _ = step_results(context, panels, _number("Approximate inversion"), ["inversion"])["inversion"]
    image, reconstruction = np.asarray(result["image"]), np.abs(np.asarray(result["reconstruction"]))
    stroke = image.mean(axis=0) > 0.5
    energy = reconstruction.sum(axis=0)
    assert energy.max() > 0
    # The channel's reconstruction is brighter on the digit's strokes than off them.
    assert energy[stroke].mean() >= 2.0 * energy[~stroke].mean()


def test_step_5_occlusion_drops_where_the_digit_is(context, panels):
    result, asked = step_results(context, panels, _number("Occlusion"), ["attribution"])["attribution"]
    assert list(asked.params["methods"]) == ["occlusion"]
    occlusion = result["maps"]["occlusion"]
    drop, image = np.asarray(occlusion["map"]), np.asarray(result["image"]).mean(axis=0)
    assert result["target"] == result["label"]
    assert drop.max() >= 0.5, f"covering any part of the digit barely changes p(class): largest drop {drop.max():.2f}"
    # The share of the digit's ink the box covers, centred at each pixel (clipped at the border, as occlusion does).
    box = int(asked.params["methods"]["occlusion"]["box"])
    covered = np.zeros_like(drop, dtype=np.float64)
    for row in range(drop.shape[0]):
        for col in range(drop.shape[1]):
            top, left = row - box // 2, col - box // 2
            covered[row, col] = image[max(top, 0):max(top + box, 0), max(left, 0):max(left + box, 0)].sum()
    covered /= image.sum()
    where = np.unravel_index(np.argmax(drop), drop.shape)
    assert covered[where] >= 0.2, f"the largest drop is off the digit: the box there covers {covered[where]:.0%} of it"
    # Not everywhere on the digit (the 7's bar matters less than its stem), but the boxes that matter cover it.
    largest = drop >= np.quantile(drop, 0.95)
    assert covered[largest].mean() > covered.mean(), \
        f"the boxes with the largest drops cover {covered[largest].mean():.0%} of the digit, any box {covered.mean():.0%}"


def _roughness(heat: np.ndarray) -> float:
    """Total variation of a map scaled to [0, 1]: how much it changes from pixel to pixel."""
    heat = np.abs(np.asarray(heat, dtype=np.float64))
    heat = heat / (heat.max() or 1.0)
    return float(np.abs(np.diff(heat, axis=0)).mean() + np.abs(np.diff(heat, axis=1)).mean())


def test_step_6_smoothgrad_is_smoother_than_the_gradient(context, panels):
    result, asked = step_results(context, panels, _number("Gradients and SmoothGrad"), ["attribution"])["attribution"]
    assert list(asked.params["methods"]) == ["saliency", "smoothgrad"]
    saliency, smooth = result["maps"]["saliency"]["map"], result["maps"]["smoothgrad"]["map"]
    ratio = _roughness(smooth) / _roughness(saliency)
    assert ratio <= 0.85, f"SmoothGrad's map is about as noisy as the gradient's (total variation ratio {ratio:.2f})"


def test_step_7_the_class_image_is_read_as_its_class_beyond_any_real_image(context, panels):
    result, asked = step_results(context, panels, _number("Inputs that maximize a class"), ["maximize"])["maximize"]
    (kind, target), = [asked.params["objective"]]
    assert kind == "class"
    assert int(result["top_classes"][0][0]) == target and float(result["top_probabilities"][0][0]) >= 0.9
    assert float(result["ratios"][0]) > 1.0, "the optimized image should beat the best real image's response"


def test_step_8_a_tiny_change_fools_the_model_and_the_star_jumps(context, panels):
    step = _step(_number("Inputs that maximize the error"))
    results = step_results(context, panels, _number("Inputs that maximize the error"), ["adversarial", "scatter"])
    attack, asked = results["adversarial"]
    assert (asked.params["index"], asked.params["method"], asked.params["target"]) == (
        step.query["sample"], "pgd", step.query["attack.target"])
    assert asked.params["epsilon"] == pytest.approx(step.query["attack.epsilon"] / 255)
    assert attack["before"]["predicted"] == attack["label"] and attack["before"]["confidence"] >= 0.9
    assert attack["fooled"] and attack["after"]["predicted"] == step.query["attack.target"]
    assert attack["after"]["confidence"] >= 0.9, f"fooled, but only at {attack['after']['confidence']:.0%}"
    assert attack["linf"] <= step.query["attack.epsilon"] / 255 + 1e-6
    scatter, _ = results["scatter"]
    assert asked.params["layer"] == step.query["layer"]
    coords, labels = np.asarray(scatter["coords"], dtype=np.float64), np.asarray(scatter["labels"])
    star, start = np.asarray(attack["points"]["adversarial"]), np.asarray(attack["points"]["original_placed"])
    jump = np.linalg.norm(star - start) / _layout_radius(coords)
    assert jump >= 0.5, f"the star moves only {jump:.2f} layout radii: nobody sees it jump"
    nearest = labels[np.argsort(((coords - star) ** 2).sum(axis=1))[:15]]
    assert np.bincount(nearest).argmax() == attack["after"]["predicted"], "the star does not land among its class"
