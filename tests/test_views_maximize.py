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


def heatmap_tile(figure, k: int, columns: int, side: int = 32) -> np.ndarray:
    """Tile ``k`` of a maximize grid's grey canvas (tiles ``gap`` NaN pixels apart)."""
    canvas = np.asarray(figure.data[0].z, dtype=np.float32)
    gap = max(1, round(0.08 * side))
    row, column = divmod(k, columns)
    return canvas[row * (side + gap): row * (side + gap) + side, column * (side + gap): column * (side + gap) + side]


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
        np.testing.assert_allclose(heatmap_tile(grid, k, columns=2), result["images"][k, 0], atol=1e-6)
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
    np.testing.assert_allclose(heatmap_tile(grid, 1, columns=2), previews[1, 0] / 255.0, atol=1e-6)
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
    np.testing.assert_allclose(heatmap_tile(grid, 0, columns=1), result["images"][0, 0], atol=1e-6)
    assert len(curves.data[0].y) == result["steps_done"] and details is None
    assert f"step {result['steps_done']}/400" in grid.layout.title.text


def test_a_whole_layer_renders_a_grid_and_the_best_images_beside_it(context):
    request = ask(context, mode="layer", whole_layer="conv1", steps=8, seed=3)
    result = run(Source(), request.job, request.params)
    grid, curves, details, notes = view.render(result, request.context)
    columns = 4  # 16 tiles in a square grid
    for k in (0, 5, 15):
        np.testing.assert_allclose(heatmap_tile(grid, k, columns), result["images"][k, 0], atol=1e-6)
    assert list(grid.data[1].text[5].split("<br>"))[0] == "conv1 ch 5"
    best = details[0].figure
    np.testing.assert_allclose(heatmap_tile(best, 5, columns), result["best_images"][5, 0], atol=1e-6)
    assert best.data[1].text[5].startswith(f"#{result['best_indices'][5]}:")
    assert [trace.name for trace in curves.data][-1] == "mean"
