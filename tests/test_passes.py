"""Batched attribution (compute.passes, attribution.attribution_maps): several methods on several models from shared
passes give the same maps as each method alone on each model, whatever the batch size, and are cached per map."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr

from compute import attribution as A
from compute import passes
from compute.specs.params import resolve
from tests.test_attribution import random_image, small_cnn

# Every registered method, with parameters small enough for a test (Grad-CAM at its default layer).
METHODS = {
    "occlusion": {"box": 3, "stride": 2, "fill": "zero"},
    "saliency": {"absolute": True},
    "smoothgrad": {"samples": 6, "sigma": 0.2},
    "integrated_gradients": {"steps": 5, "baseline": "mean"},
    "gradcam": {"layer": ""},
}


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    from compute.cache import CACHE_DIR_ENV

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))


def one_by_one(model, image, target) -> dict:
    return {method: A.METHODS[method].explain(model, image, target, **params) for method, params in METHODS.items()}


def assert_same_maps(found: dict, expected: dict) -> None:
    for method, maps in expected.items():
        maps = maps if isinstance(maps, dict) else {"map": maps}
        assert set(found[method]) == set(maps), method
        for key, value in maps.items():
            if isinstance(value, float):
                assert found[method][key] == pytest.approx(value, rel=1e-5, abs=1e-7), (method, key)
            else:
                torch.testing.assert_close(found[method][key], value, atol=1e-6, rtol=1e-4, msg=f"{method} {key}")


def test_every_method_on_two_models_at_once_equals_each_method_alone(fresh_cache):
    """The sanity check's batching: trained and untrained stand-ins (two seeds), every method."""
    models = {"trained": small_cnn(seed=0), "untrained": small_cnn(seed=7)}
    image, target = random_image(5), 2
    found = A.attribution_maps(models, image, target, METHODS, batch_size=4)
    assert set(found) == {"trained", "untrained"}
    for name, model in models.items():
        assert_same_maps(found[name], {m: A.METHODS[m].explain(model, image, target, **p) for m, p in METHODS.items()})
    # The two models' maps differ (each model got its own passes, not the other's).
    assert not torch.allclose(found["trained"]["saliency"]["map"], found["untrained"]["saliency"]["map"])


@pytest.mark.parametrize("batch_size", [1, 5, 64, None])
def test_batched_plans_do_not_depend_on_the_batch_size(batch_size):
    """Batches that split a plan's points (and Grad-CAM's one row among the others) give the same maps."""
    model, image, target = small_cnn(seed=2), random_image(6), 1
    plans = [resolve(A.METHODS[m].planner)(model, image, target, **p) for m, p in METHODS.items()]
    (found,) = passes.evaluate([model], plans, target, batch_size=batch_size)
    found = {method: maps if isinstance(maps, dict) else {"map": maps} for method, maps in zip(METHODS, found)}
    assert_same_maps(found, one_by_one(model, image, target))


def test_each_model_gets_one_gradient_pass_and_one_forward_pass():
    models = [small_cnn(seed=0), small_cnn(seed=7)]
    image, target = random_image(5), 2
    plans = [resolve(A.METHODS[m].planner)(models[0], image, target, **p) for m, p in METHODS.items()]
    calls = {0: [], 1: []}
    handles = [model.register_forward_hook(lambda _m, inputs, _o, k=k: calls[k].append(inputs[0].shape[0]))
               for k, model in enumerate(models)]
    try:
        passes.evaluate(models, plans, target, batch_size=1000)
    finally:
        for handle in handles:
            handle.remove()
    gradient_points = 1 + 6 + 5 + 1  # saliency, SmoothGrad's samples, the path, Grad-CAM
    probability_points = 1 + 6 * 6  # the clean image, then 6 x 6 boxes
    assert calls == {0: [gradient_points, probability_points], 1: [gradient_points, probability_points]}


def test_maps_are_cached_per_model_and_method_and_only_the_missing_ones_computed(fresh_cache, monkeypatch):
    models = {"trained": small_cnn(seed=0), "untrained": small_cnn(seed=7)}
    image, target = random_image(5), 2
    # The trained maps were drawn before (one method at a time, as the page does without the sanity check).
    alone = {m: A.attribution_map(models["trained"], image, target, m, p) for m, p in METHODS.items()}
    evaluated = []
    original = passes.evaluate
    monkeypatch.setattr(passes, "evaluate", lambda nets, plans, *a, **k: evaluated.append(len(nets)) or original(
        nets, plans, *a, **k))
    found = A.attribution_maps(models, image, target, METHODS)
    assert evaluated == [1]  # only the untrained model was computed
    for method in METHODS:
        assert found["trained"][method]["map"] is not None
        torch.testing.assert_close(found["trained"][method]["map"], alone[method]["map"])
    again = A.attribution_maps(models, image, target, METHODS)
    assert evaluated == [1]  # everything from the cache
    # ... and what was computed together is what attribution_map now finds.
    torch.testing.assert_close(A.attribution_map(models["untrained"], image, target, "gradcam", METHODS["gradcam"])["map"],
                               again["untrained"]["gradcam"]["map"])


def test_progress_counts_the_work_of_every_model_up_to_one():
    seen = []
    model = small_cnn()
    plans = [passes.Plan(lambda found: found.gradients, gradient_points=passes.Points.of(torch.rand(5, 3, 12, 12)))]
    passes.evaluate([model, small_cnn(seed=3)], plans, 0, batch_size=2, progress=lambda f, t: seen.append((f, t)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0) and len(seen) == 6
    assert seen[0][1] == "gradients 2/5 (model 1 of 2)" and seen[-1][1] == "gradients 5/5 (model 2 of 2)"


def test_rank_correlation_equals_scipys_spearman_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = torch.as_tensor(rng.integers(0, 6, (9, 9)).astype(float))  # many ties
        b = torch.as_tensor(rng.normal(size=(9, 9)) + 0.3 * a.numpy())
        assert A.rank_correlation(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    values = rng.integers(0, 4, 50)
    np.testing.assert_array_equal(A.average_ranks(values), rankdata(values))
