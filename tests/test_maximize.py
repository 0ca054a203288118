"""Tests of compute.maximize (activation maximisation) and components.maximize (its figures).

The built-in digits CNN is the model where a property needs a trained network (class images, channel images, the
job); tiny models built here and float64 copies elsewhere, so batched and one-by-one runs compare exactly.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from compute import activations
from compute.maximize import (OBJECTIVES, PARAMETERIZATIONS, REGULARIZERS, RUN_PARAMS, TRANSFORMS, best_in_data,
                              maximize, maximize_layer, objectives, ratios, resolve_settings, suggested_transforms)
from compute.maximize import transforms as T
from compute.maximize.param import build as build_parameterization
from compute.maximize.render import forward
from compute.errors import Cancelled
from compute.jobs.table import run
from compute.specs.source import Source

DIGITS = (1, 32, 32)


def small_cnn(seed: int = 0, channels: int = 1, size: int = 16, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * (size // 2) ** 2, classes),
    ).eval()


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def model64(trained_model):
    """The trained digits CNN in float64: batched and single runs then agree to rounding, not to float32 noise."""
    return copy.deepcopy(trained_model).double()


# ------------------------------------------------------------------------------------------------ the headline

def test_three_classes_from_noise_are_classified_as_that_class_with_probability_above_0_9(trained_model):
    classes = (0, 3, 7)
    result = maximize(trained_model, ("class", classes), steps=200, seed=0, image_shape=DIGITS)
    assert result.images.shape == (3, *DIGITS)
    assert float(result.images.min()) >= 0 and float(result.images.max()) <= 1
    probability = result.probabilities[torch.arange(3), torch.tensor(classes)]
    assert (probability > 0.9).all(), probability
    assert (result.values > result.start_values).all()
    assert (result.history[-1] > result.history[0]).all()
    assert result.history.shape == (200, 3)
    # values are the logits themselves (not the softmax): recompute them with a plain forward
    with torch.no_grad():
        logits = trained_model(result.images)
    assert torch.allclose(result.values, logits[torch.arange(3), torch.tensor(classes)], atol=1e-4)
    assert [top[0][0] for top in result.top_k()] == list(classes)


@pytest.mark.parametrize("parameterization", ["pixels", "maco"])
def test_every_parameterization_reaches_the_class(trained_model, parameterization):
    result = maximize(trained_model, ("class", 5), steps=60, seed=1, image_shape=DIGITS,
                      parameterization=parameterization)
    assert int(result.probabilities.argmax()) == 5
    assert float(result.values[0]) > float(result.start_values[0]) + 5


def test_channel_image_beats_its_start_clearly_and_is_compared_with_the_best_data_image(trained_model, digits):
    objective = ("channel", "conv2", 5)
    result = maximize(trained_model, objective, steps=100, seed=0, image_shape=DIGITS)
    assert float(result.values[0]) > 1.5 * float(result.start_values[0]) + 0.1
    best_value, best_index = best_in_data.uncached(trained_model, digits, objective)
    # independent reference: the spatial mean of conv2's channel 5 for every image, by hooks
    means = activations.extract(trained_model, digits.images, "conv2", pooled=True)[:, 5]
    assert int(best_index[0]) == int(means.argmax())
    assert float(best_value[0]) == pytest.approx(float(means.max()), rel=1e-5)
    ratio = float(ratios(result.values, best_value)[0])
    print(f"\nconv2 ch 5: reached {float(result.values[0]):.3f}, best digit #{int(best_index[0])} "
          f"{float(best_value[0]):.3f}: ratio {ratio:.2f}")
    assert ratio > 1.0  # an optimised input goes beyond any real digit


def test_best_in_data_does_not_depend_on_batch_size_and_agrees_for_a_whole_layer(trained_model, digits):
    objective = ("class", tuple(range(10)))
    small = best_in_data.uncached(trained_model, digits, objective, batch_size=37)
    large = best_in_data.uncached(trained_model, digits, objective, batch_size=512)
    assert torch.equal(small[1], large[1]) and torch.allclose(small[0], large[0], atol=1e-5)
    with torch.no_grad():
        logits = trained_model(digits.images)
    assert torch.equal(small[1], logits.argmax(0))


# ------------------------------------------------------------------------------------------------ objectives

def test_objectives_read_the_right_numbers_in_both_forms():
    model = small_cnn()
    images = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), activations.capture(model, ["3"]) as captured:
        logits = model(images)
        conv = captured["3"]
    def evaluate(spec, pairwise=False):
        built = objectives.build(spec)
        with torch.no_grad():
            outputs = forward(model, images, built)
        return built.pairwise(outputs) if pairwise else built.diagonal(outputs)
    assert torch.allclose(evaluate(("class", 2)), logits[:, 2])
    assert torch.allclose(evaluate(("channel", "3", 4)), conv[:, 4].mean(dim=(1, 2)))
    assert torch.allclose(evaluate(("neuron", "3", 4, 2, 5)), conv[:, 4, 2, 5])
    assert torch.allclose(evaluate(("difference", ("class", 1), ("class", 3))), logits[:, 1] - logits[:, 3])
    assert torch.allclose(evaluate(("sum", ("class", 1), ("channel", "3", 0))), logits[:, 1] + conv[:, 0].mean((1, 2)))
    # per-image targets: image k its own class; pairwise: every image against every target
    assert torch.allclose(evaluate(("class", [0, 2, 3])), logits[torch.arange(3), torch.tensor([0, 2, 3])])
    assert torch.allclose(evaluate(("class", [0, 2]), pairwise=True), logits[:, [0, 2]])
    assert hook_count(model) == 0


def test_objective_specs_from_json_lists_normalise_and_bad_ones_are_refused():
    assert objectives.normalize(["difference", ["class", 3], ["class", 8]]) == ("difference", ("class", 3), ("class", 8))
    assert objectives.normalize(["channel", "conv2", [0, 1]]) == ("channel", "conv2", (0, 1))
    assert objectives.describe(("difference", ("class", 3), ("class", 8))) == "class 3 − class 8"
    assert objectives.item(("channel", "conv2", (4, 7)), 1) == ("channel", "conv2", 7)
    for bad in [("logit", 3), ("class",), ("channel", "conv2"), ("sum", ("class", 1))]:
        with pytest.raises(ValueError):
            objectives.normalize(bad)
    model = small_cnn()
    with pytest.raises(ValueError, match="outside"):
        maximize(model, ("neuron", "3", 0, 99, 0), steps=1, image_shape=(1, 16, 16))
    with pytest.raises(activations.LayerError):
        maximize(model, ("channel", "nope", 0), steps=1, image_shape=(1, 16, 16))
    assert hook_count(model) == 0  # removed also when the objective raised mid-forward


def test_tables_list_every_piece_with_parameter_specs():
    assert set(OBJECTIVES) == {"class", "channel", "neuron", "sum", "difference"}
    assert set(PARAMETERIZATIONS) == {"fourier", "maco", "pixels"}
    assert {"pad", "jitter", "scale", "rotate"} <= set(TRANSFORMS)
    assert {"decay", "blur", "clip_norm", "clip_contribution", "total_variation"} <= set(REGULARIZERS)
    assert [p.name for p in RUN_PARAMS] == ["steps", "n", "seed", "lr", "parameterization"]
    assert suggested_transforms(32, 32)["jitter"]["pixels"] == 1 and suggested_transforms(224, 224)["jitter"]["pixels"] == 8
    settings = resolve_settings(DIGITS, regularizers={"blur": {"sigma": "0.7"}})
    assert settings["regularizers"]["blur"] == {"every": 4, "sigma": 0.7}
    with pytest.raises(ValueError, match="unknown regularizer"):
        resolve_settings(DIGITS, regularizers={"sharpen": {}})


@pytest.mark.parametrize("name", ["fourier", "maco", "pixels"])
def test_parameterizations_map_back_and_forth(name):
    like = torch.empty(0, dtype=torch.float64)
    generators = [torch.Generator().manual_seed(k) for k in range(2)]
    parameterization = build_parameterization(name, (3, 12, 16), generators, like)
    images = parameterization.images().detach()
    assert images.shape == (2, 3, 12, 16) and images.min() >= 0 and images.max() <= 1
    target = _noise(5, (2, 3, 12, 16)) * 0.8 + 0.1
    parameterization.assign(target)
    if name == "maco":  # a projection: the magnitude stays, the phase follows the target
        reached = parameterization.images().detach()
        assert torch.corrcoef(torch.stack([reached.flatten(), target.flatten()]))[0, 1] > 0.5
    else:  # an exact inverse
        assert torch.allclose(parameterization.images(), target, atol=1e-9)


# ------------------------------------------------------------------------------------------------ regularizers

def _noise(seed: int = 0, shape=(2, 3, 24, 24)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _high_frequency_energy(images: torch.Tensor) -> float:
    spectrum = torch.fft.rfft2(images - images.mean(dim=(2, 3), keepdim=True)).abs() ** 2
    fy = torch.fft.fftfreq(images.shape[2]).abs()[:, None]
    fx = torch.fft.rfftfreq(images.shape[3])[None, :]
    return float(spectrum[..., (fx.pow(2) + fy.pow(2)).sqrt() > 0.25].sum())


def test_blur_lowers_high_frequency_energy_and_runs_only_every_few_steps():
    images, center = _noise(), torch.full((3, 1, 1), 0.5, dtype=torch.float64)
    blurred = T.blur(images, None, step=3, center=center, every=4, sigma=1.0)
    assert _high_frequency_energy(blurred) < 0.2 * _high_frequency_energy(images)
    assert torch.allclose(blurred.mean(), images.mean(), atol=0.01)  # a blur moves energy, it does not add any
    assert torch.equal(T.blur(images, None, step=2, center=center, every=4, sigma=1.0), images)


def test_clipping_sets_the_smallest_norm_and_smallest_contribution_pixels_to_the_mean_colour():
    images, center = _noise(), torch.full((3, 1, 1), 0.5, dtype=torch.float64)
    clipped = T.clip_small_norm(images, None, 0, center, percentile=30)
    at_mean = (clipped == center).all(dim=1)  # (n, H, W)
    assert at_mean.float().mean(dim=(1, 2)).min() >= 0.29
    norms = (images - center).norm(dim=1)
    for k in range(len(images)):  # exactly the smallest ones of each image
        assert float(norms[k][~at_mean[k]].min()) >= float(norms[k][at_mean[k]].max())
    gradient = _noise(1) - 0.5
    clipped = T.clip_small_contribution(images, gradient, 0, center, percentile=50)
    at_mean = (clipped == center).all(dim=1)
    contribution = ((images - center) * gradient).sum(dim=1).abs()
    assert at_mean.float().mean() == pytest.approx(0.5, abs=0.01)
    for k in range(len(images)):
        assert float(contribution[k][~at_mean[k]].min()) >= float(contribution[k][at_mean[k]].max())


def test_decay_shrinks_the_distance_to_the_mean_colour_by_its_strength():
    images, center = _noise(), torch.full((3, 1, 1), 0.4, dtype=torch.float64)
    decayed = T.decay(images, None, 0, center, strength=0.1)
    assert float((decayed - center).norm()) == pytest.approx(0.9 * float((images - center).norm()))


def test_regularizers_act_inside_a_run(trained_model):
    settings = dict(steps=30, seed=0, image_shape=DIGITS, parameterization="pixels", center=0.0)
    plain = maximize(trained_model, ("class", 4), **settings)
    decayed = maximize(trained_model, ("class", 4), regularizers={"decay": {"strength": 0.2}}, **settings)
    assert float(decayed.images.norm()) < 0.8 * float(plain.images.norm())
    clipped = maximize(trained_model, ("class", 4), regularizers={"clip_norm": {"percentile": 60}}, **settings)
    assert float((clipped.images == 0).float().mean()) >= 0.59
    smooth = maximize(trained_model, ("class", 4), regularizers={"total_variation": {"weight": 200.0}}, **settings)
    tv = lambda result: float(T.total_variation(result.images, torch.zeros(1, 1, 1)).mean())  # noqa: E731
    assert tv(smooth) < 0.7 * tv(plain)


def test_geometric_transforms_do_what_they_say():
    images = _noise(shape=(2, 1, 12, 12))
    ones = lambda: torch.full((2,), 0.999, dtype=torch.float64)  # noqa: E731  the largest draw: +pixels
    shifted = T.resample(images, T.jitter(ones, images, 12, 12, pixels=2), 0.0)
    # a whole-pixel shift is exact: output (y, x) samples input (y + 2, x + 2)
    assert torch.allclose(shifted[:, :, :-2, :-2], images[:, :, 2:, 2:], atol=1e-12)
    half = lambda: torch.full((2,), 0.5, dtype=torch.float64)  # noqa: E731  the middle draw: no change
    for transform, params in ((T.scale, {"amount": 0.3}), (T.rotate, {"degrees": 30.0})):
        assert torch.allclose(T.resample(images, transform(half, images, 12, 12, **params)), images, atol=1e-12)
    quarter = T.resample(images, T.rotate(ones, images, 12, 12, degrees=90 / 0.998), 0.0)
    assert torch.allclose(quarter, torch.rot90(images, 1, dims=(2, 3)), atol=1e-2) or \
        torch.allclose(quarter, torch.rot90(images, -1, dims=(2, 3)), atol=1e-2)
    padded = T.pad(images, pixels=3, center=torch.full((1, 1, 1), 0.25, dtype=torch.float64))
    assert padded.shape == (2, 1, 18, 18) and float(padded[0, 0, 0, 0]) == 0.25
    assert torch.equal(T.center_crop(padded, 12, 12), images)


# ------------------------------------------------------------------------------------------------ determinism

def test_the_same_seed_gives_the_same_image_and_another_seed_another():
    model = small_cnn()
    run_once = lambda seed: maximize(model, ("class", 1), steps=15, seed=seed, image_shape=(1, 16, 16))  # noqa: E731
    first, again, other = run_once(3), run_once(3), run_once(4)
    assert torch.equal(first.images, again.images) and torch.equal(first.history, again.history)
    assert not torch.allclose(first.images, other.images)


@pytest.mark.parametrize("parameterization", ["fourier", "maco", "pixels"])
def test_a_layer_batch_equals_its_channels_run_one_by_one(model64, parameterization):
    channels = (1, 4, 9)  # not 0, 1, 2: image k's seed follows its channel, not its place in the batch
    regularizers = {"blur": {"every": 3, "sigma": 0.5}, "clip_contribution": {"percentile": 5}}
    settings = dict(steps=12, seed=7, image_shape=DIGITS, parameterization=parameterization, regularizers=regularizers)
    batch = maximize_layer(model64, "conv2", channels=channels, **settings)
    assert batch.images.shape == (3, *DIGITS)
    for position, channel in enumerate(channels):
        alone = maximize(model64, ("channel", "conv2", channel), n=1, seed=7 + channel,
                         **{k: v for k, v in settings.items() if k != "seed"})
        assert torch.allclose(batch.images[position], alone.images[0], atol=1e-6)
        assert torch.allclose(batch.history[:, position], alone.history[:, 0], atol=1e-6)


def test_several_starts_differ_and_the_first_equals_a_single_start():
    model = small_cnn().double()
    many = maximize(model, ("class", 2), steps=10, n=4, seed=5, image_shape=(1, 16, 16))
    one = maximize(model, ("class", 2), steps=10, n=1, seed=5, image_shape=(1, 16, 16))
    assert many.images.shape == (4, 1, 16, 16) and many.history.shape == (10, 4)
    assert torch.allclose(many.images[0], one.images[0], atol=1e-6)
    assert not torch.allclose(many.images[0], many.images[1])


def test_a_whole_layer_of_classes_is_one_image_per_class(trained_model):
    result = maximize_layer(trained_model, "classes", steps=40, image_shape=DIGITS)
    assert result.images.shape == (10, *DIGITS)
    assert result.objective == ("class", tuple(range(10)))
    assert (result.probabilities.argmax(dim=1) == torch.arange(10)).float().mean() >= 0.8


def test_a_wrong_image_shape_says_which_setting_fixes_it(trained_model):
    with pytest.raises(ValueError, match="image_shape"):
        maximize(trained_model, ("class", 1), steps=1, image_shape=(1, 20, 20))


# ------------------------------------------------------------------------------------------------ the jobs

def test_the_job_reports_previews_and_cancel_keeps_the_last_image(trained_model):
    reports = []

    def progress(fraction, text, partial=None):
        if partial is not None:
            reports.append(partial)
            if len(reports) == 3:
                raise Cancelled

    params = {"objective": ["class", 6], "steps": 320, "n": 2, "seed": 11}  # a preview every 320 // 32 = 10 steps
    result = run(Source(), "maximize.run", params, progress)
    assert result["cancelled"] is True
    assert result["steps_done"] == 30 and result["history"].shape == (30, 2)
    last = reports[-1]
    assert last["images"].dtype == np.uint8 and last["images"].shape == (2, *DIGITS)
    assert "last_images" not in last  # the full-size copy stays in the compute process
    assert np.abs(result["images"] * 255 - last["images"]).max() <= 0.5 + 1e-3
    assert [r["step"] for r in reports] == [10, 20, 30]
    assert not np.array_equal(reports[0]["images"], reports[-1]["images"])  # the image changes as it goes


def test_the_job_returns_quality_numbers_and_is_cached(trained_model, digits):
    params = {"objective": ["class", 2], "steps": 30, "n": 2, "seed": 0}
    partials = []
    result = run(Source(), "maximize.run", params, lambda f, t, p=None: partials.append(p) if p else None)
    assert result["cancelled"] is False and result["images"].shape == (2, *DIGITS)
    assert partials and partials[-1]["step"] == 30
    assert (result["top_classes"][:, 0] == 2).all()
    with torch.no_grad():
        logits = trained_model(digits.images)
    assert (result["best_indices"] == int(logits[:, 2].argmax())).all()
    assert np.allclose(result["ratios"], result["values"] / float(logits[:, 2].max()), rtol=1e-4)
    assert np.array_equal(result["best_images"][0], digits.images[int(logits[:, 2].argmax())].numpy())
    assert result["titles"] == ["class 2", "class 2"]
    again = run(Source(), "maximize.run", params, lambda f, t, p=None: partials.append("again") if p else None)
    assert np.array_equal(again["images"], result["images"]) and "again" not in partials  # read from the cache


def test_the_layer_job_gives_one_titled_image_per_channel():
    result = run(Source(), "maximize.layer", {"layer": "conv1", "steps": 8, "seed": 0})
    assert result["images"].shape == (16, *DIGITS) and result["history"].shape == (8, 16)
    assert result["titles"][3] == "conv1 ch 3" and result["seeds"][3] == 3
    assert np.isfinite(result["best_values"]).all() and result["best_indices"].shape == (16,)


# ------------------------------------------------------------------------------------------------ the figures

def test_the_grid_shows_each_image_in_its_tile_with_its_label():
    from components import maximize as figures

    rng = np.random.default_rng(0)
    images = rng.random((3, 1, 10, 12)).astype(np.float32)
    figure = figures.maximize_grid(images, ["class 1", "class 2", "class 3"], ratios=[1.5, float("nan"), 0.25],
                                   top1=[("1", 0.99), ("7", 0.5), ("3", 0.9)])
    z = np.asarray(figure.data[0].z, dtype=np.float32)
    gap = 1  # 0.08 * 12 rounds to 1
    for k in range(3):  # side by side: one row
        left = k * (12 + gap)
        np.testing.assert_allclose(z[:, left : left + 12], images[k, 0])
    assert np.isnan(z[:, 12]).all()
    labels = next(t for t in figure.data if t.name == figures.LABELS)
    assert list(labels.text) == ["class 1<br>1.50× best image · → 1 99%", "class 2<br>– best image · → 7 50%",
                                 "class 3<br>0.25× best image · → 3 90%"]
    assert list(labels.x) == [-0.5, 12.5, 25.5]


def test_a_layer_grid_is_square_and_shrinks_big_tiles():
    from components import maximize as figures

    images = np.zeros((64, 3, 224, 224), dtype=np.uint8)
    images[5, 0] = 255  # one red tile
    figure = figures.maximize_grid(images, [f"ch {k}" for k in range(64)])
    z = np.asarray(figure.data[0].z)
    tile, gap = 112, 9  # 224 halved; 0.08 * 112
    assert z.shape == (8 * (tile + gap) - gap, 8 * (tile + gap) - gap, 3)
    left = 5 * (tile + gap)
    assert (z[:tile, left : left + tile, 0] == 255).all() and (z[:tile, left : left + tile, 1] == 0).all()
    assert (z[:tile, tile : tile + gap] == 255).all()  # white gaps


def test_objective_curves_and_the_comparison_with_the_best_image():
    from components import maximize as figures

    history = np.cumsum(np.ones((20, 2), np.float32), axis=0)
    figure = figures.objective_curves(history, ["a", "b"])
    assert [t.name for t in figure.data] == ["a", "b"]
    np.testing.assert_allclose(np.asarray(figure.data[1].y), history[:, 1])
    many = figures.objective_curves(np.zeros((5, 64)), [])
    assert len(many.data) == 65 and many.data[-1].name == "mean"
    image, best = np.full((1, 4, 4), 0.25, np.float32), np.full((1, 4, 4), 0.75, np.float32)
    figure = figures.best_image_comparison(image, best, 3.0, 2.0, 17, importance=np.eye(4))
    np.testing.assert_allclose(np.asarray(figure.data[0].z), image[0])
    np.testing.assert_allclose(np.asarray(figure.data[1].z), best[0])
    assert [a.text for a in figure.layout.annotations][:2] == ["optimised: 3", "best data image #17: 2"]
    assert figures.predictions(np.array([[2, 0]]), np.array([[0.9, 0.1]]), ["zero", "one", "two"]) == \
        [[("two", 0.9), ("zero", 0.1)]]
