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
from compute.maximize.results import SPECTRUM_IMAGES, cached_maximize
from compute.maximize.param import build as build_parameterization
from compute.maximize.priors import class_balanced_sample, principal_components
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


@pytest.fixture(scope="module")
def digit_components(digits):
    return principal_components(digits.images, 32)


@pytest.mark.parametrize("parameterization", ["pixels", "maco", "pca"])
def test_every_parameterization_reaches_the_class(trained_model, parameterization, digit_components):
    result = maximize(trained_model, ("class", 5), steps=60, seed=1, image_shape=DIGITS,
                      parameterization=parameterization, components=digit_components)
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
    assert set(PARAMETERIZATIONS) == {"fourier", "maco", "pixels", "pca"}
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


def test_principal_components_agree_with_scikit_learn():
    from sklearn.decomposition import PCA

    images = _noise(8, (300, 1, 6, 5)) * torch.linspace(0.2, 1.0, 30, dtype=torch.float64).reshape(1, 1, 6, 5)
    found = principal_components(images, 7)
    reference = PCA(n_components=7).fit(images.flatten(1).numpy())
    np.testing.assert_allclose(found.mean.flatten().numpy(), reference.mean_, atol=1e-6)
    np.testing.assert_allclose(found.scales.numpy() ** 2, reference.explained_variance_, rtol=1e-4)
    overlap = np.abs(found.components.double().numpy() @ reference.components_.T)  # equal up to sign
    np.testing.assert_allclose(np.diag(overlap), 1.0, atol=1e-4)
    whitened = (images.flatten(1).numpy() - reference.mean_) @ reference.components_[:3].T / np.sqrt(
        reference.explained_variance_[:3])
    assert found.radius_of(3) == pytest.approx(float(np.median(np.linalg.norm(whitened, axis=1))), rel=1e-4)


def test_pca_images_stay_in_the_span_within_a_typical_distance_of_the_mean():
    images = _noise(9, (400, 1, 8, 8)).pow(3)
    components = principal_components(images, 10)
    like = torch.empty(0, dtype=torch.float64)
    generators = [torch.Generator().manual_seed(k) for k in range(3)]
    made = build_parameterization("pca", (1, 8, 8), generators, like, components=components, count=6,
                                  radius_scale=1.5)
    z = made.tensors[0]
    assert z.shape == (3, 6)
    assert torch.allclose(z.norm(dim=1), torch.full((3,), 0.1 * 1.5 * components.radius_of(6), dtype=torch.float64))
    with torch.no_grad():
        z.mul_(100.0)  # far outside the ball: the step's constraint brings every image back onto it
    made.after_step()
    assert torch.allclose(z.norm(dim=1), torch.full((3,), 1.5 * components.radius_of(6), dtype=torch.float64))
    # An image in the span (and in [0, 1]) maps back exactly; one outside is projected onto the span.
    basis = (components.components[:6] * components.scales[:6, None]).double()
    inside = (components.mean.double().flatten() + torch.tensor([[0.5, -0.3, 0.2, 0, 0, 0.1]] * 3,
                                                                dtype=torch.float64) @ basis).reshape(3, 1, 8, 8)
    assert 0 <= float(inside.min()) and float(inside.max()) <= 1
    made.assign(inside)
    assert torch.allclose(made.images(), inside, atol=1e-6)
    with pytest.raises(ValueError, match="principal_components"):
        build_parameterization("pca", (1, 8, 8), generators, like)


def test_a_sample_across_classes_takes_each_class_in_turn_and_follows_its_seed():
    labels = torch.tensor([0] * 600 + [1] * 600 + [2] * 30)  # sorted by class, as a folder is
    sample = class_balanced_sample(labels, 90, seed=0)
    assert torch.equal(torch.bincount(labels[sample]), torch.tensor([30, 30, 30]))
    assert torch.equal(sample, sample.unique())  # sorted, no repeats
    assert torch.equal(sample, class_balanced_sample(labels, 90, seed=0))
    assert not torch.equal(sample, class_balanced_sample(labels, 90, seed=1))
    larger = class_balanced_sample(labels, 300, seed=0)
    assert torch.equal(torch.bincount(labels[larger]), torch.tensor([135, 135, 30]))  # a small class gives all it has
    assert len(class_balanced_sample(labels, 5000)) == len(labels)


def test_maco_takes_its_spectrum_from_every_class_of_a_folder_sorted_by_class():
    """The first SPECTRUM_IMAGES images of this data set are one class of flat grey images: a spectrum taken from
    them (as before) is zero, and MACO's images come out flat grey; a sample across classes sees the other class."""
    from compute.data import Dataset

    count = SPECTRUM_IMAGES + 100
    flat = torch.full((count, 1, 16, 16), 0.3)
    textured = _noise(4, (count, 1, 16, 16)).float()
    dataset = Dataset("sorted", torch.cat([flat, textured]), torch.tensor([0] * count + [1] * count),
                      ["flat", "textured"], torch.zeros(2 * count, dtype=torch.bool))
    settings = resolve_settings((1, 16, 16), parameterization="maco")
    result = cached_maximize.uncached(small_cnn(), dataset, ("class", 1), 5, [0, 1], settings)
    assert result["images"].std(axis=(1, 2, 3)).min() > 0.05


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


@pytest.mark.parametrize("parameterization", ["fourier", "maco", "pixels", "pca"])
def test_a_layer_batch_equals_its_channels_run_one_by_one(model64, parameterization, digit_components):
    channels = (1, 4, 9)  # not 0, 1, 2: image k's seed follows its channel, not its place in the batch
    regularizers = {"blur": {"every": 3, "sigma": 0.5}, "clip_contribution": {"percentile": 5}}
    settings = dict(steps=12, seed=7, image_shape=DIGITS, parameterization=parameterization, regularizers=regularizers,
                    components=digit_components)
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


def test_the_built_in_model_carries_its_input_shape_so_no_image_shape_is_needed(trained_model):
    from compute import models

    model = models.load("digits-cnn")
    assert model.input_shape == DIGITS and models.build("cifar10-cnn").input_shape == (3, 32, 32)
    result = maximize(model, ("class", 3), steps=5)  # fell back to 224x224 before, which the model cannot take
    assert result.images.shape == (1, *DIGITS) and result.settings["image_shape"] == DIGITS


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
    labels = next(t for t in figure.data if t.name == figures.LABELS)
    gap = 1  # 0.08 * 12 rounds to 1
    origins = [tuple(o) for o in labels.customdata]
    assert [left for _, left in origins] == [0, 13, 26] and len({top for top, _ in origins}) == 1  # one row
    for k, (top, left) in enumerate(origins):
        np.testing.assert_allclose(z[top : top + 10, left : left + 12], images[k, 0])
    assert np.isnan(z[:, 12]).all() and np.isnan(z[: origins[0][0]]).all()  # the gap, and the label band above
    assert list(labels.text) == ["class 1<br>1.50× best image<br>→ 1 99%", "class 2<br>– best image<br>→ 7 50%",
                                 "class 3<br>0.25× best image<br>→ 3 90%"]
    assert list(labels.hovertext)[0] == "class 1<br>1.50× best image · → 1 99%"
    assert list(labels.x) == [-0.5, 12.5, 25.5]


def label_boxes(figure, panel_width: float = 700):
    """Each label's box in screen pixels, (left, right, top, bottom), as the figure lays itself out in a panel of
    ``panel_width`` pixels (square pixels, limited by the height or the width), and each tile's box likewise;
    text width estimated at 0.62 em a character, lines 1.3 em high."""
    from components import maximize as figures

    labels = next(t for t in figure.data if t.name == figures.LABELS)
    canvas = np.asarray(figure.data[0].z)
    margin = figure.layout.margin
    plot_height = figure.layout.height - margin.t - margin.b
    scale = min(plot_height / canvas.shape[0], (panel_width - margin.l - margin.r) / canvas.shape[1])
    size = labels.textfont.size
    side = np.isfinite(canvas[..., 0] if canvas.ndim == 3 else canvas)
    boxes, tiles = [], []
    for (top, left), x, y, text in zip(labels.customdata, labels.x, labels.y, labels.text):
        lines = text.split("<br>")
        width = max(len(line) for line in lines) * 0.62 * size
        bottom = (y + 0.5) * scale
        boxes.append(((x + 0.5) * scale, (x + 0.5) * scale + width, bottom - len(lines) * 1.3 * size, bottom))
        rows = np.flatnonzero(side[:, left]) ; columns = np.flatnonzero(side[top])
        tile_bottom = rows[rows >= top][np.argmax(np.diff(np.r_[rows[rows >= top], 10**9]) > 1)] + 1
        tile_right = columns[columns >= left][np.argmax(np.diff(np.r_[columns[columns >= left], 10**9]) > 1)] + 1
        tiles.append((left * scale, tile_right * scale, top * scale, tile_bottom * scale))
    return boxes, tiles


def overlaps(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


@pytest.mark.parametrize(("count", "titles"), [(3, "class {k} − class 8"), (8, "class {k}"), (10, "class {k}"),
                                               (16, "conv1 ch {k}"), (64, "conv3 ch {k}")])
def test_grid_labels_sit_above_their_tiles_in_the_text_colour_and_overlap_nothing(count, titles):
    """The whole-layer grid's labels were white over white gaps and ran into each other; now each label lies in the
    band above its own tile, in the theme's text colour, and no label box meets another label or any tile."""
    from components import maximize as figures
    from components import theme

    images = np.random.default_rng(1).random((count, 1, 32, 32)).astype(np.float32)
    figure = figures.maximize_grid(images, [titles.format(k=k) for k in range(count)], ratios=np.full(count, 1.234),
                                   top1=[("3", 0.999)] * count, title="t")
    labels = next(t for t in figure.data if t.name == figures.LABELS)
    assert labels.textfont.color == theme.TEXT and not labels.textfont.shadow
    assert labels.textfont.size >= figures.MIN_LABEL_SIZE
    boxes, tiles = label_boxes(figure)
    for k, box in enumerate(boxes):
        assert box[3] <= tiles[k][2] + 1e-6  # above its own tile
        assert not any(overlaps(box, other) for j, other in enumerate(boxes) if j != k)
        assert not any(overlaps(box, tile) for tile in tiles)
        assert box[2] >= -1e-6  # inside the figure's plot area at the top


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
