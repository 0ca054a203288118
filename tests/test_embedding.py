"""Tests of compute.embedding: PCA against an SVD reference, t-SNE/UMAP shape, determinism and cluster separation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compute import activations, embedding
from compute.cache import CACHE_DIR_ENV
from compute.data import Dataset
from compute.specs.params import Method


def clusters(per_cluster: int = 50, dims: int = 20, count: int = 3, spread: float = 12.0, seed: int = 0):
    """``count`` Gaussian blobs (unit variance) with centres ``spread`` apart in random directions; (X, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count, dims))
    centres *= spread / np.linalg.norm(centres, axis=1, keepdims=True)
    features = np.concatenate([centre + rng.normal(size=(per_cluster, dims)) for centre in centres])
    labels = np.repeat(np.arange(count), per_cluster)
    return features.astype(np.float32), labels


def low_rank(count: int, dims: int, seed: int = 0) -> np.ndarray:
    """Data with clearly separated leading variances (10, 6, 3, then small), so the top two PCs are well defined."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
    scales = np.concatenate([[10.0, 6.0, 3.0], np.linspace(1.0, 0.1, dims - 3)])
    latent = rng.normal(size=(count, dims)) * scales
    return (latent @ basis.T + rng.normal(size=dims) * 5).astype(np.float32)


def svd_projection(features: np.ndarray) -> np.ndarray:
    """The reference: centred data projected on its top two right singular vectors (float64)."""
    centred = features.astype(np.float64) - features.astype(np.float64).mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def assert_equal_up_to_column_sign(got: np.ndarray, expected: np.ndarray, tolerance: float):
    for column in range(2):
        sign = np.sign(np.dot(got[:, column], expected[:, column])) or 1.0
        error = np.max(np.abs(sign * got[:, column] - expected[:, column]))
        assert error <= tolerance * np.max(np.abs(expected[:, column])), (column, error)


def nearest_neighbour_agreement(points: np.ndarray, labels: np.ndarray) -> float:
    distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return float(np.mean(labels[distances.argmin(axis=1)] == labels))


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embed_returns_n_by_2_float32_and_is_deterministic_for_a_seed(method):
    features, _ = clusters(per_cluster=40)
    first = embedding.embed(features, method, seed=3)
    second = embedding.embed(features.copy(), method, seed=3)
    assert first.shape == (len(features), 2)
    assert first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)


def test_umap_returns_n_by_2_float32_deterministic_for_a_seed_and_keeps_clusters_apart():
    # umap compiles numba code on its first call (~20 s): one test covers it.
    features, labels = clusters(per_cluster=40, seed=2)
    first = embedding.embed(features, "umap", seed=5)
    second = embedding.embed(features, "umap", seed=5)
    assert first.shape == (len(features), 2)
    assert first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    assert nearest_neighbour_agreement(first, labels) > 0.95


def test_tsne_keeps_well_separated_clusters_apart():
    features, labels = clusters(per_cluster=60, dims=30, count=4, seed=1)
    points = embedding.embed(features, "tsne", seed=0)
    assert nearest_neighbour_agreement(points, labels) > 0.95
    # and the clusters are far apart compared with their own size
    centres = np.stack([points[labels == k].mean(axis=0) for k in range(4)])
    radius = max(np.linalg.norm(points[labels == k] - centres[k], axis=1).mean() for k in range(4))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(4) for j in range(i + 1, 4)]
    assert min(gaps) > 2 * radius


def test_tsne_seed_changes_the_result():
    features, _ = clusters(per_cluster=30)
    assert not np.array_equal(embedding.embed(features, "tsne", seed=0), embedding.embed(features, "tsne", seed=1))


def test_pca_equals_the_svd_projection_up_to_column_sign():
    features = low_rank(120, 12)
    got = embedding.embed(features, "pca")
    assert_equal_up_to_column_sign(got, svd_projection(features), 1e-4)


def test_pca_of_more_than_50_dims_keeps_the_top_components_through_pre_reduction():
    features = low_rank(200, 90, seed=4)
    assert embedding.reduce_dimensions(features).shape == (200, embedding.PRE_REDUCE_DIMS)
    got = embedding.embed(features, "pca")
    assert got.shape == (200, 2)
    assert_equal_up_to_column_sign(got, svd_projection(features), 1e-3)


def test_pca_of_a_torch_tensor_with_image_shaped_rows_is_flattened_first():
    features = low_rank(60, 2 * 3 * 4, seed=5)
    tensor = torch.from_numpy(features).reshape(60, 2, 3, 4)
    got = embedding.embed(tensor, "pca")
    assert_equal_up_to_column_sign(got, svd_projection(features), 1e-4)


def test_reduce_dimensions_preserves_pairwise_structure_of_low_rank_data():
    rng = np.random.default_rng(0)
    features = (rng.normal(size=(80, 10)) @ rng.normal(size=(10, 70))).astype(np.float32)  # rank 10 in 70 dims
    reduced = embedding.reduce_dimensions(features)
    assert reduced.shape == (80, 50) and reduced.dtype == np.float32
    original = np.linalg.norm(features[:, None] - features[None], axis=-1)
    kept = np.linalg.norm(reduced[:, None] - reduced[None], axis=-1)
    np.testing.assert_allclose(kept, original, rtol=1e-3, atol=1e-3 * original.max())


def test_the_randomized_pre_reduction_finds_numpys_exact_principal_components():
    """The torch randomized SVD against an exact SVD (numpy) of wide data with a decaying spectrum, like a conv layer's
    features: the top components agree (up to sign), the projection is theirs, and ``transform`` projects new rows."""
    from compute.projection import randomized_pca

    rng = np.random.default_rng(3)
    scales = 10.0 / (1.0 + np.arange(120)) ** 1.5  # a spectrum that decays, as a layer's does
    features = ((rng.normal(size=(600, 120)) * scales) @ rng.normal(size=(120, 3000))).astype(np.float32) + 5.0
    projection, reduced = randomized_pca(features, 50, seed=0)
    centred = features.astype(np.float64) - features.mean(axis=0, dtype=np.float64)
    _u, singular, rows = np.linalg.svd(centred, full_matrices=False)
    for k in range(10):  # the leading directions, which the 2-D layouts are made of
        assert abs(float(np.dot(projection.components[k], rows[k]))) > 0.999, k
    captured = float(np.sum(projection.explained_variance)) / float(np.sum(singular[:50] ** 2) / 599)
    assert captured > 0.999
    assert_equal_up_to_column_sign(reduced[:, :10], (centred @ rows[:10].T).astype(np.float32), 1e-3)
    np.testing.assert_allclose(projection.transform(features[:7]), reduced[:7], atol=1e-3)
    again, _ = randomized_pca(features, 50, seed=0)
    np.testing.assert_array_equal(again.components, projection.components)  # seeded: the same every run


def test_reduce_dimensions_leaves_small_inputs_alone():
    small = np.arange(30.0).reshape(3, 10)
    np.testing.assert_array_equal(embedding.reduce_dimensions(small), small.astype(np.float32))
    few_rows = np.random.default_rng(0).normal(size=(20, 200))
    assert embedding.reduce_dimensions(few_rows).shape == (20, 200)


def test_unknown_method_raises_value_error_naming_the_methods():
    with pytest.raises(ValueError) as raised:
        embedding.embed(np.zeros((10, 3)), "isomap")
    message = str(raised.value)
    assert "isomap" in message
    for name in ("pca", "tsne", "umap"):
        assert name in message


def test_fewer_than_three_samples_raise_value_error():
    with pytest.raises(ValueError, match="at least 3"):
        embedding.embed(np.ones((2, 4)), "pca")


def test_feature_mode_pools_only_large_conv_maps():
    assert embedding.feature_mode((64, 4, 4)) == "flat"
    assert embedding.feature_mode((256, 32, 32)) == "pooled"
    assert embedding.feature_mode((100_000,)) == "flat"  # a linear layer is never pooled
    assert embedding.feature_mode((256, 32, 32), "flat") == "flat"
    assert embedding.feature_mode((4, 2, 2), "pooled") == "pooled"


def test_layer_embedding_is_cached_and_equals_embedding_the_layer_features(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).eval()
    images = torch.rand((40, 1, 6, 6), generator=torch.Generator().manual_seed(0))
    dataset = Dataset(name="tiny", images=images, labels=torch.zeros(40, dtype=torch.int64), classes=["a"],
                      is_test=torch.zeros(40, dtype=torch.bool), fingerprint="tiny-test-data")

    features = embedding.layer_features(model, dataset, "1")
    expected = activations.extract(model, images, "1", batch_size=40).reshape(40, -1).numpy()
    assert features.shape == (40, 3 * 6 * 6)  # 40 rows <= 50: not pre-reduced
    np.testing.assert_allclose(features, expected, rtol=1e-6)
    pooled = embedding.layer_features(model, dataset, "1", "pooled")
    np.testing.assert_allclose(pooled, expected.reshape(40, 3, 36).mean(axis=2), rtol=1e-5, atol=1e-7)

    first = embedding.layer_embedding(model, dataset, "1", "pca")
    np.testing.assert_array_equal(first, embedding.embed(features, "pca"))
    calls = []
    monkeypatch.setattr(embedding, "embed", lambda *args, **kwargs: calls.append(1))
    np.testing.assert_array_equal(embedding.layer_embedding(model, dataset, "1", "pca"), first)
    assert calls == []  # the second request came from the cache


def curve_images(t) -> torch.Tensor:
    """Images (N, 1, 8, 8): a Gaussian spot moving along a curve as ``t`` (N,) goes from 0 to 1, a 1-D manifold
    whose order t-SNE and UMAP keep, so "near its own point" means something (unlike noise blobs)."""
    t = torch.as_tensor(np.asarray(t), dtype=torch.float32)
    rows, columns = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    x, y = 1 + 5 * t, 1 + 5 * (0.5 + 0.5 * torch.sin(3 * t))
    spots = torch.exp(-((columns - x[:, None, None]) ** 2 + (rows - y[:, None, None]) ** 2) / 2.0)
    return spots[:, None]


CURVE_T = np.linspace(0.0, 1.0, 120)


def placing_setup(tmp_path, monkeypatch):
    """120 curve images in three classes by t; a conv layer of 3 x 8 x 8 = 192 values (so > 50 dims: the
    pre-reduction PCA is part of the layout)."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(192, 3)).eval()
    labels = torch.as_tensor(np.minimum(2, (3 * CURVE_T).astype(int)))
    dataset = Dataset(name="curve", images=curve_images(CURVE_T), labels=labels, classes=["a", "b", "c"],
                      is_test=torch.zeros(120, dtype=torch.bool), fingerprint="curve-test-data")
    return model, dataset


def test_layer_embedding_still_equals_embedding_the_reduced_layer_features(tmp_path, monkeypatch):
    model, dataset = placing_setup(tmp_path, monkeypatch)
    features = embedding.layer_features(model, dataset, "1")
    assert features.shape == (120, embedding.PRE_REDUCE_DIMS)
    for method in ("pca", "tsne"):
        np.testing.assert_array_equal(embedding.layer_embedding(model, dataset, "1", method),
                                      embedding.embed(features, method))


def test_place_projects_the_training_images_onto_their_own_pca_coordinates(tmp_path, monkeypatch):
    model, dataset = placing_setup(tmp_path, monkeypatch)
    layout = embedding.layer_embedding(model, dataset, "1", "pca")
    placed = embedding.place(model, dataset, "1", "pca", "flat", dataset.images)
    assert placed.shape == (120, 2) and placed.dtype == np.float32
    # the same fitted pre-reduction and PCA: equal up to float32 rounding
    np.testing.assert_allclose(placed, layout, rtol=0, atol=1e-5 * np.ptp(layout))
    pooled_layout = embedding.layer_embedding(model, dataset, "1", "pca", "pooled")
    np.testing.assert_allclose(embedding.place(model, dataset, "1", "pca", "pooled", dataset.images[:5]),
                               pooled_layout[:5], rtol=0, atol=1e-5 * np.ptp(pooled_layout))


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_place_puts_training_images_near_their_own_points_and_new_images_between_their_neighbours(
        tmp_path, monkeypatch, method):
    # t-SNE and UMAP optimise a new point against the fixed layout, so a training image comes back near its own
    # point, not on it. Tolerance: 90% within 5% of the layout's extent (measured here: t-SNE 90% within 0.6%,
    # UMAP within 3%; on the digits' relu2/relu4: t-SNE 95% within 0.1%, UMAP within 0.9%).
    model, dataset = placing_setup(tmp_path, monkeypatch)
    layout = embedding.layer_embedding(model, dataset, "1", method)
    extent = np.ptp(layout, axis=0).max()
    chosen = np.arange(0, 120, 4)
    placed = embedding.place(model, dataset, "1", method, "flat", dataset.images[chosen])
    assert placed.shape == (30, 2) and placed.dtype == np.float32 and np.isfinite(placed).all()
    assert np.mean(np.linalg.norm(placed - layout[chosen], axis=1) <= 0.05 * extent) >= 0.9
    # New images halfway between two training images land next to them: the nearest layout point's t is
    # within 6 spacings (0.05) of the new image's t (measured: at most 0.021).
    new_t = CURVE_T[chosen] + 0.5 * (CURVE_T[1] - CURVE_T[0])
    new_points = embedding.place(model, dataset, "1", method, "flat", curve_images(new_t))
    nearest = np.linalg.norm(new_points[:, None] - layout[None], axis=-1).argmin(axis=1)
    assert np.abs(CURVE_T[nearest] - new_t).max() <= 0.05
    # deterministic, and the same from the cached (pickled) layout
    np.testing.assert_allclose(embedding.place(model, dataset, "1", method, "flat", dataset.images[chosen]), placed,
                               rtol=0, atol=1e-4 * extent)


def test_place_says_so_for_an_embedding_that_cannot_place_points(tmp_path, monkeypatch):
    model, dataset = placing_setup(tmp_path, monkeypatch)
    fixed = Method(lambda features, seed, progress: embedding.Fitted(features[:, :2].copy()), "Fixed")
    monkeypatch.setitem(embedding.EMBEDDERS, "fixed", fixed)
    assert embedding.layer_embedding(model, dataset, "1", "fixed").shape == (120, 2)
    with pytest.raises(embedding.CannotPlace, match="Fixed cannot place new points"):
        embedding.place(model, dataset, "1", "fixed", "flat", dataset.images[:2])


# ------------------------------------------------------------------ PCA start, streamed layouts, fitting on a sample


def five_nearest_neighbour_accuracy(points: np.ndarray, labels: np.ndarray) -> float:
    """Brute force: each point's class by majority vote of its 5 nearest other points in ``points``."""
    distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :5]
    votes = np.array([np.bincount(labels[row], minlength=labels.max() + 1).argmax() for row in nearest])
    return float(np.mean(votes == labels))


def test_tsne_grown_from_the_pca_layout_is_as_good_as_the_default_start_on_the_built_in_model(trained_model, digits):
    from sklearn.manifold import trustworthiness

    features = embedding.layer_features(trained_model, digits, "relu2")
    labels = digits.labels.numpy()
    today = embedding.fit_tsne(features, 0, None).coordinates  # openTSNE's own initialization="pca", as before
    random_start = embedding.fit_tsne(features, 0, None, initialization="random").coordinates
    from_pca = embedding.fit(features, "tsne").coordinates
    scores = {name: (five_nearest_neighbour_accuracy(points, labels), trustworthiness(features, points, n_neighbors=5))
              for name, points in (("today", today), ("random", random_start), ("from_pca", from_pca))}
    print("5-NN accuracy, trustworthiness:", scores)
    assert scores["from_pca"][0] >= scores["today"][0] - 0.01
    assert scores["from_pca"][1] >= scores["today"][1] - 0.01
    assert scores["from_pca"][0] >= scores["random"][0] - 0.01
    assert scores["from_pca"][1] >= scores["random"][1] - 0.01


def axis_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The smaller of the two per-axis Pearson correlations of layouts a and b (N, 2)."""
    return min(float(np.corrcoef(a[:, k], b[:, k])[0, 1]) for k in range(2))


def test_tsne_starts_from_the_pca_layout_and_reports_its_layouts_as_it_converges():
    features, labels = clusters(per_cluster=60, dims=30, count=4, seed=1)
    reports = []
    layout = embedding.fit(features, "tsne", progress=lambda f, text, partial=None: reports.append((f, partial)))
    pca = embedding.embed(features, "pca")
    layouts = [partial["coords"] for _, partial in reports if partial is not None]
    assert len(layouts) == 750 // embedding.TSNE_REPORT_EVERY
    assert all(points.shape == (240, 2) and points.dtype == np.float32 for points in layouts)
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # The first intermediate layout is still the PCA picture (same signs, same arrangement): no jump.
    assert axis_correlation(layouts[0], pca) > 0.8
    # The last report is one step before the end (measured: 4e-4 of the extent away).
    np.testing.assert_allclose(layouts[-1], layout.coordinates, rtol=0, atol=2e-3 * np.ptp(layout.coordinates))
    np.testing.assert_allclose(embedding.tsne_initialization(pca).std(axis=0)[0], 1e-4, rtol=0.02)


def test_umap_is_started_from_the_pca_layout(monkeypatch):
    import umap

    seen = {}

    class Recording:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def fit_transform(self, features):
            return np.asarray(seen["init"])

    monkeypatch.setattr(umap, "UMAP", Recording)
    features, _ = clusters(per_cluster=30)
    got = embedding.fit(features, "umap").coordinates
    np.testing.assert_allclose(seen["init"], embedding.embed(features, "pca"), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, seen["init"])


def test_choose_sample_takes_a_sorted_random_subset_only_above_the_limit():
    assert embedding.choose_sample(10_000) is None
    sample = embedding.choose_sample(50_000, seed=3)
    assert sample.shape == (embedding.SAMPLE_SIZE,) and np.all(np.diff(sample) > 0) and sample.max() < 50_000
    np.testing.assert_array_equal(sample, embedding.choose_sample(50_000, seed=3))


# Fitting on a sample and placing the rest: tests/test_placement.py.
