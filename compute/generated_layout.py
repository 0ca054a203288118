"""A generated layout of many points over a small data set, to exercise the scatter at a million points without
extracting a million images: set ``FEATURESCOPE_GENERATED_POINTS=1000000`` and the scatter job returns that many
points, point i standing for sample ``i % len(data set)`` (its class, its prediction; a click opens that sample).

For tests and benchmarks of the page (tests/browser/test_million_points_journey.py, bench/big_scatter.py): the
layout is drawn at random around one centre per class, not computed from features, and its title says so.
"""
from __future__ import annotations

import os

import numpy as np

GENERATED_POINTS_ENV = "FEATURESCOPE_GENERATED_POINTS"
MAX_GENERATED_POINTS = 5_000_000


def generated_points() -> int | None:
    """The number of points asked for by :data:`GENERATED_POINTS_ENV` (None when unset), clamped to
    [1, MAX_GENERATED_POINTS]."""
    value = os.environ.get(GENERATED_POINTS_ENV, "").strip()
    if not value:
        return None
    return int(min(max(int(float(value)), 1), MAX_GENERATED_POINTS))


def generated_layout(labels: np.ndarray, predicted: np.ndarray, count: int, seed: int = 0) -> dict:
    """``count`` points over the samples of ``labels`` (N,) and ``predicted`` (N,): ``samples`` (count,) int32
    (point i is sample i % N), their ``labels`` and ``predicted`` (count,) int32, and ``coords`` (count, 2) float32:
    each class a cloud of three Gaussian blobs of different spread around its own centre on a circle, so that the
    density has structure at every zoom."""
    rng = np.random.default_rng(seed)
    samples = (np.arange(count, dtype=np.int64) % len(labels)).astype(np.int32)
    point_labels = np.asarray(labels)[samples].astype(np.int32)
    classes = int(point_labels.max()) + 1
    angle = 2 * np.pi * np.arange(classes) / classes
    centres = 10.0 * np.column_stack([np.cos(angle), np.sin(angle)])
    blob_offsets = rng.normal(0.0, 1.5, size=(classes, 3, 2))
    blob_spreads = rng.uniform(0.2, 1.2, size=(classes, 3))
    blob = rng.integers(0, 3, size=count)
    offsets = blob_offsets[point_labels, blob]
    spreads = blob_spreads[point_labels, blob][:, None]
    coords = centres[point_labels] + offsets + spreads * rng.standard_normal((count, 2))
    return {"samples": samples, "labels": point_labels,
            "predicted": np.asarray(predicted)[samples].astype(np.int32), "coords": coords.astype(np.float32)}
