"""Tests of compute.evolution (aligned layouts over checkpoints, per-epoch numbers, the job) and its figures."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from components import evolution as figures
from compute import evolution, models
from compute.jobs.table import run
from compute.specs.source import Source


def tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 12), nn.ReLU(),
                         nn.Linear(12, 3)).eval()


def blobs(count: int = 240, dims: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian clusters in ``dims`` dimensions, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 3
    centres = rng.normal(0, 6, (3, dims))
    return (centres[labels] + rng.normal(0, 1, (count, dims))).astype(np.float32), labels


def rotation(degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


# ------------------------------------------------------------------------------------------ alignment

@pytest.mark.parametrize("mirrored", [False, True])
def test_procrustes_recovers_a_rotated_and_a_mirrored_layout(mirrored):
    layout = np.random.default_rng(1).normal(size=(200, 2)) * [3.0, 1.0] + [5.0, -2.0]
    moved = layout @ rotation(37.0).T
    if mirrored:
        moved = moved * [-1.0, 1.0]
    moved = moved * 4.0 + 11.0  # shifted and scaled too: every layout is normalised
    recovered = evolution.procrustes_align(moved, layout)
    assert np.allclose(recovered, evolution.normalise(layout), atol=1e-9)
    # without the alignment the normalised layouts differ by the full rotation
    assert not np.allclose(evolution.normalise(moved), evolution.normalise(layout), atol=0.1)


def test_normalised_layout_is_centred_with_unit_rms_radius():
    layout = evolution.normalise(np.random.default_rng(2).normal(5, 3, size=(50, 2)))
    assert np.allclose(layout.mean(axis=0), 0)
    assert np.sqrt((layout**2).sum(axis=1).mean()) == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_identical_checkpoints_give_coinciding_layouts(method):
    model = tiny_model(0)
    images = torch.rand(150, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(150) % 3
    # t-SNE is slow on a busy CPU: its third, different checkpoint is left to the PCA case.
    checkpoints = [model, copy.deepcopy(model)] + ([tiny_model(1)] if method == "pca" else [])
    result = evolution.embed_checkpoints(checkpoints, images, "4", method, labels=labels, device="cpu")
    assert result.layouts.shape == (len(checkpoints), 150, 2) and result.layouts.dtype == np.float32
    assert np.allclose(result.layouts[0], result.layouts[1], atol=1e-6)
    if method == "pca":
        assert not np.allclose(result.layouts[1], result.layouts[2], atol=1e-2)
    assert result.alignment == evolution.ALIGNMENTS[method]


def test_pca_of_rotated_features_is_aligned_back():
    features, labels = blobs(dims=6)
    orthogonal, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(6, 6)))
    result = evolution.aligned_layouts([features, (features @ orthogonal).astype(np.float32)], "pca", labels,
                                       np.arange(len(labels)) % 4 == 0)
    assert np.allclose(result["layouts"][0], result["layouts"][1], atol=1e-4)


def test_tsne_started_from_the_previous_layout_stays_in_place_for_a_small_change():
    features, labels = blobs(count=150)
    changed = features + np.random.default_rng(4).normal(0, 0.05, features.shape).astype(np.float32)
    is_test = np.arange(150) % 5 == 0
    aligned = evolution.aligned_layouts([features, changed], "tsne", labels, is_test)["layouts"]
    drift = np.sqrt(((aligned[1] - aligned[0]) ** 2).sum(axis=1).mean())
    # Reference: fresh t-SNEs of the changed features (other seeds), aligned only by Procrustes. One seed alone is a
    # coin toss (0.08 to 0.16 on a layout about 2 wide, measured), so the typical one is compared.
    fresh_drifts = []
    for seed in (1, 2, 3, 5):
        fresh = evolution.aligned_layouts([changed], "tsne", labels, is_test, seed=seed)["layouts"][0]
        aligned_fresh = evolution.procrustes_align(fresh, aligned[0])
        fresh_drifts.append(np.sqrt(((aligned_fresh - aligned[0]) ** 2).sum(axis=1).mean()))
    assert drift < 0.1 and drift < 0.5 * np.median(fresh_drifts)


# ------------------------------------------------------------------------------------------ per-epoch numbers

def test_knn_accuracy_matches_a_naive_vote():
    points, labels = blobs(count=90, dims=3, seed=6)
    points = points + np.random.default_rng(7).normal(0, 5, points.shape)  # overlapping, so some votes fail
    is_test = np.arange(90) % 4 == 0
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    correct = 0
    for i in test:
        nearest = train[np.argsort(((points[train] - points[i]) ** 2).sum(axis=1), kind="stable")[:5]]
        correct += np.bincount(labels[nearest], minlength=3).argmax() == labels[i]
    assert evolution.knn_accuracy(points, labels, is_test) == pytest.approx(correct / len(test))
    assert 0.3 < correct / len(test) < 1.0


def test_a_two_dimensional_layer_is_perfectly_trustworthy():
    features, labels = blobs(count=120, dims=2)
    result = evolution.aligned_layouts([features], "pca", labels, np.arange(120) % 4 == 0)
    assert result["trustworthiness"][0] == pytest.approx(1.0)


def test_batch_size_does_not_change_the_evolution():
    models_ = [tiny_model(0), tiny_model(1)]
    images = torch.rand(60, 1, 6, 6, generator=torch.Generator().manual_seed(8))
    labels = torch.arange(60) % 3
    small = evolution.embed_checkpoints(models_, images, "3", "pca", labels=labels, batch_size=7, device="cpu")
    large = evolution.embed_checkpoints(models_, images, "3", "pca", labels=labels, batch_size=64, device="cpu")
    assert np.allclose(small.layouts, large.layouts, atol=1e-5)
    assert np.array_equal(small.predicted, large.predicted)


def test_knn_accuracy_in_feature_space_rises_with_training(trained_model, digits):
    found = models.checkpoints("digits-cnn")
    result = evolution.embed_checkpoints([found[0], found[-1]], digits, "relu4", "pca", device="cpu")
    assert result.epochs == [0, 10]
    # Early conv layers of an untrained net already separate the digits (~97% k-NN); relu4 shows the training.
    assert result.knn_features[1] > result.knn_features[0] + 0.02
    assert result.test_accuracy == pytest.approx([found[0].test_accuracy, found[-1].test_accuracy])
    assert result.knn_layout[1] > result.knn_layout[0]
    assert np.all((0.5 < result.trustworthiness) & (result.trustworthiness <= 1))


def test_evolution_job_returns_every_epoch_as_one_array(trained_model, digits):
    progress = []
    result = run(Source(), "evolution.embed", {"layer": "relu4", "method": "pca"},
                 progress=lambda fraction, text, partial=None: progress.append(fraction))
    assert result["layouts"].shape == (11, len(digits), 2) and result["layouts"].dtype == np.float32
    assert result["predicted"].shape == (11, len(digits))
    assert np.array_equal(result["labels"], digits.labels.numpy())
    assert result["epochs"] == list(range(11)) and result["run"] == "default"
    assert all(len(result[key]) == 11 for key, _, _ in figures.METRICS)
    assert result["alignment"] == evolution.ALIGNMENTS["pca"]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ figures

def test_animated_scatter_has_one_frame_per_epoch_with_fixed_ranges():
    layouts = np.random.default_rng(9).normal(size=(4, 30, 2)) * np.array([1, 2, 3, 4])[:, None, None]
    labels = np.arange(30) % 3
    figure = figures.evolution_scatter(layouts, labels, ["a", "b", "c"], epochs=[0, 2, 4, 6], selected=7)
    assert [frame.name for frame in figure.frames] == ["0", "2", "4", "6"]
    assert [step.label for step in figure.layout.sliders[0].steps] == ["0", "2", "4", "6"]
    assert figure.layout.updatemenus[0].buttons[0].method == "animate"
    assert figure.layout.xaxis.autorange is False and figure.layout.yaxis.autorange is False
    x_range, y_range = figure.layout.xaxis.range, figure.layout.yaxis.range
    assert x_range[0] <= layouts[..., 0].min() and x_range[1] >= layouts[..., 0].max()
    assert y_range[0] <= layouts[..., 1].min() and y_range[1] >= layouts[..., 1].max()
    for frame, layout in zip(figure.frames, layouts):
        ring = frame.data[-1]
        assert (ring.x[0], ring.y[0]) == pytest.approx(tuple(layout[7]), abs=1e-3)
        shown = {int(i) for trace in frame.data[:-1] for i, _epoch in np.asarray(trace.customdata)}
        assert shown == set(range(30))  # every point in every frame
    path = next(trace for trace in figure.data if trace.name == figures.PATH_TRACE)
    assert np.allclose(np.c_[path.x, path.y], layouts[:, 7])


def test_animated_scatter_points_say_their_sample_and_epoch():
    layouts = np.random.default_rng(10).normal(size=(2, 12, 2))
    figure = figures.evolution_scatter(layouts, np.arange(12) % 2, ["even", "odd"], epochs=[0, 5])
    last = figure.frames[1].data[1]  # class "odd" in epoch 5
    assert [tuple(row) for row in np.asarray(last.customdata)] == [(i, 5) for i in range(1, 12, 2)]
    assert np.allclose(np.c_[last.x, last.y], layouts[1, 1::2], atol=1e-3)
    assert len(figure.frames[0].data[-1].x) == 0  # nothing selected: an empty ring


def test_before_after_and_metrics_figures():
    layouts = np.random.default_rng(11).normal(size=(3, 20, 2))
    pair = figures.before_after(layouts, np.arange(20) % 2, ["a", "b"], epochs=[0, 1, 2], selected=3)
    rings = [trace for trace in pair.data if trace.name == figures.SELECTION_TRACE]
    assert np.allclose([(ring.x[0], ring.y[0]) for ring in rings], layouts[[0, 2], 3], atol=1e-3)
    assert pair.layout.xaxis.range == pair.layout.xaxis2.range
    numbers = {"test_accuracy": [0.1, 0.5, 0.9], "knn_features": [0.8, 0.9, 0.95], "knn_layout": [0.5, 0.7, float("nan")],
               "trustworthiness": [0.9, 0.9, 0.92]}
    lines = figures.evolution_metrics(numbers, [0, 1, 2], current=1)
    assert [trace.name for trace in lines.data] == [label for _, label, _ in figures.METRICS]
    assert list(lines.data[0].y) == [0.1, 0.5, 0.9]
    assert list(lines.data[2].y) == [0.5, 0.7, None]
