"""Nearest neighbours in a layer's feature space equal a brute-force search."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compute import activations, embedding, neighbours
from compute.neighbours import nearest
from compute.jobs.table import run
from compute.specs.source import Source


def brute_force(features: np.ndarray, query: np.ndarray, k: int, exclude=None):
    """A naive loop: every distance in float64, sorted (ties to the smaller index)."""
    indices, distances = [], []
    for row, q in enumerate(query):
        pairs = []
        for i, f in enumerate(features):
            if exclude is not None and exclude[row] == i:
                continue
            pairs.append((float(np.sqrt(((f.astype(np.float64) - q.astype(np.float64)) ** 2).sum())), i))
        pairs.sort()
        indices.append([i for _, i in pairs[:k]])
        distances.append([d for d, _ in pairs[:k]])
    return np.array(indices), np.array(distances)


@pytest.mark.parametrize("count", [10, 300, 5_000])
def test_nearest_equals_brute_force(count):
    generator = np.random.default_rng(0)
    features = generator.normal(size=(count, 12)).astype(np.float32)
    query = generator.normal(size=(5, 12)).astype(np.float32)
    indices, distances = nearest(features, query, 9)
    expected_indices, expected_distances = brute_force(features, query, 9)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-5, atol=1e-5)


def test_a_query_from_the_data_leaves_itself_out_and_ties_go_to_the_smaller_index():
    features = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    indices, distances = nearest(features, features[[0]], 3, exclude=np.array([0]))
    np.testing.assert_array_equal(indices, [[1, 2, 3]])  # three at distance 1: in index order
    np.testing.assert_allclose(distances, [[1.0, 1.0, 1.0]])
    assert nearest(features, features[0], 99, exclude=np.array([0]))[0].shape == (1, 4)  # k capped at N - 1


def test_the_own_row_is_left_out_even_among_more_exact_duplicates_than_k():
    """Five copies of one point: the query's own row (3) never comes back, whichever copies the search found."""
    features = np.array([[1.0, 1.0]] * 5 + [[2.0, 2.0], [9.0, 9.0]], dtype=np.float32)
    for own in range(5):
        indices, distances = nearest(features, features[[own]], 2, exclude=np.array([own]))
        assert own not in indices[0] and set(indices[0]) <= set(range(5)) - {own}
        np.testing.assert_array_equal(distances, [[0.0, 0.0]])
        assert list(indices[0]) == sorted(indices[0])
    indices, _ = nearest(features, features[[6, 5]], 3, exclude=np.array([6, -1]))  # -1: leave nothing out
    assert 6 not in indices[0] and indices[1][0] == 5


def test_the_job_searches_the_scatters_feature_space(trained_model, digits):
    layer = "conv2"
    result = run(Source(), "neighbours.nearest", {"index": 10, "layer": layer, "k": 6})
    mode = embedding.feature_mode(tuple(activations.single(trained_model, digits.images[0], [layer])[layer].shape))
    features = embedding.layer_features(trained_model, digits, layer, mode)
    expected_indices, expected_distances = brute_force(features, features[[10]], 6, exclude=[10])
    np.testing.assert_array_equal(result["indices"], expected_indices[0])
    np.testing.assert_allclose(result["distances"], expected_distances[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(result["labels"], digits.labels[expected_indices[0]].numpy())
    assert result["dimensions"] == features.shape[1]


def test_a_derived_image_is_projected_into_the_same_space(trained_model, digits):
    """An adversarial image's neighbours: its features through the scatter's own fitted PCA, searched by brute force."""
    layer, variant = "conv2", {"kind": "adversarial", "method": "fgsm", "epsilon": 0.05}
    result = run(Source(), "neighbours.nearest", {"index": 3, "layer": layer, "k": 4, "variant": variant})
    mode = embedding.feature_mode(tuple(activations.single(trained_model, digits.images[0], [layer])[layer].shape))
    reduction, features = embedding.layer_reduction(trained_model, digits, layer, mode)
    image = run(Source(), "details.panels", {"index": 3, "layer": layer, "variant": variant})["image"]
    vector = embedding.features_of(trained_model, torch.as_tensor(image)[None], layer, mode)
    query = reduction.transform(vector) if reduction is not None else vector
    expected_indices, _ = brute_force(features, query, 4)
    np.testing.assert_array_equal(result["indices"], expected_indices[0])


def test_a_bad_k_is_refused_with_a_message():
    with pytest.raises(ValueError, match="1 to 200"):
        run(Source(), "neighbours.nearest", {"index": 0, "layer": "conv2", "k": 0})


# ---------------------------------------------------------------------------------------------- novelty

def test_own_nearest_distances_are_each_rows_distance_to_its_nearest_other_row():
    features = np.random.default_rng(1).normal(size=(60, 5)).astype(np.float32)
    expected = np.array([np.sort(np.linalg.norm(features.astype(np.float64) - row, axis=1))[1] for row in features])
    np.testing.assert_allclose(neighbours.own_nearest_distances(features), expected, rtol=1e-5)
    sampled = neighbours.own_nearest_distances(features, sample=10, seed=3)
    rows = np.sort(np.random.default_rng(3).choice(60, 10, replace=False))
    np.testing.assert_allclose(sampled, expected[rows], rtol=1e-5)  # a sample's rows against every row


def test_a_point_far_from_a_cloud_is_unlike_it_and_one_inside_is_not():
    cloud = np.random.default_rng(2).normal(size=(400, 3)).astype(np.float32)
    own = neighbours.own_nearest_distances(cloud)
    inside = neighbours.novelty(cloud, np.zeros(3, np.float32), own)
    far = neighbours.novelty(cloud, np.full(3, 12.0, np.float32), own)
    assert not inside.unlike and inside.share_closer < 0.9
    assert far.unlike and far.share_closer == 1.0 and far.distance > own.max()
    expected = np.linalg.norm(cloud - 12.0, axis=1)
    assert far.nearest == int(expected.argmin()) and far.distance == pytest.approx(float(expected.min()), rel=1e-5)
    assert far.typical == pytest.approx(float(np.median(own))) and far.reference_size == 400
    assert far.as_dict()["unlike"] is True
