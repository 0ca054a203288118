"""Tests of compute.placement and the streamed PCA (compute.projection): layouts at a million points.

References: numpy's SVD and scikit-learn's PCA for the streamed pass; brute-force nearest neighbours and a naive
loop for the placement; an analytic case (a sampled point is placed on itself); and, at 50,000 points, fitting every
point with the same embedder.
"""
from __future__ import annotations

import numpy as np
import pytest

from compute import embedding, placement
from compute.errors import Cancelled
from compute.projection import exact_pca, project_in_chunks, streamed_pca
from tests.layout_data import curved_clusters


def offset_low_rank(count: int, dims: int, seed: int = 0) -> np.ndarray:
    """Data with a decaying spectrum and a large common offset (like ReLU features, all positive)."""
    rng = np.random.default_rng(seed)
    scales = 10.0 / (1.0 + np.arange(dims)) ** 1.2
    basis, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
    return ((rng.normal(size=(count, dims)) * scales) @ basis.T + 100.0 + rng.normal(size=dims)).astype(np.float32)


def memory_map(path, array: np.ndarray) -> np.ndarray:
    np.save(path, array)
    return np.load(path, mmap_mode="r")


def assert_columns_equal_up_to_sign(got: np.ndarray, expected: np.ndarray, tolerance: float) -> None:
    for column in range(expected.shape[1]):
        sign = np.sign(np.dot(got[:, column], expected[:, column])) or 1.0
        error = np.abs(sign * got[:, column] - expected[:, column]).max()
        assert error <= tolerance * np.abs(expected[:, column]).max(), (column, error)


# ------------------------------------------------------------------------------------------------- streamed PCA


def test_streamed_pca_of_a_memory_mapped_file_equals_exact_pca(tmp_path):
    from sklearn.decomposition import PCA

    data = offset_low_rank(5000, 40)
    features = memory_map(tmp_path / "features.npy", data)
    projection = streamed_pca(features, 10, chunk_rows=777)  # 7 chunks, the last one short
    reference = PCA(n_components=10, svd_solver="full").fit(data.astype(np.float64))
    np.testing.assert_allclose(projection.mean, reference.mean_, rtol=1e-6)
    np.testing.assert_allclose(projection.explained_variance, reference.explained_variance_, rtol=1e-5)
    for got, expected in zip(projection.components, reference.components_):
        assert abs(float(np.dot(got, expected))) > 1 - 1e-6
    projected = project_in_chunks(projection, features, chunk_rows=1000)
    assert projected.shape == (5000, 10) and projected.dtype == np.float32
    assert_columns_equal_up_to_sign(projected, reference.transform(data.astype(np.float64)), 1e-4)
    # The chunk size changes nothing but rounding; the signs follow exact_pca's convention.
    whole = streamed_pca(data, 10, chunk_rows=5000)
    np.testing.assert_allclose(whole.components, projection.components, atol=1e-5)
    exact, _ = exact_pca(data, 10)
    np.testing.assert_allclose(projection.components, exact.components, atol=1e-4)


def test_a_memory_mapped_layer_is_reduced_by_the_streamed_pass_to_the_exact_components(tmp_path, monkeypatch):
    data = offset_low_rank(800, 90, seed=1)
    features = memory_map(tmp_path / "layer.npy", data)
    calls = []
    original = embedding.streamed_pca
    monkeypatch.setattr(embedding, "streamed_pca", lambda *a, **k: calls.append(1) or original(*a, **k))
    projection, reduced = embedding.fit_reduction(features)
    assert calls == [1] and reduced.shape == (800, embedding.PRE_REDUCE_DIMS)
    centred = data.astype(np.float64) - data.astype(np.float64).mean(axis=0)
    _u, _s, rows = np.linalg.svd(centred, full_matrices=False)
    assert_columns_equal_up_to_sign(reduced[:, :10], centred @ rows[:10].T, 1e-4)
    np.testing.assert_allclose(projection.transform(data[:5]), reduced[:5], atol=1e-3)
    # held in memory and small, the randomized SVD as before
    monkeypatch.setattr(embedding, "streamed_pca", lambda *a, **k: pytest.fail("streamed a small array"))
    embedding.fit_reduction(data)


def test_the_2d_pca_of_many_rows_streams_and_equals_the_exact_layout(monkeypatch):
    data = offset_low_rank(3000, 30, seed=2)
    exact = embedding.fit_pca(data, 0, None).coordinates
    monkeypatch.setattr(embedding, "STREAM_PCA_ROWS_ABOVE", 1000)
    streamed = embedding.fit_pca(data, 0, None)
    assert streamed.coordinates.shape == (3000, 2)
    # the same sign convention: equal, not merely up to sign
    np.testing.assert_allclose(streamed.coordinates, exact, atol=1e-4 * np.abs(exact).max())


def test_streamed_pca_reports_progress_per_chunk_and_can_be_cancelled():
    data = offset_low_rank(1000, 8)
    seen = []
    streamed_pca(data, 2, chunk_rows=300, progress=lambda fraction, text: seen.append(fraction))
    assert seen == [0.3, 0.6, 0.9, 1.0]

    def cancel(fraction, text):
        raise Cancelled("nobody waits")

    with pytest.raises(Cancelled):
        streamed_pca(data, 2, chunk_rows=300, progress=cancel)


# ---------------------------------------------------------------------------------------------------- placement


def test_kernel_weights_follow_the_formula_and_a_sampled_point_takes_all_the_weight():
    weights = placement.kernel_weights(np.array([[1.0, 2.0, 3.0], [0.0, 0.5, 1.0]]))
    expected = np.exp(-np.array([0.0, 3.0, 8.0]))  # exp(-(d^2 - d0^2) / d0^2) with d0 = 1
    np.testing.assert_allclose(weights[0], expected / expected.sum(), rtol=1e-6)
    np.testing.assert_array_equal(weights[1], [1.0, 0.0, 0.0])
    inverse = placement.inverse_distance_weights(np.array([[1.0, 2.0, 4.0]]))
    np.testing.assert_allclose(inverse[0], np.array([1, 0.5, 0.25]) / 1.75, rtol=1e-6)


def test_points_that_are_sample_points_are_placed_exactly_on_them():
    features, _ = curved_clusters(3000, dims=12, seed=3)
    sample_coordinates = np.random.default_rng(0).normal(size=(3000, 2)).astype(np.float32)
    order = np.random.default_rng(1).permutation(3000)
    neighbours = placement.sample_neighbours(features, features[order], chunk_rows=1000)
    np.testing.assert_array_equal(neighbours.indices[:, 0], order)
    np.testing.assert_array_equal(neighbours.place(sample_coordinates), sample_coordinates[order])


def brute_force_placement(sample_features, features, sample_coordinates, k=placement.PLACEMENT_NEIGHBOURS):
    """The reference: exact neighbours by a full distance matrix and the weighted mean by a loop."""
    distances = np.linalg.norm(features[:, None, :].astype(np.float64) - sample_features[None], axis=-1)
    nearest = np.argsort(distances, axis=1)[:, :k]
    placed = np.zeros((len(features), 2))
    for row, found in enumerate(nearest):
        weights = placement.kernel_weights(distances[row, found][None])[0]
        for weight, index in zip(weights, found):
            placed[row] += weight * sample_coordinates[index]
    return nearest, placed


def test_placement_equals_the_brute_force_neighbours_weighted_mean():
    features, _ = curved_clusters(2500, dims=12, seed=4)
    sample_features, queries = features[:2000], features[2000:]
    sample_coordinates = np.random.default_rng(0).normal(size=(2000, 2)).astype(np.float32)
    neighbours = placement.sample_neighbours(sample_features, queries, chunk_rows=128)
    nearest, expected = brute_force_placement(sample_features, queries, sample_coordinates)
    same = np.all(np.sort(neighbours.indices, axis=1) == np.sort(nearest, axis=1), axis=1)
    assert same.mean() > 0.95  # an approximate search (measured: 0.99+)
    np.testing.assert_allclose(neighbours.place(sample_coordinates)[same], expected[same], atol=1e-5)


def test_a_large_set_is_fitted_on_a_sample_and_the_rest_placed_by_their_sampled_neighbours():
    features, labels = curved_clusters(2000, dims=12, seed=5)
    reports = []
    layout = embedding.fit(features, "tsne", sample_above=1000, sample_size=1000, labels=labels,
                           progress=lambda f, text, partial=None: reports.append((f, text, partial)))
    assert len(layout.sample) == 1000
    points = layout.coordinates
    assert points.shape == (2000, 2) and np.isfinite(points).all()
    np.testing.assert_array_equal(points[layout.sample], layout.fitted.coordinates)
    rest = np.setdiff1d(np.arange(2000), layout.sample)
    nearest, expected = brute_force_placement(features[layout.sample], features[rest], layout.fitted.coordinates)
    close = np.linalg.norm(points[rest] - expected, axis=1) <= 1e-4 * np.ptp(points)
    assert close.mean() > 0.95
    # Held-out placed points sit almost as well as fitted ones: kNN accuracy within 0.05 (1,000 points each: a
    # binomial std of ~0.012 per share, so 0.05 is noise plus a small loss; a placement into the wrong cluster
    # costs far more).
    quality = layout.quality
    print(quality)
    assert quality["held_out"] == 1000 and quality["neighbours"] == placement.QUALITY_NEIGHBOURS
    assert quality["knn_accuracy_placed"] >= quality["knn_accuracy_fitted"] - 0.05
    assert quality["trustworthiness_placed"] >= quality["trustworthiness_fitted"] - 0.02
    assert quality["knn_accuracy_placed"] == placement.knn_accuracy(
        points, labels, placement.held_out_points(2000, layout.sample)[0])
    # Every intermediate layout shows all 2,000 points; the bar only rises.
    partials = [partial["coords"] for _, _, partial in reports if partial is not None]
    assert partials and all(p.shape == (2000, 2) for p in partials)
    fractions = [f for f, _, _ in reports if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("nearest of 1,000 sampled points for the other 1,000" in text for _, text, _ in reports)


def test_a_cancel_while_placing_stops_the_fit():
    features, _ = curved_clusters(1500, dims=8, seed=6)

    def cancel(fraction, text, partial=None):
        if "nearest" in text and fraction and fraction > 0:
            raise Cancelled("nobody waits")

    with pytest.raises(Cancelled):
        embedding.fit(features, "tsne", sample_above=500, sample_size=500, progress=cancel)


def umap_layout(features: np.ndarray, epochs: int) -> np.ndarray:
    """UMAP (15 neighbours, started from the PCA layout, as ``fit_umap``) with few epochs: affordable at 50,000."""
    import umap

    start = embedding.fit_pca(features, 0, None).coordinates
    return umap.UMAP(n_neighbors=15, n_epochs=epochs, random_state=0, init=start).fit_transform(features)


def test_placement_quality_at_50000_points_is_within_a_margin_of_fitting_every_point():
    """Fitted on 10,000 of 50,000 and the rest placed, against UMAP fitted on all 50,000 (same settings): on 1,000
    held-out placed points, kNN accuracy in 2-D within 0.03 and trustworthiness within 0.02 of the full fit's.

    Why these margins: the classes overlap (a 10-NN classifier in feature space scores ~0.84), and two full fits with
    different seeds differ by about 0.01 in kNN accuracy on 1,000 points (binomial std of a 0.83 share: 0.012);
    0.03 is that noise plus a small real loss. Measured here (10-D features, 60 epochs): see the README's benchmark section."""
    features, labels = curved_clusters(50_000, dims=10, seed=7)
    sample = embedding.choose_sample(len(features))
    held_out, _ = placement.held_out_points(len(features), sample)
    rest = np.setdiff1d(np.arange(len(features)), sample)
    fitted = umap_layout(features[sample], epochs=60)
    placed = np.empty((len(features), 2), dtype=np.float32)
    placed[sample] = fitted
    placed[rest] = placement.sample_neighbours(features[sample], features[rest]).place(fitted)
    full = umap_layout(features, epochs=60)
    placed_quality = placement.group_quality(features, placed, held_out, labels)
    full_quality = placement.group_quality(features, full, held_out, labels)
    print("placed", placed_quality, "full", full_quality)
    assert placed_quality["knn_accuracy"] >= full_quality["knn_accuracy"] - 0.03
    assert placed_quality["trustworthiness"] >= full_quality["trustworthiness"] - 0.02
    assert full_quality["knn_accuracy"] > 0.7  # the full fit itself keeps the classes (a broken reference fails)
