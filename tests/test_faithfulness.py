"""Tests of compute.faithfulness and compute.imputation on tiny models built here, against independent references:
a naive loop (one forward per step, each image built by hand, torchvision's Gaussian blur), pytorch-grad-cam's ROAD
(its NoisyLinearImputer is the ROAD authors' own code) and an analytic model whose score depends on one known region.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,
                                                               RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from torch import nn
from torchvision.transforms.functional import gaussian_blur as torchvision_blur

from compute import faithfulness as F
from compute import faithfulness_stats as stats
from compute.imputation import linear_imputation

# The imputation stops when the root-mean-square residual of its equations is 1e-7 of the image's value range; the
# error that leaves against the reference's exact sparse solve was measured at 2e-6 to 2e-5 of the range (32x32 to
# 224x224). 1e-4 bounds it with room and is still 40 times finer than one grey level (1/255 = 3.9e-3).
IMPUTATION_ATOL = 1e-4
# Through the model an input error of 1e-4 moves a probability by at most the model's input Lipschitz constant
# times it; for the tiny models here (weights ~0.3) that stays below 1e-4 as well.
ROAD_PROBABILITY_ATOL = 1e-4


def small_cnn(seed: int = 0, channels: int = 3, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(6 * 16, classes)).eval()


def random_image(seed: int = 1, channels: int = 3, size: int = 16) -> torch.Tensor:
    return torch.rand((channels, size, size), generator=torch.Generator().manual_seed(seed))


def distinct_map(seed: int, size: int = 16) -> torch.Tensor:
    """A map without ties, so the reference's percentile threshold and our order remove the same pixels."""
    return torch.rand((size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float()


def probability(model: nn.Module, image: torch.Tensor, target: int) -> float:
    with torch.no_grad():
        return float(model(image[None]).softmax(1)[0, target])


# ------------------------------------------------------------------------------------------ orders and areas

def test_order_puts_the_largest_values_first_and_breaks_ties_at_random():
    saliency = torch.tensor([[0.1, 0.9], [0.5, -2.0]])
    assert F.perturbation_order(saliency).tolist() == [1, 2, 0, 3]
    flat = F.perturbation_order(torch.zeros(8, 8), seed=0)
    assert sorted(flat.tolist()) == list(range(64)) and flat.tolist() != list(range(64))
    assert torch.equal(flat, F.perturbation_order(torch.zeros(8, 8), seed=0))
    # ties inside a level stay inside it: the two top pixels come first in some order
    assert set(F.perturbation_order(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))[:2].tolist()) == {0, 2}


def test_ranks_invert_the_orders_and_random_orders_are_permutations():
    orders = F.random_orders(4, 30, seed=3)
    assert all(sorted(row.tolist()) == list(range(30)) for row in orders)
    ranks = F.order_ranks(orders)
    for order, rank in zip(orders, ranks):
        assert torch.equal(rank[order], torch.arange(30))


def test_curve_fractions_and_areas():
    assert F.curve_fractions("deletion", 4).tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert F.curve_fractions("road_morf", 4).tolist() == [0, 0.25, 0.5, 0.75]  # no pixel left to impute from at 1
    fractions = F.curve_fractions("deletion", 10)
    assert float(F.area_under_curve(fractions, 1 - fractions)) == pytest.approx(0.5)
    road = F.curve_fractions("road_lerf", 10)
    assert float(F.area_under_curve(road, torch.full((10,), 0.8))) == pytest.approx(0.8)  # the mean p, span 0.9
    assert F.step_counts(fractions, 1024)[1] == 102
    with pytest.raises(ValueError, match="unknown curve kind"):
        F.curve_fractions("sideways", 4)


def test_blur_matches_torchvision():
    image = random_image(2, 3, 20)
    for sigma in (0.8, 2.5):
        radius = int(np.ceil(3 * sigma))
        expected = torchvision_blur(image, [2 * radius + 1] * 2, [sigma, sigma])
        torch.testing.assert_close(F.gaussian_blur(image, sigma), expected, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------ the naive loop

def naive_curves(model, image, target, orders, steps, fill_image, blurred, road_reference=None) -> dict:
    """One image built by hand and one forward per point: deletion, insertion (and ROAD with ``road_reference``,
    pytorch-grad-cam's imputer without noise)."""
    channels, height, width = image.shape
    pixels = height * width
    curves = {kind: [] for kind in ("deletion", "insertion", "road_morf", "road_lerf")}
    for order in orders:
        rows = {kind: [] for kind in curves}
        for k in range(steps + 1):
            count = round(k / steps * pixels)
            removed = order[:count]
            deleted = image.clone().view(channels, -1)
            deleted[:, removed] = fill_image.view(channels, -1)[:, removed]
            inserted = blurred.clone().view(channels, -1)
            inserted[:, removed] = image.view(channels, -1)[:, removed]
            rows["deletion"].append(probability(model, deleted.view_as(image), target))
            rows["insertion"].append(probability(model, inserted.view_as(image), target))
            if road_reference is not None and k < steps:
                for kind, chosen in (("road_morf", order[:count]), ("road_lerf", order[pixels - count:])):
                    keep = torch.ones(pixels)
                    keep[chosen] = 0
                    rows[kind].append(probability(model, road_reference(image, keep.view(height, width)), target))
        for kind in curves:
            curves[kind].append(rows[kind])
    return {kind: torch.tensor(values) for kind, values in curves.items() if values and values[0]}


@pytest.mark.parametrize("fill", ["zero", "data mean", "blur"])
def test_naive_loop_equals_the_batched_curves(fill):
    model, image = small_cnn(), random_image()
    orders = torch.cat([F.perturbation_order(distinct_map(5)).view(1, -1), F.random_orders(2, 256, seed=1)])
    steps, blur, mean = 8, 0.2, (0.3, 0.4, 0.5)
    batched = F.faithfulness_curves(model, image, 1, orders, steps, ("deletion", "insertion"), fill, blur, mean,
                                    batch_size=7)
    sigma = F.blur_sigma(image.shape, blur)
    radius = int(np.ceil(3 * sigma))
    blurred = torchvision_blur(image, [2 * radius + 1] * 2, [sigma, sigma])
    fill_image = {"zero": torch.zeros_like(image), "blur": blurred,
                  "data mean": torch.tensor(mean).view(3, 1, 1).expand_as(image)}[fill]
    naive = naive_curves(model, image, 1, orders, steps, fill_image, blurred)
    for kind in ("deletion", "insertion"):
        assert batched[kind].shape == (3, steps + 1)
        torch.testing.assert_close(batched[kind], naive[kind], atol=1e-6, rtol=0)
    # deletion starts at the clean image, insertion ends there
    assert batched["deletion"][:, 0] == pytest.approx([probability(model, image, 1)] * 3, abs=1e-6)
    assert batched["insertion"][:, -1] == pytest.approx([probability(model, image, 1)] * 3, abs=1e-6)


def test_naive_loop_with_the_road_reference_equals_the_batched_road_curves():
    model, image = small_cnn(seed=3), random_image(4)
    orders = torch.cat([F.perturbation_order(distinct_map(6)).view(1, -1), F.random_orders(1, 256, seed=2)])
    batched = F.faithfulness_curves(model, image, 2, orders, 6, ("road_morf", "road_lerf"), road_noise=0.0,
                                    batch_size=5)
    naive = naive_curves(model, image, 2, orders, 6, image, image, NoisyLinearImputer(noise=0.0))
    for kind in ("road_morf", "road_lerf"):
        assert batched[kind].shape == (2, 6)
        torch.testing.assert_close(batched[kind], naive[kind], atol=ROAD_PROBABILITY_ATOL, rtol=0)


def test_batch_size_does_not_change_the_curves_noise_included():
    model, image = small_cnn(seed=1), random_image(3)
    orders = torch.cat([F.perturbation_order(distinct_map(7)).view(1, -1), F.random_orders(2, 256, seed=4)])
    kinds = ("deletion", "insertion", "road_morf", "road_lerf")
    results = [F.faithfulness_curves(model, image, 0, orders, 5, kinds, batch_size=size) for size in (1, 4, 10_000)]
    for other in results[1:]:
        for kind in kinds:
            torch.testing.assert_close(other[kind], results[0][kind], atol=1e-6, rtol=0)


def test_step_image_is_the_picture_the_curve_classified():
    model, image = small_cnn(seed=2), random_image(5)
    orders = torch.cat([F.perturbation_order(distinct_map(8)).view(1, -1), F.random_orders(1, 256, seed=0)])
    kinds = ("deletion", "insertion", "road_morf", "road_lerf")
    curves = F.faithfulness_curves(model, image, 1, orders, 5, kinds, fill="blur", seed=3, batch_size=3)
    for kind in kinds:
        for row in range(2):
            for step in (0, 2, 4):
                pictured = F.step_image(image, orders[row], kind, step, 5, "blur", order_index=row, seed=3)
                assert probability(model, pictured, 1) == pytest.approx(float(curves[kind][row, step]), abs=1e-6)


# ------------------------------------------------------------------------------------------ ROAD against its reference

@pytest.mark.parametrize("channels, size, removed", [(1, 32, 0.5), (1, 32, 0.95), (3, 24, 0.3), (3, 64, 0.9)])
def test_linear_imputation_matches_the_road_authors_imputer(channels, size, removed):
    generator = torch.Generator().manual_seed(size + channels)
    image = torch.rand((channels, size, size), generator=generator)
    known = torch.rand((size, size), generator=generator) >= removed
    expected = NoisyLinearImputer(noise=0.0)(image, known.float())
    ours = linear_imputation(image[None], known[None])[0]
    torch.testing.assert_close(ours, expected, atol=IMPUTATION_ATOL, rtol=0)
    assert torch.equal(ours[:, known], image[:, known])


def test_linear_imputation_of_a_real_digit_matches_too(digits):
    image = digits.images[12]
    known = torch.rand((32, 32), generator=torch.Generator().manual_seed(0)) >= 0.7
    expected = NoisyLinearImputer(noise=0.0)(image, known.float())
    torch.testing.assert_close(linear_imputation(image[None], known[None])[0], expected, atol=IMPUTATION_ATOL, rtol=0)


def _reference_removed(map_values: np.ndarray, percentile: float, most_relevant: bool) -> int:
    """How many pixels pytorch-grad-cam's RemoveMost/LeastRelevantFirst replace at ``percentile``."""
    values = map_values if most_relevant else 1 - map_values
    return int((values >= np.percentile(values, percentile)).sum())


def test_road_curves_agree_with_pytorch_grad_cam():
    """Its PerturbationConfidenceMetric with RemoveMostRelevantFirst / RemoveLeastRelevantFirst (what its
    ROADMostRelevantFirst / ROADLeastRelevantFirst are) around the authors' imputer without noise: p(target) of the
    imputed image at every step where its percentile threshold removes exactly our count of pixels."""
    model, image, target, steps = small_cnn(seed=4), random_image(6), 2, 10
    saliency = distinct_map(9)
    orders = F.perturbation_order(saliency).view(1, -1)
    ours = F.faithfulness_curves(model, image, target, orders, steps, ("road_morf", "road_lerf"), road_noise=0.0)
    cam = saliency.numpy()[None]
    pixels = 256
    for kind, remove in (("road_morf", RemoveMostRelevantFirst), ("road_lerf", RemoveLeastRelevantFirst)):
        for step, count in enumerate(F.step_counts(F.curve_fractions(kind, steps), pixels).tolist()):
            if count == 0:
                continue
            # np.percentile interpolates: this percentile keeps exactly pixels - count below the threshold
            percentile = 100 * (pixels - count - 0.5) / (pixels - 1)
            assert _reference_removed(cam[0], percentile, kind == "road_morf") == count
            metric = PerturbationConfidenceMetric(remove(percentile, NoisyLinearImputer(noise=0.0)))
            reference = metric(image[None], cam, [ClassifierOutputSoftmaxTarget(target)], model, return_diff=False)
            assert float(ours[kind][0, step]) == pytest.approx(float(reference[0]), abs=ROAD_PROBABILITY_ATOL), \
                f"{kind} step {step}"


def test_road_noise_is_the_papers_and_only_on_imputed_pixels():
    image = random_image(7, 1, 64)
    order = F.perturbation_order(distinct_map(10, 64))
    clean = F.step_image(image, order, "road_morf", 3, 6, road_noise=0.0)
    noisy = F.step_image(image, order, "road_morf", 3, 6, seed=1)
    removed = torch.zeros(64 * 64, dtype=torch.bool)
    removed[order[:2048]] = True
    difference = (noisy - clean).view(-1)
    assert torch.equal(difference[~removed], torch.zeros(int((~removed).sum())))
    assert float(difference[removed].std()) == pytest.approx(0.01, rel=0.05)  # N(0, 0.01^2), Rong et al. 2022
    assert abs(float(difference[removed].mean())) < 0.001


# ------------------------------------------------------------------------------------------ an analytic model

class RegionModel(nn.Module):
    """p(class 0) = sigmoid(10 (mean of one 8x8 region - 0.5)): only the region matters."""

    top, left, size = 12, 6, 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        region = x[:, :, self.top:self.top + self.size, self.left:self.left + self.size].mean((1, 2, 3))
        score = 10 * (region - 0.5)
        return torch.stack([score, torch.zeros_like(score)], 1)

    def oracle(self, size: int = 32) -> torch.Tensor:
        saliency = torch.zeros(size, size)
        saliency[self.top:self.top + self.size, self.left:self.left + self.size] = 1.0
        return saliency


def test_the_oracle_map_scores_best_and_a_random_map_like_the_random_floor():
    model = RegionModel()
    image = 0.1 * random_image(8, 1, 32)
    image[:, model.top:model.top + model.size, model.left:model.left + model.size] = 1.0
    oracle = model.oracle()
    maps = {"oracle": oracle, "inverse": -oracle, "half": oracle * torch.rand(32, 32) + torch.rand(32, 32) * 0.5,
            "random": torch.rand((32, 32), generator=torch.Generator().manual_seed(11))}
    kinds = ("deletion", "insertion", "road_morf", "road_lerf")
    result = F.image_faithfulness.uncached(model, image, 0, maps, 20, kinds, "zero", 0.25, None, 16)
    auc, floor = result["auc"], result["random_auc"]
    for kind, sign in (("deletion", -1), ("insertion", 1), ("road_morf", -1), ("road_lerf", 1)):
        # best (the "half" map, high inside the region too, ties it where only the background goes first: LeRF)
        assert all(sign * (auc[kind]["oracle"] - value) >= -0.005 for value in auc[kind].values()), kind
        assert sign * (auc[kind]["oracle"] - auc[kind]["random"]) > 0.04, kind
        # one random order against the mean of 16: the region's share removed varies by about sqrt(64 f(1-f)) pixels
        assert auc[kind]["random"] == pytest.approx(floor[kind], abs=0.06), kind
    assert auc["deletion"]["oracle"] < 0.1 and auc["insertion"]["oracle"] > 0.9
    assert auc["deletion"]["inverse"] > floor["deletion"] > auc["deletion"]["oracle"]


def test_image_faithfulness_names_rows_by_method_whatever_their_order():
    model, image = small_cnn(), random_image()
    maps = {"b": distinct_map(1), "a": distinct_map(2)}
    one = F.image_faithfulness.uncached(model, image, 0, maps, 4, ("deletion", "road_morf"), random_count=2)
    two = F.image_faithfulness.uncached(model, image, 0, dict(reversed(maps.items())), 4, ("deletion", "road_morf"),
                                        random_count=2)
    for kind in ("deletion", "road_morf"):
        for name in maps:
            torch.testing.assert_close(one["curves"][kind][name], two["curves"][kind][name])
    assert F.curve_rows(maps, 2) == ["a", "b", "random 1", "random 2"]
    assert torch.equal(F.row_order(maps, "random 2", 256, 2), F.random_orders(2, 256)[1])
    with pytest.raises(ValueError, match="unknown curve"):
        F.row_order(maps, "random 3", 256, 2)


# ------------------------------------------------------------------------------------------ statistics

def test_bootstrap_interval_has_the_width_of_the_normal_theory():
    rng = np.random.default_rng(0)
    values = rng.normal([0.2, 0.5], 0.1, size=(400, 2))
    mean, low, high = stats.mean_interval(values)
    half_width = 1.96 * values.std(axis=0, ddof=1) / np.sqrt(400)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    np.testing.assert_allclose((high - low) / 2, half_width, rtol=0.12)
    assert np.all(low < mean) and np.all(mean < high)
    assert np.array_equal(stats.mean_interval(values)[1], low)  # seeded: the same sample, the same interval


def test_first_share_says_how_sure_the_winner_is():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, size=(100, 1))
    clear = np.hstack([base, base + 1.0, base - 1.0])
    assert stats.first_share(clear, higher_is_better=True).tolist() == [0.0, 1.0, 0.0]
    assert stats.first_share(clear, higher_is_better=False).tolist() == [0.0, 0.0, 1.0]
    close = np.hstack([base + rng.normal(0, 1, (100, 1)), base + rng.normal(0, 1, (100, 1))])
    share = stats.first_share(close, higher_is_better=True)
    assert share.sum() == pytest.approx(1.0) and 0.05 < share[0] < 0.95
    assert stats.ranks(np.array([0.3, 0.1, 0.2]), higher_is_better=False).tolist() == [3, 1, 2]
