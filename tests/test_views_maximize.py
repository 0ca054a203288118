"""The maximize view as plain functions: controls -> job request, the job run in this process, result -> figures."""
from __future__ import annotations

import re

import numpy as np
import pytest

from compute import maximize
from compute.maximize.transforms import suggested_transforms
from compute.errors import Cancelled
from compute.jobs.table import run
from compute.specs.source import Source
from dashboard.views import maximize as view
from dashboard.views.panel import Message, Request


def ask(context, clicks=1, mode="one", kind="class", combine="none", second="9", whole_layer="classes",
        parameterization="fourier", transforms=tuple(maximize.TRANSFORMS), regularizers=(), objective=None,
        parameterization_params=None, transform_params=None, regularizer_params=None, steps=16, n=1, seed=0, lr=0.05):
    """The view's request as the panel calls it; ``*_params``: {(method, name): value} as the controls hold them."""
    def pairs(panel, given):
        given = given or {}
        return [value for value in given.values()], [panel.control_id(m, name) for m, name in given]

    return view.maximize_request(context)(
        clicks, mode, kind, combine, second, whole_layer, parameterization, list(transforms), list(regularizers),
        *pairs(view.objectives_ids, objective), *pairs(view.parameterizations, parameterization_params),
        *pairs(view.transforms, transform_params), *pairs(view.regularizers, regularizer_params),
        *pairs(view.run_settings, {("run", "steps"): steps, ("run", "n"): n, ("run", "seed"): seed, ("run", "lr"): lr}))


def heatmap_tile(figure, k: int, side: int = 32) -> np.ndarray:
    """Tile ``k`` of a maximize grid's grey canvas, where the label trace says it starts."""
    canvas = np.asarray(figure.data[0].z, dtype=np.float32)
    top, left = next(t for t in figure.data if t.name == "image labels").customdata[k]
    return canvas[top : top + side, left : left + side]


def test_nothing_runs_before_run_is_pressed(context):
    assert ask(context, clicks=0) is None
    assert ask(context, clicks=None) is None


def test_a_class_difference_request_carries_the_tables_settings(context):
    request = ask(context, second="8", combine="difference", objective={("class", "target"): "3"},
                  regularizers=["blur"], regularizer_params={("blur", "every"): 6}, steps=40, n=3, seed=5)
    assert isinstance(request, Request) and request.job == "maximize.run"
    params = request.params
    assert params["objective"] == ("difference", ("class", 3), ("class", 8))
    assert (params["steps"], params["n"], params["seed"]) == (40, 3, 5)
    # Transforms start at the model's own scale; the regularizer's unset parameters keep their defaults.
    assert params["transforms"] == suggested_transforms(32, 32)
    assert params["regularizers"] == {"blur": {"every": 6, "sigma": 0.5}}
    assert params["parameterization"] == "fourier" and params["parameterization_params"] == {"decay_power": 1.0,
                                                                                               "init_scale": 0.01}
    assert request.context["titles"] == ["class 3 − class 8"] * 3


def test_no_transforms_chosen_means_none_not_the_defaults(context):
    assert ask(context, transforms=()).params["transforms"] == {}


def test_a_value_out_of_range_is_clamped_and_said(context):
    request = ask(context, steps=99999, transform_params={("jitter", "pixels"): 500})
    assert request.params["steps"] == 4096 and request.params["transforms"]["jitter"] == {"pixels": 32}
    grid, curves, details, notes = view.render_partial({"images": np.zeros((1, 1, 32, 32), np.uint8),
                                                        "history": np.zeros((1, 1)), "step": 1}, request.context)
    said = " ".join(note.children for note in notes)
    assert "steps 99999 is outside 1..4096" in said and "pixels 500 is outside 0..32" in said


def test_channel_and_neuron_requests_check_the_layer_sizes(context):
    channel = ask(context, kind="channel", objective={("channel", "layer"): "conv2", ("channel", "target"): 7})
    assert channel.params["objective"] == ("channel", "conv2", 7)
    too_far = ask(context, kind="channel", objective={("channel", "layer"): "conv1", ("channel", "target"): 20})
    assert isinstance(too_far, Message) and "conv1 has 16 channels" in too_far.text
    neuron = ask(context, kind="neuron", objective={("neuron", "layer"): "relu3", ("neuron", "target"): 2,
                                                    ("neuron", "y"): 3, ("neuron", "x"): 4})
    assert neuron.params["objective"] == ("neuron", "relu3", 2, 3, 4)
    outside = ask(context, kind="neuron", objective={("neuron", "layer"): "relu3", ("neuron", "y"): 9})
    assert isinstance(outside, Message) and "8×8" in outside.text


def test_a_whole_layer_request_names_one_image_per_channel(context):
    request = ask(context, mode="layer", whole_layer="conv1", seed=2)
    assert request.job == "maximize.layer" and request.params["layer"] == "conv1" and request.params["seed"] == 2
    assert request.context["titles"] == [f"conv1 ch {k}" for k in range(16)]
    assert ask(context, mode="layer", whole_layer="classes").context["titles"][3] == "class 3"


def test_the_rendered_images_are_the_jobs_and_the_ratio_is_values_over_best(context):
    request = ask(context, objective={("class", "target"): "4"}, steps=24, n=2, seed=11)
    result = run(Source(), request.job, request.params)
    grid, curves, details, notes = view.render(result, request.context)
    for k in range(2):
        np.testing.assert_allclose(heatmap_tile(grid, k), result["images"][k, 0], atol=1e-6)
    ratios = result["values"] / result["best_values"]
    labels = grid.data[1].text
    for k in range(2):
        shown = float(re.search(r"([0-9.]+)× best image", labels[k]).group(1))
        assert shown == pytest.approx(ratios[k], abs=0.005)
        assert f"→ {result['class_names'][result['top_classes'][k, 0]]}" in labels[k]
    np.testing.assert_allclose(np.asarray(curves.data[1].y, dtype=np.float32), result["history"][:, 1], rtol=1e-6)
    assert "2 starts (seeds 11–12)" in grid.layout.title.text and "step 24/24" in grid.layout.title.text
    # Per image: the image, the best data-set image beside it (the one the job found), and the top-5.
    assert len(details) == 2
    comparison, top5 = details[1].children[0].figure, details[1].children[1].figure
    np.testing.assert_allclose(np.asarray(comparison.data[0].z, dtype=np.float32), result["images"][1, 0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(comparison.data[1].z, dtype=np.float32), result["best_images"][1, 0],
                               atol=1e-6)
    assert f"#{result['best_indices'][1]}" in str(comparison.layout.annotations[1].text)
    np.testing.assert_allclose(sorted(top5.data[0].x, reverse=True), result["top_probabilities"][1], rtol=1e-6)


def test_the_live_preview_draws_the_partial_images_and_curve(context):
    request = ask(context, n=2, steps=100)
    previews = np.arange(2 * 32 * 32, dtype=np.int64).reshape(2, 1, 32, 32) % 256
    history = np.linspace(0, 5, 20, dtype=np.float32).reshape(10, 2)
    # As a transport may deliver it: nested lists.
    partial = {"images": previews.tolist(), "history": history.tolist(), "step": 10}
    grid, curves, details, notes = view.render_partial(partial, request.context)
    np.testing.assert_allclose(heatmap_tile(grid, 1), previews[1, 0] / 255.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(curves.data[0].y, dtype=np.float32), history[:, 0])
    assert "step 10/100" in grid.layout.title.text and details is None


def test_a_cancelled_run_keeps_and_shows_its_last_images(context):
    request = ask(context, objective={("class", "target"): "2"}, steps=400, seed=21)
    partials = []

    def progress(fraction, text, partial=None):
        if partial is not None:
            partials.append(partial)
            if partial["step"] >= 24:
                raise Cancelled("maximize.run")

    result = run(Source(), request.job, request.params, progress)
    assert result["cancelled"] and result["steps_done"] == partials[-1]["step"]
    grid, curves, details, notes = view.render(result, request.context)
    np.testing.assert_allclose(heatmap_tile(grid, 0), result["images"][0, 0], atol=1e-6)
    assert len(curves.data[0].y) == result["steps_done"] and details is None
    assert f"step {result['steps_done']}/400" in grid.layout.title.text


def test_a_whole_layer_renders_a_grid_and_the_best_images_beside_it(context):
    request = ask(context, mode="layer", whole_layer="conv1", steps=8, seed=3)
    result = run(Source(), request.job, request.params)
    grid, curves, details, notes = view.render(result, request.context)
    for k in (0, 5, 15):
        np.testing.assert_allclose(heatmap_tile(grid, k), result["images"][k, 0], atol=1e-6)
    assert list(grid.data[1].text[5].split("<br>"))[0] == "conv1 ch 5"
    best = details[0].figure
    np.testing.assert_allclose(heatmap_tile(best, 5), result["best_images"][5, 0], atol=1e-6)
    assert best.data[1].text[5].startswith(f"#{result['best_indices'][5]}:")
    assert [trace.name for trace in curves.data][-1] == "mean"


# ------------------------------------------------------------------------------ an outside judge of class images

def _layout_value(component, component_id):
    """The ``value`` of the component with ``component_id`` in a layout tree (None when absent)."""
    if getattr(component, "id", None) == component_id:
        return component.value
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children] if children is not None else []:
        found = _layout_value(child, component_id)
        if found is not None:
            return found
    return None


class ScanJudge:
    """Reads 32x32 images as the 8x8 scans they would come from, by a classifier that never saw the model.

    The digits are scikit-learn's 8x8 scans upsampled bilinearly (compute/data.py): the least-squares inverse of that
    upsampling (its pseudo-inverse) brings a 32x32 image back to 8x8 (a data image to its own scan exactly). Then a
    5-nearest-neighbour classifier of the 1,797 raw scans reads it, and its distance to the nearest scan is compared
    with how near the scans lie to each other (the 99th percentile of each scan's distance to its nearest other scan).
    """

    def __init__(self):
        import torch
        from sklearn.datasets import load_digits
        from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

        bunch = load_digits()
        self.scans, labels = bunch.images.reshape(-1, 64) / 16.0, bunch.target
        basis = torch.eye(64, dtype=torch.float64).reshape(64, 1, 8, 8)
        upsampling = torch.nn.functional.interpolate(basis, size=(32, 32), mode="bilinear", align_corners=False)
        self.shrink = np.linalg.pinv(upsampling.reshape(64, 1024).T.numpy())  # (64, 1024)
        self.nearest = NearestNeighbors(n_neighbors=2).fit(self.scans)
        self.threshold = float(np.percentile(self.nearest.kneighbors(self.scans)[0][:, 1], 99))
        self.classifier = KNeighborsClassifier(n_neighbors=5).fit(self.scans, labels)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(classes read, distance to the nearest scan) of images (n, 1, 32, 32) in [0, 1]."""
        small = np.clip(np.asarray(images, dtype=np.float64).reshape(len(images), 1024) @ self.shrink.T, 0, 1)
        return self.classifier.predict(small), self.nearest.kneighbors(small, n_neighbors=1)[0][:, 0]


def test_the_judge_reads_the_scans_themselves_and_their_class_means():
    from compute import data

    judge, digits = ScanJudge(), data.load("digits")
    read, distance = judge(digits.images[:200].numpy())
    assert (read == digits.labels[:200].numpy()).mean() > 0.97 and distance.max() < 1e-5  # a data image is its scan
    assert judge.threshold == pytest.approx(1.66, abs=0.01)
    means = np.stack([digits.images[digits.labels == c].mean(0).numpy() for c in range(10)])
    read, distance = judge(means)
    assert (read == np.arange(10)).all() and distance.max() < 1.2


def test_the_pages_class_images_look_like_their_digits_to_a_judge_that_is_not_the_model(context):
    """With every control at its default, "a whole layer at once: every class" gives ten images; measured: all ten
    read as their digit by the scans' classifier, 0.8-1.5 from the nearest scan (scans lie within 1.66 of another).
    Lucent's Fourier images with the same settings (the old default) are also read right but lie 2.9-4.3 away:
    black-and-white blobs no scan resembles."""
    layout = view.layout(context)
    parameterization = _layout_value(layout, view.PARAMETERIZATION)
    assert parameterization == "pca"
    defaults = {spec.name: spec.default for spec in maximize.RUN_PARAMS}
    judge = ScanJudge()
    found = {}
    for chosen in (parameterization, "fourier"):
        request = ask(context, mode="layer", whole_layer="classes", parameterization=chosen,
                      transforms=_layout_value(layout, view.transforms.picker_id), regularizers=(),
                      steps=defaults["steps"], seed=defaults["seed"], lr=defaults["lr"])
        result = run(Source(), request.job, request.params)
        read, distance = judge(result["images"])
        found[chosen] = (read == np.arange(10)) & (distance <= judge.threshold)
        print(f"\n{chosen}: read {read.tolist()}, nearest scan {np.round(distance, 2).tolist()}")
        assert (result["top_classes"][:, 0] == np.arange(10)).all()  # the model reads every one as its class
    assert found["pca"].sum() >= 8
    assert found["fourier"].sum() <= 2
