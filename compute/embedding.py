"""Embedding methods (``EMBEDDERS``: pca, tsne, umap), the cached layer -> 2-D layout, and placing new points in it.

A :class:`Layout` keeps every fitted part of a layer's embedding: the PCA pre-reduction to <= 50 dimensions and
the fitted 2-D embedder. So new images (an adversarial example, an upload) can be placed into the very scatter
the user sees: PCA projects them, openTSNE's ``TSNEEmbedding.transform`` and UMAP's ``transform`` optimise
them against the fixed layout. Above ``SAMPLE_ABOVE`` points t-SNE and UMAP are fitted on a sample and the other
points (up to a million) placed by their nearest sampled neighbours (:mod:`compute.placement`): hundreds of times
faster per point than ``transform``, which stays for the few images placed one at a time.
"""
from __future__ import annotations

import sys

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from compute.activations import extract
from compute.cache import get_cache, memoize
from compute.errors import UserError
from compute.specs.embedding import EMBEDDERS, ITERATIVE
from compute.placement import layout_quality, sample_neighbours
from compute.projection import (STREAMED_MAX_WIDTH, exact_pca, project_in_chunks, randomized_pca, streamed_pca)
from compute.progress import Progress, scaled

PRE_REDUCE_DIMS = 50
# Beyond this many points t-SNE and UMAP are fitted on a random sample of SAMPLE_SIZE and the rest placed into it:
# the picture is the same at a fraction of the time (openTSNE's fit grows ~N log N, its placement is cheaper).
SAMPLE_ABOVE = 10_000
SAMPLE_SIZE = 10_000
TSNE_REPORT_EVERY = 25  # iterations between the intermediate layouts t-SNE sends to the page
# Beyond this many floats per image a conv layer is embedded from its channel means (spatial pooling).
MAX_FLAT_FEATURES = 32768
# Features bigger than this (or memory-mapped from disk) are PCA-reduced by the streamed pass, one chunk in memory
# at a time; smaller ones by the randomized SVD in torch, as before (its layouts are the ones tests and tour pinned).
STREAM_ABOVE_BYTES = 256 * 2 ** 20
# The 2-D PCA of more rows than this goes through the streamed covariance (an SVD of a million rows takes a
# float64 copy of them).
STREAM_PCA_ROWS_ABOVE = 100_000
NEIGHBOURS_SHARE = 0.2  # of a sampled fit's bar: finding every point's nearest sampled points, before the fit


class CannotPlace(ValueError):
    """The embedding cannot place new points into an existing layout."""


@dataclass
class Fitted:
    """A fitted 2-D embedding: its training coordinates (N, 2) float32, and the fitted object whose
    ``transform(features (M, D)) -> (M, 2)`` places new points (None for a method that cannot)."""

    coordinates: np.ndarray
    estimator: Any = None


def fit_pca(features: np.ndarray, seed: int, progress: Progress | None, initialization=None) -> Fitted:
    """Exact PCA to 2-D (:func:`~compute.projection.exact_pca`: at most 50 columns after the pre-reduction). The first
    picture of a new layer is this layout, and scikit-learn's PCA made it wait for scikit-learn's import in a fresh
    compute process (1.25 s on two cores). A layer with one value per image gets a zero second axis. Beyond
    ``STREAM_PCA_ROWS_ABOVE`` rows the same components come from the streamed covariance."""
    if len(features) > STREAM_PCA_ROWS_ABOVE:
        projection = streamed_pca(features, 2)
        return Fitted(project_in_chunks(projection, features), projection)
    projection, coordinates = exact_pca(features, 2)
    return Fitted(coordinates, projection)


def tsne_initialization(pca_coordinates: np.ndarray, seed: int = 0) -> np.ndarray:
    """The PCA layout (N, 2) scaled as openTSNE wants its start (first column's std 1e-4) with its seeded 1% jitter
    (no two points start equal): the same picture, so the t-SNE that grows from it does not jump to another
    arrangement. openTSNE's own ``initialization="pca"`` is this with its own PCA, whose signs may differ."""
    from openTSNE.initialization import jitter, rescale

    return jitter(rescale(np.asarray(pca_coordinates, dtype=np.float64)), random_state=seed)


def fit_tsne(features: np.ndarray, seed: int, progress: Progress | None, initialization=None) -> Fitted:
    from openTSNE import TSNE

    iterations = 750
    # openTSNE counts iterations per phase (exaggeration, then the rest); add them up for one bar.
    done = {"phase_start": 0, "last": 0}

    def report(iteration: int, _error: float, embedding) -> bool:
        if iteration < done["last"]:
            done["phase_start"] += done["last"]
        done["last"] = iteration
        total = done["phase_start"] + iteration
        if progress:
            # The intermediate layout goes with the report: the page moves its points as t-SNE converges.
            progress(min(1.0, total / iterations), f"t-SNE: iteration {total}/{iterations}",
                     {"coords": np.asarray(embedding, dtype=np.float32)})
        return False

    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    tsne = TSNE(
        n_components=2, perplexity=perplexity,
        initialization="pca" if initialization is None else initialization, random_state=seed, n_jobs=-1,
        early_exaggeration_iter=250, n_iter=500, callbacks=report, callbacks_every_iters=TSNE_REPORT_EVERY,
        # Barnes-Hut is ~5x faster than the FFT scheme below ~10k points (measured: 5 s vs 26 s on 1,797).
        negative_gradient_method="bh" if len(features) < 10_000 else "fft",
    )
    fitted = tsne.fit(features)  # a TSNEEmbedding: the coordinates, plus the affinities that place new points
    # The callback closes over ``progress``: it need not pickle, and must not report again when placing points.
    fitted.gradient_descent_params.update(callbacks=None, use_callbacks=False)
    # A copy: openTSNE's transform re-centres the embedding in place, and the layout shown must not move with it.
    return Fitted(np.array(fitted, dtype=np.float32), fitted)


def fit_umap(features: np.ndarray, seed: int, progress: Progress | None, initialization=None) -> Fitted:
    if progress:
        # UMAP reports nothing while it fits, and only a process's first UMAP compiles numba code (about 25 s):
        # the bar says it cannot measure this step instead of standing still at its last level.
        first = "umap" not in sys.modules
        progress(None, "UMAP: " + ("compiling numba code on its first run (about 25 s), then " if first else "")
                 + "building the neighbour graph and fitting the layout (no progress to show meanwhile)")
    import umap

    # An array start (the PCA layout) is rescaled by umap itself to its usual 0..10 box.
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(features) - 1), random_state=seed,
                        init="spectral" if initialization is None else np.asarray(initialization, dtype=np.float32))
    coordinates = reducer.fit_transform(features)
    if progress:
        progress(1.0, "UMAP: layout fitted")
    return Fitted(coordinates, reducer)




def streams(features) -> bool:
    """Whether ``features`` (N, D) are reduced by the streamed PCA: memory-mapped or large, and not too wide."""
    width = int(np.prod(features.shape[1:]))
    large = isinstance(features, np.memmap) or len(features) * width * 4 > STREAM_ABOVE_BYTES
    return large and width <= STREAMED_MAX_WIDTH


def fit_reduction(features: np.ndarray, dims: int = PRE_REDUCE_DIMS, seed: int = 0,
                  progress: Progress | None = None) -> tuple[Any, np.ndarray]:
    """(the fitted :class:`Projection`, or None when nothing was reduced; the reduced features (N, <= dims) float32).

    A memory-mapped or large feature file is read in chunks (:func:`~compute.projection.streamed_pca`, exact):
    only the (N, dims) result is held whole."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    count, width = len(features), int(np.prod(features.shape[1:]))
    if width <= dims or count <= dims:
        return None, np.asarray(features, dtype=np.float32).reshape(count, -1)
    if streams(features):
        projection = streamed_pca(features, dims, progress=scaled(progress, 0.0, 0.5))
        return projection, project_in_chunks(projection, features, progress=scaled(progress, 0.5, 1.0))
    return randomized_pca(np.asarray(features, dtype=np.float32).reshape(count, -1), dims, seed)


def reduce_dimensions(features: np.ndarray, dims: int = PRE_REDUCE_DIMS, seed: int = 0) -> np.ndarray:
    """Standardise-free PCA to at most ``dims`` dimensions, the usual first step before t-SNE/UMAP.

    PCA to 2-D of the reduced features equals PCA to 2-D of the originals (the top components are kept).
    """
    return fit_reduction(features, dims, seed)[1]


def _transform(fitted: Fitted, method: str, reduced: np.ndarray) -> np.ndarray:
    """Reduced features (M, D) placed by a fitted embedder: (M, 2) float32 in the frame of its coordinates."""
    estimator = fitted.estimator
    placed = np.asarray(estimator.transform(reduced), dtype=np.float64).reshape(len(reduced), 2)
    if method == "tsne":
        # openTSNE's transform re-centres the layout in place (on its bounding box) before placing; shift the new
        # points into the frame of ``coordinates`` (a copy taken at fit time), which the scatter shows.
        placed += np.asarray(fitted.coordinates[0], dtype=np.float64) - np.asarray(estimator[0], dtype=np.float64)
    return placed.astype(np.float32)


@dataclass
class Layout:
    """A fitted 2-D layout: ``coordinates`` (N, 2) float32 of every point, the pre-reduction (a fitted
    :class:`~compute.projection.Projection`, or None) and the fitted embedder; :meth:`place` puts new feature
    vectors into it. ``sample``: the indices (S,) the embedder was fitted on when N was large (the other points were
    placed into it), else None."""

    method: str
    reduction: Any
    fitted: Fitted
    sample: np.ndarray | None = None
    placed_coordinates: np.ndarray | None = None  # (N, 2) of every point when fitted on a sample
    # When fitted on a sample: how well the placed points sit against the fitted ones (compute.placement's
    # ``layout_quality``: trustworthiness, and kNN accuracy in 2-D when labels were given), plain numbers.
    quality: dict | None = None

    @property
    def coordinates(self) -> np.ndarray:
        chosen = self.fitted.coordinates if self.placed_coordinates is None else self.placed_coordinates
        return np.asarray(chosen, dtype=np.float32)

    def place(self, features) -> np.ndarray:
        """(M, D) — or (M, ...) flattened — feature vectors like the fitted ones -> (M, 2) float32 coordinates.

        Raises :class:`CannotPlace` for an embedding that cannot place new points.
        """
        if self.fitted.estimator is None or not hasattr(self.fitted.estimator, "transform"):
            label = EMBEDDERS[self.method].label if self.method in EMBEDDERS else self.method
            raise CannotPlace(f"{label} cannot place new points into an existing layout; choose PCA, t-SNE or UMAP")
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
        if self.reduction is not None:
            features = self.reduction.transform(features).astype(np.float32)
        return _transform(self.fitted, self.method, features)


def choose_sample(count: int, seed: int = 0, limit: int = SAMPLE_ABOVE, size: int = SAMPLE_SIZE) -> np.ndarray | None:
    """Sorted random indices (size,) to fit on when ``count`` > ``limit``, else None (fit on every point)."""
    if count <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(count, size=min(size, count), replace=False))


def fit(features, method: str = "pca", seed: int = 0, progress: Progress | None = None,
        sample_above: int = SAMPLE_ABOVE, sample_size: int = SAMPLE_SIZE, labels=None) -> Layout:
    """Fit ``method`` to ``features`` (N, D) — or (N, ...) flattened — after the <= 50-dim PCA pre-reduction.

    t-SNE and UMAP start from the PCA layout; above ``sample_above`` points they are fitted on a random sample of
    ``sample_size`` and every other point placed at its nearest sampled points (``Layout.sample``), with the
    placement's quality measured (``Layout.quality``; ``labels`` (N,) add kNN accuracy to it).
    """
    if method not in EMBEDDERS:
        raise UserError(f"unknown embedding method {method!r}; choose one of: {', '.join(EMBEDDERS)}")
    reduction, reduced = fit_reduction(features, seed=seed)
    if len(reduced) < 3:
        raise ValueError("an embedding needs at least 3 samples")
    function = EMBEDDERS[method].function
    if method not in ITERATIVE:
        return Layout(method, reduction, function(reduced, seed, progress))
    start = fit_pca(reduced, seed, None).coordinates
    sample = choose_sample(len(reduced), seed, sample_above, sample_size)
    if sample is None:
        initialization = tsne_initialization(start, seed) if method == "tsne" else start
        return Layout(method, reduction, function(reduced, seed, progress, initialization=initialization))
    rest = np.setdiff1d(np.arange(len(reduced)), sample)
    if progress:
        progress(0.0, f"finding the nearest of {len(sample):,} sampled points for the other {len(rest):,}")
    neighbours = sample_neighbours(reduced[sample], reduced[rest], seed=seed,
                                   progress=scaled(progress, 0.0, NEIGHBOURS_SHARE))

    def every_point(sample_coordinates: np.ndarray) -> np.ndarray:
        coordinates = np.empty((len(reduced), 2), dtype=np.float32)
        coordinates[sample] = sample_coordinates
        coordinates[rest] = neighbours.place(sample_coordinates)
        return coordinates

    fitting = scaled(progress, NEIGHBOURS_SHARE, 1.0)

    def spread(fraction: float | None, text: str, partial: dict | None = None) -> None:
        if partial is not None and "coords" in partial:  # the sample's layout -> every point placed into it
            partial = {**partial, "coords": every_point(np.asarray(partial["coords"]))}
        fitting(fraction, text) if partial is None else fitting(fraction, text, partial)

    initialization = tsne_initialization(start[sample], seed) if method == "tsne" else start[sample]
    fitted = function(reduced[sample], seed, spread if progress else None, initialization=initialization)
    coordinates = every_point(fitted.coordinates)
    if progress:
        progress(1.0, f"placed the other {len(rest):,} points into the layout of {len(sample):,}; "
                      "measuring the placement")
    quality = layout_quality(reduced, coordinates, sample, labels, seed=seed)
    return Layout(method, reduction, fitted, sample, coordinates, quality)


def embed(features, method: str = "pca", seed: int = 0, progress: Progress | None = None) -> np.ndarray:
    """Embed ``features`` (N, D) — or (N, ...) flattened — in 2-D with ``method``; returns (N, 2) float32.

    Deterministic for a fixed ``seed``. Unknown methods raise ValueError naming the valid ones.
    """
    return fit(features, method, seed, progress).coordinates


def feature_mode(shape: tuple[int, ...], requested: str = "auto") -> str:
    """``flat`` or ``pooled`` for a layer whose per-image output has ``shape``; auto pools very large maps."""
    if requested in ("flat", "pooled"):
        return requested
    floats = int(np.prod(shape))
    return "pooled" if len(shape) > 1 and floats > MAX_FLAT_FEATURES else "flat"


def features_of(model, images, layer: str, mode: str = "flat", batch_size: int | None = None,
                progress: Progress | None = None) -> np.ndarray:
    """A layer's activations for ``images`` (M, C, H, W): (M, D) float32, flattened or (``"pooled"``) channel
    means; what :meth:`Layout.place` takes."""
    features = extract(model, images, layer, pooled=(mode == "pooled"), batch_size=batch_size, progress=progress)
    return features.reshape(len(features), -1).numpy()


@memoize
def layer_reduction(model, dataset, layer: str, mode: str = "flat", progress: Progress | None = None):
    """(the fitted pre-reduction PCA or None, the reduced features (N, <= 50)) of ``layer`` over the data set."""
    from compute.extraction import dataset_features  # image folders: streamed to disk, decoded in parallel

    return fit_reduction(dataset_features(model, dataset, layer, mode, progress=progress))


@memoize
def layer_features(model, dataset, layer: str, mode: str = "flat", progress: Progress | None = None) -> np.ndarray:
    """A layer's activations for the whole data set, flattened (or pooled) and PCA-reduced to <= 50 dims: (N, D)."""
    return layer_reduction(model, dataset, layer, mode, progress=progress)[1]


@memoize
def layer_layout(model, dataset, layer: str, method: str, mode: str = "flat", seed: int = 0,
                 progress: Progress | None = None) -> Layout:
    """The fitted :class:`Layout` of ``layer`` over the data set (pre-reduction + embedder); cached."""
    reduction, features = layer_reduction(model, dataset, layer, mode, progress=progress)
    # The features are already <= 50 dims, so ``fit`` reduces nothing more: the coordinates are those of
    # ``embed(layer_features(...))``, as they always were.
    inner = fit(features, method, seed=seed, progress=progress, labels=dataset.labels.numpy())
    return Layout(method, reduction, inner.fitted, inner.sample, inner.placed_coordinates, inner.quality)


@memoize
def layer_embedding(model, dataset, layer: str, method: str, mode: str = "flat", seed: int = 0,
                    progress: Progress | None = None) -> np.ndarray:
    """The (N, 2) embedding of ``layer``'s activations over the data set; cached per model, data and parameters."""
    return layer_layout(model, dataset, layer, method, mode, seed, progress=progress).coordinates


def forget_layer(model, dataset, layer: str, mode: str = "flat", methods=tuple(EMBEDDERS)) -> None:
    """Drop what the cache holds of ``layer``'s embedding (its pre-reduced features and its ``methods``' layouts),
    so that the next request computes it again: for benchmarks and tests of a cold layer change."""
    cache = get_cache()
    cache.delete(layer_reduction.key(model, dataset, layer, mode))
    cache.delete(layer_features.key(model, dataset, layer, mode))
    for method in methods:
        cache.delete(layer_layout.key(model, dataset, layer, method, mode))
        cache.delete(layer_embedding.key(model, dataset, layer, method, mode))


def place(model, dataset, layer: str, method: str, mode: str, images, seed: int = 0,
          batch_size: int | None = None, progress: Progress | None = None) -> np.ndarray:
    """Coordinates (M, 2) of new ``images`` (M, C, H, W) in the layout of :func:`layer_embedding` (same arguments).

    The images go through ``layer`` and the same fitted pre-reduction and embedder. PCA projects exactly;
    t-SNE and UMAP optimise each new point against the fixed layout (deterministic, but a training image comes
    back near, not exactly at, its own point). Raises :class:`CannotPlace` for an embedding that cannot place.
    """
    fitted = layer_layout(model, dataset, layer, method, mode, seed, progress=progress)
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = images.unsqueeze(0)
    return fitted.place(features_of(model, images, layer, mode, batch_size=batch_size))
