"""Tests of compute.adversarial (FGSM, PGD, the smallest flipping epsilon, the robustness curve), its jobs and
the figures of components.adversarial. Tiny models built here for the exact properties; the built-in digits CNN
(a subset of its test split) for what attacks do to a trained model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compute import adversarial, embedding
from compute.cache import CACHE_DIR_ENV
from compute.specs.params import Method
from compute.jobs.table import run
from compute.specs.source import Source

EPSILON = 8 / 255


def tiny_model(channels: int = 1, classes: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, classes)).eval()


def tiny_batch(count: int = 6, channels: int = 1, seed: int = 0):
    """Images (count, C, 8, 8) in [0, 1] with saturated pixels (exact 0s and 1s), so the clipping is exercised."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand((count, channels, 8, 8), generator=generator)
    images[:, :, :2] = 0.0
    images[:, :, -2:] = 1.0
    labels = torch.randint(0, 4, (count,), generator=generator)
    return images, labels


def reference_fgsm(model, images, labels, epsilon, target=None):
    """One signed step of the cross-entropy gradient, written out: up the true label's loss, or down the target's."""
    x = images.clone().requires_grad_(True)
    logits = model(x)
    if target is None:
        F.cross_entropy(logits, labels, reduction="sum").backward()
        stepped = x + epsilon * x.grad.sign()
    else:
        F.cross_entropy(logits, target, reduction="sum").backward()
        stepped = x - epsilon * x.grad.sign()
    return stepped.detach().clamp(0, 1)


ATTACKS = {
    "fgsm": lambda model, x, y, eps, target=None: adversarial.fgsm(model, x, y, eps, target=target),
    "pgd": lambda model, x, y, eps, target=None: adversarial.pgd(model, x, y, eps, 5, eps / 2, target=target, seed=1),
}


@pytest.mark.parametrize("method", ATTACKS)
@pytest.mark.parametrize("targeted", [False, True])
def test_epsilon_zero_returns_the_input(method, targeted):
    model, (images, labels) = tiny_model(), tiny_batch()
    result = ATTACKS[method](model, images, labels, 0.0, target=2 if targeted else None)
    assert torch.equal(result, images)


@pytest.mark.parametrize("method", ATTACKS)
@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("epsilon", [1 / 255, 8 / 255, 0.3])
def test_every_output_is_inside_the_epsilon_ball_and_the_unit_range(method, targeted, epsilon):
    model, (images, labels) = tiny_model(channels=3), tiny_batch(channels=3)
    result = ATTACKS[method](model, images, labels, epsilon, target=torch.tensor([1, 2, 3, 0, 1, 2]) if targeted else None)
    assert result.shape == images.shape and result.dtype == images.dtype
    assert float((result - images).abs().max()) <= epsilon + 1e-6
    assert float(result.min()) >= 0.0 and float(result.max()) <= 1.0
    assert not torch.equal(result, images)


@pytest.mark.parametrize("target", [None, 3])
def test_fgsm_equals_one_signed_step_of_the_cross_entropy_gradient_pixel_for_pixel(target):
    model, (images, labels) = tiny_model(), tiny_batch(count=10)
    targets = None if target is None else torch.full((10,), target)
    expected = reference_fgsm(model, images, labels, EPSILON, targets)
    assert torch.equal(adversarial.fgsm(model, images, labels, EPSILON, target=target), expected)


def test_fgsm_on_the_trained_model_equals_the_reference(trained_model, digits):
    images, labels = digits.images[:16], digits.labels[:16]
    expected = reference_fgsm(trained_model, images, labels, EPSILON)
    assert torch.equal(adversarial.fgsm(trained_model, images, labels, EPSILON), expected)


def test_pgd_random_start_is_uniform_in_the_ball_seeded_per_image():
    model, (images, labels) = tiny_model(), tiny_batch(count=4)
    images = torch.full_like(images, 0.5)  # no clipping: the start is exactly image + noise
    images[1] += 0.01  # a different image gets a different start
    start = adversarial.pgd(model, images, labels, 0.1, steps=0, step_size=0.0, seed=3)
    noise = start - images
    assert float(noise.abs().max()) <= 0.1 + 1e-6
    assert float(noise.max()) > 0.09 and float(noise.min()) < -0.09 and abs(float(noise.mean())) < 0.03
    assert torch.equal(start, adversarial.pgd(model, images, labels, 0.1, steps=0, step_size=0.0, seed=3))
    assert torch.equal(noise[0], noise[2]) and torch.equal(noise[0], noise[3])  # identical images, same start
    assert not torch.equal(noise[0], noise[1])
    assert not torch.equal(start, adversarial.pgd(model, images, labels, 0.1, steps=0, step_size=0.0, seed=4))


def test_pgd_result_does_not_depend_on_the_batch_size():
    model, (images, labels) = tiny_model(), tiny_batch(count=7)
    whole = adversarial.pgd(model, images, labels, EPSILON, 6, EPSILON / 3, seed=2)
    assert torch.equal(adversarial.pgd(model, images, labels, EPSILON, 6, EPSILON / 3, seed=2, batch_size=3), whole)


@pytest.fixture(scope="module")
def test_subset(digits):
    """Every sixth test image of the digits (60 images): enough for rates, quick on two cores."""
    indices = torch.nonzero(digits.is_test).flatten()[::6]
    return digits.images[indices], digits.labels[indices]


def fooled_rate(model, images, labels, target=None) -> float:
    predicted = adversarial.predict(model, images).argmax(1)
    return float((predicted != labels if target is None else predicted == target).double().mean())


def test_pgd_on_the_trained_model_equals_the_same_attack_one_image_at_a_time(trained_model, test_subset):
    images, labels = test_subset[0][:8], test_subset[1][:8]
    batch = adversarial.pgd(trained_model, images, labels, 16 / 255, 5, 4 / 255)
    single = torch.cat([adversarial.pgd(trained_model, images[i:i + 1], labels[i:i + 1], 16 / 255, 5, 4 / 255)
                        for i in range(len(images))])
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-6)


def test_pgd_fools_the_trained_model_far_more_than_fgsm_and_most_images_at_32_over_255(trained_model, test_subset):
    images, labels = test_subset
    # Measured on the whole test split: 10-step PGD fools ~35% at 16/255 and ~96% at 32/255; FGSM ~20% at
    # 16/255. The digits (8x8 upsampled to 32x32, so smooth) make this CNN harder to fool than MNIST models.
    pgd_16 = fooled_rate(trained_model, adversarial.pgd(trained_model, images, labels, 16 / 255, 10, 4 / 255), labels)
    fgsm_16 = fooled_rate(trained_model, adversarial.fgsm(trained_model, images, labels, 16 / 255), labels)
    pgd_32 = fooled_rate(trained_model, adversarial.pgd(trained_model, images, labels, 32 / 255, 10, 8 / 255), labels)
    assert pgd_16 > 0.2 and pgd_16 >= fgsm_16
    assert pgd_32 > 0.85


def margin_pgd(model, images, labels, epsilon: float, steps: int, step_size: float, seed: int = 0):
    """An independent PGD on Carlini and Wagner's margin loss (best other logit minus the true one), which does not
    flatten out as the softmax of a confident model does: if cross-entropy's gradient were masked, this would fool
    far more."""
    generator = torch.Generator().manual_seed(seed)
    adversarial_images = (images + (torch.rand(images.shape, generator=generator) * 2 - 1) * epsilon).clamp(0, 1)
    true_class = F.one_hot(labels, 10).bool()
    for _ in range(steps):
        x = adversarial_images.clone().requires_grad_(True)
        logits = model(x)
        margin = logits.masked_fill(true_class, float("-inf")).amax(1) - logits[true_class]
        (gradient,) = torch.autograd.grad(margin.sum(), x)
        stepped = adversarial_images + step_size * gradient.sign()
        adversarial_images = torch.min(torch.max(stepped, images - epsilon), images + epsilon).clamp(0, 1).detach()
    return adversarial_images


def test_pgd_at_16_over_255_is_converged_so_the_images_it_leaves_are_robust(trained_model, test_subset):
    # The issue expected PGD at 16/255 to fool most test images; on this model it fools about a third. The digits
    # hold 17 grey levels (0..16), so 16/255 is one level: too small a change for most digits. This test shows
    # the shortfall is the model's, not a weak attack: four times the steps at a finer step size fool no more, and
    # neither does another loss (measured on the whole test split: 33.3% cross-entropy, 33.9% margin, 50 steps).
    images, labels = test_subset
    ten = fooled_rate(trained_model, adversarial.pgd(trained_model, images, labels, 16 / 255, 10, 4 / 255), labels)
    forty = fooled_rate(trained_model, adversarial.pgd(trained_model, images, labels, 16 / 255, 40,
                                                       adversarial.madry_step_size(16 / 255, 40)), labels)
    assert abs(forty - ten) <= 0.05
    margin = fooled_rate(trained_model, margin_pgd(trained_model, images, labels, 16 / 255, 40,
                                                   adversarial.madry_step_size(16 / 255, 40)), labels)
    assert margin <= ten + 0.05
    # One and a half grey levels (24/255) already fools most images (measured: 74% of the whole test split).
    most = fooled_rate(trained_model, adversarial.pgd(trained_model, images, labels, 24 / 255, 10,
                                                      adversarial.madry_step_size(24 / 255, 10)), labels)
    assert most > 0.5


def test_targeted_pgd_reaches_the_target_for_most_images(trained_model, test_subset):
    images, labels = test_subset
    target = (labels + 1) % 10
    # Measured on this subset: 20-step PGD reaches "label + 1" for 77% at 48/255, for 100% at 64/255.
    result = adversarial.pgd(trained_model, images, labels, 64 / 255, 10, 16 / 255, target=target)
    assert fooled_rate(trained_model, result, labels, target) > 0.8
    assert fooled_rate(trained_model, images, labels, target) < 0.05  # not so before the attack


EPSILONS = (0.0, 4 / 255, 8 / 255, 16 / 255, 24 / 255, 32 / 255)


def test_success_never_falls_as_epsilon_grows_and_bounds_each_single_attack(trained_model, test_subset, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    images, labels = test_subset
    shuffled = (2, 0, 5, 1, 3, 4)
    curve = adversarial.success_curve(trained_model, images, labels, [EPSILONS[i] for i in shuffled], steps=10)
    order = np.argsort(curve.epsilons)
    success, accuracy = curve.success_rate[order], curve.accuracy[order]
    assert np.all(np.diff(success) >= 0) and np.all(np.diff(accuracy) <= 0)
    correct = adversarial.predict(trained_model, images).argmax(1) == labels
    assert success[0] == 0.0 and accuracy[0] == pytest.approx(float(correct.float().mean()))
    assert curve.clean_accuracy == pytest.approx(float(correct.float().mean())) and curve.count == len(images)
    assert success[-1] > 0.85
    # Each epsilon's plain PGD (same random starts) fools no more than the curve counts: the curve adds
    # smaller epsilons and earlier iterates. Accuracy = correct and never fooled, so it follows success.
    for epsilon, rate, kept in zip(curve.epsilons[order], success, accuracy):
        single = adversarial.pgd(trained_model, images[correct], labels[correct], epsilon, 10, 2.5 * epsilon / 10)
        assert fooled_rate(trained_model, single, labels[correct]) <= rate + 1e-9
        assert kept == pytest.approx(float(correct.float().mean()) * (1 - rate))


def test_success_curve_is_cached_and_does_not_depend_on_the_batch_size(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    model, (images, labels) = tiny_model(), tiny_batch(count=9)
    first = adversarial.success_curve(model, images, labels, (0.0, 0.02, 0.1), steps=4)
    other = adversarial.success_curve.uncached(model, images, labels, (0.0, 0.02, 0.1), steps=4, batch_size=2)
    for a, b in zip(first, other):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(adversarial, "pgd", lambda *args, **kwargs: pytest.fail("recomputed"))
    np.testing.assert_array_equal(adversarial.success_curve(model, images, labels, (0.0, 0.02, 0.1), steps=4)[1],
                                  first.success_rate)


def linear_model(weights: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(weights.shape[1], weights.shape[0])).eval()
    with torch.no_grad():
        model[1].weight.copy_(weights)
        model[1].bias.copy_(bias)
    return model


def test_smallest_flipping_epsilon_of_a_linear_model_is_its_margin_over_the_l1_norm(tmp_path, monkeypatch):
    # Two classes, logits w_k . x + b_k: the cheapest L-infinity move changes every pixel by epsilon along
    # sign(w_1 - w_0), so the flip happens at epsilon = margin / |w_1 - w_0|_1 (the box [0, 1] is not reached).
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn((2, 16), generator=generator)
    image = torch.full((1, 4, 4), 0.5)
    scores = weights @ image.flatten()
    bias = torch.tensor([0.0, float(scores[0] - scores[1]) - 0.3])  # class 0 ahead by a margin of 0.3
    model = linear_model(weights, bias)
    expected = 0.3 / float((weights[1] - weights[0]).abs().sum())
    tolerance = 0.1 / 255
    epsilon, flipped = adversarial.smallest_flipping_epsilon(model, image, 0, max_epsilon=0.2, tolerance=tolerance)
    assert expected - 1e-6 <= epsilon <= expected + tolerance + 1e-6
    assert float((flipped - image).abs().max()) <= epsilon + 1e-6
    assert int(model(flipped[None]).argmax()) == 1
    # already wrong: zero; out of reach: None
    assert adversarial.smallest_flipping_epsilon(model, image, 1)[0] == 0.0
    assert adversarial.smallest_flipping_epsilon(model, image, 0, max_epsilon=expected / 2) == (None, None)


def first_correct_index(model, dataset) -> int:
    predicted = adversarial.predict(model, dataset.images[:50]).argmax(1)
    return int(torch.nonzero(predicted == dataset.labels[:50]).flatten()[0])


def test_attack_job_returns_the_panel_and_places_both_images_in_the_scatter(trained_model, digits):
    source = Source()
    index = first_correct_index(trained_model, digits)
    result = run(source, "adversarial.attack", {"index": index, "method": "pgd", "epsilon": 32 / 255, "steps": 10,
                                               "layer": "relu4", "embedding": "pca", "mode": "auto"})
    original, perturbation, attacked = result["original"], result["perturbation"], result["adversarial"]
    assert original.shape == attacked.shape == perturbation.shape == (1, 32, 32)
    np.testing.assert_allclose(perturbation, attacked - original, atol=1e-7)
    assert result["linf"] <= 32 / 255 + 1e-6 and 0 <= attacked.min() and attacked.max() <= 1
    for when in ("before", "after"):
        top = result[when]["top5"]
        assert len(top) == 5 and [p for _, p in top] == sorted((p for _, p in top), reverse=True)
        assert (result[when]["predicted"], result[when]["confidence"]) == top[0]
    assert result["before"]["predicted"] == result["label"]
    assert result["fooled"] == (result["after"]["predicted"] != result["label"])
    from compute.jobs.workspace import workspace

    space = workspace(source)
    layout = embedding.layer_embedding(space.model(), space.dataset, "relu4", "pca", "flat")
    points = result["points"]
    np.testing.assert_allclose(points["original"], layout[index])
    np.testing.assert_allclose(points["original_placed"], layout[index], atol=1e-3 * np.ptp(layout))
    assert np.linalg.norm(np.subtract(points["adversarial"], points["original"])) > 1e-3 * np.ptp(layout)
    assert result["placement_message"] is None


def test_attack_job_says_so_when_the_embedding_cannot_place_points(monkeypatch):
    fixed = Method(lambda features, seed, progress: embedding.Fitted(features[:, :2].copy()), "Fixed layout")
    monkeypatch.setitem(embedding.EMBEDDERS, "fixed", fixed)
    result = run(Source(), "adversarial.attack", {"index": 3, "method": "fgsm", "epsilon": 4 / 255,
                                                 "layer": "relu4", "embedding": "fixed"})
    assert result["points"] is None and "cannot place new points" in result["placement_message"]
    assert result["adversarial"].shape == (1, 32, 32)


def test_smallest_epsilon_and_robustness_jobs(trained_model, digits):
    index = first_correct_index(trained_model, digits)
    found = run(Source(), "adversarial.smallest_epsilon", {"index": index, "max_epsilon": 64 / 255})
    assert 0 < found["epsilon"] <= 64 / 255 and found["message"] is None
    assert found["linf"] <= found["epsilon"] + 1e-6
    assert found["after"]["predicted"] != found["label"] == found["before"]["predicted"]
    reports = []
    curve = run(Source(), "adversarial.robustness", {"epsilons": (0.0, 32 / 255), "max_images": 30},
                progress=lambda fraction, text, partial=None: reports.append(fraction))
    assert curve["count"] == 30 and curve["success_rate"][0] == 0 and curve["success_rate"][1] > 0.8
    assert curve["accuracy"][0] == pytest.approx(curve["clean_accuracy"])
    assert reports and max(reports) <= 1.0


def test_figures_show_both_predictions_the_magnification_and_the_epsilon_scale():
    from components import adversarial as figures

    original = np.full((1, 8, 8), 0.5, dtype=np.float32)
    perturbation = np.zeros_like(original)
    perturbation[0, 0, 0], perturbation[0, 1, 1] = 8 / 255, -4 / 255
    panel = figures.attack_figure(original, perturbation, original + perturbation, ("7", 0.981), ("3", 0.872),
                                  epsilon=8 / 255)
    assert figures.magnification(perturbation) == 15  # 0.5 / (8/255) = 15.9
    shown = np.asarray(panel.data[1].z)
    assert shown[0, 0] == pytest.approx(0.5 + 15 * 8 / 255) and shown[1, 1] == pytest.approx(0.5 - 15 * 4 / 255)
    assert shown[2, 2] == pytest.approx(0.5)
    titles = [a.text for a in panel.layout.annotations]
    assert any("×15" in t and "8/255" in t for t in titles)
    assert any("7" in t and "98.1%" in t for t in titles) and any("3" in t and "87.2%" in t for t in titles)

    bars = figures.top_k_comparison([("7", 0.9), ("1", 0.1)], [("3", 0.8), ("7", 0.2)], true_name="7")
    assert list(bars.data[0].y) == ["1", "7"] and list(bars.data[1].x) == [0.2, 0.8]

    curve = figures.robustness_figure([0.0, 8 / 255, 4 / 255], [0.0, 0.6, 0.2], [0.98, 0.4, 0.78], count=60, steps=10)
    np.testing.assert_allclose(curve.data[0].x, [0, 4, 8])
    np.testing.assert_allclose(curve.data[0].y, [0.0, 0.2, 0.6])
    assert list(curve.layout.xaxis.ticktext) == ["0", "4", "8"] and "/255" in curve.layout.xaxis.title.text

