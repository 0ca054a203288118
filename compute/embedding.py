"""Embedding methods (``EMBEDDERS``: pca, tsne, umap), the cached layer -> 2-D layout, and placing new points in it.

A :class:`Layout` keeps every fitted part of a layer's embedding: the PCA pre-reduction to <= 50 dimensions and
the fitted 2-D embedder. So new images (an adversarial example, an upload) can be placed into the very scatter
the user sees: PCA projects them, openTSNE's ``TSNEEmbedding.transform`` and UMAP's ``transform`` optimise
them against the fixed layout.
"""
from __future__ import annotations

import sys

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from compute.activations import extract
from compute.cache import memoize
from compute.params import Method

Progress = Callable[[float, str], None]
PRE_REDUCE_DIMS = 50
# Beyond this many floats per image a conv layer is embedded from its channel means (spatial pooling).
MAX_FLAT_FEATURES = 32768


class CannotPlace(ValueError):
    """The embedding cannot place new points into an existing layout."""


@dataclass
class Fitted:
    """A fitted 2-D embedding: its training coordinates (N, 2) float32, and the fitted object whose
    ``transform(features (M, D)) -> (M, 2)`` places new points (None for a method that cannot)."""

    coordinates: np.ndarray
    estimator: Any = None


def _fit_pca(features: np.ndarray, seed: int, progress: Progress | None) -> Fitted:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed)
    return Fitted(pca.fit_transform(features), pca)


def _fit_tsne(features: np.ndarray, seed: int, progress: Progress | None) -> Fitted:
    from openTSNE import TSNE

    iterations = 750
    # openTSNE counts iterations per phase (exaggeration, then the rest); add them up for one bar.
    done = {"phase_start": 0, "last": 0}

    def report(iteration: int, _error: float, _embedding) -> bool:
        if iteration < done["last"]:
            done["phase_start"] += done["last"]
        done["last"] = iteration
        total = done["phase_start"] + iteration
        if progress:
            progress(min(1.0, total / iterations), f"t-SNE: iteration {total}/{iterations}")
        return False

    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    tsne = TSNE(
        n_components=2, perplexity=perplexity, initialization="pca", random_state=seed, n_jobs=-1,
        early_exaggeration_iter=250, n_iter=500, callbacks=report, callbacks_every_iters=50,
        # Barnes-Hut is ~5x faster than the FFT scheme below ~10k points (measured: 5 s vs 26 s on 1,797).
        negative_gradient_method="bh" if len(features) < 10_000 else "fft",
    )
    fitted = tsne.fit(features)  # a TSNEEmbedding: the coordinates, plus the affinities that place new points
    # The callback closes over ``progress``: it need not pickle, and must not report again when placing points.
    fitted.gradient_descent_params.update(callbacks=None, use_callbacks=False)
    return Fitted(np.asarray(fitted), fitted)


def _fit_umap(features: np.ndarray, seed: int, progress: Progress | None) -> Fitted:
    if progress:
        # Only a process's first UMAP compiles numba code (about 25 s); later ones would be told so wrongly.
        first = "umap" not in sys.modules
        progress(0.1, "UMAP: building the neighbour graph" + (" (the first run compiles numba code: about 25 s)"
                                                              if first else ""))
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(features) - 1), random_state=seed)
    return Fitted(reducer.fit_transform(features), reducer)


# ``function(features (N, D), seed, progress) -> Fitted``; :func:`embed` returns its coordinates.
EMBEDDERS: dict[str, Method] = {
    "pca": Method(_fit_pca, "PCA", description="linear: the two directions of largest variance"),
    "tsne": Method(_fit_tsne, "t-SNE", description="openTSNE (FFT-accelerated), perplexity 30, PCA initialisation"),
    "umap": Method(_fit_umap, "UMAP", description="umap-learn, 15 neighbours"),
}


def fit_reduction(features: np.ndarray, dims: int = PRE_REDUCE_DIMS, seed: int = 0) -> tuple[Any, np.ndarray]:
    """(the fitted PCA, or None when nothing was reduced; the reduced features (N, <= dims) float32)."""
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    if features.shape[1] <= dims or len(features) <= dims:
        return None, features
    from sklearn.decomposition import PCA

    pca = PCA(n_components=dims, random_state=seed, svd_solver="randomized")
    return pca, pca.fit_transform(features).astype(np.float32)


def reduce_dimensions(features: np.ndarray, dims: int = PRE_REDUCE_DIMS, seed: int = 0) -> np.ndarray:
    """Standardise-free PCA to at most ``dims`` dimensions, the usual first step before t-SNE/UMAP.

    PCA to 2-D of the reduced features equals PCA to 2-D of the originals (the top components are kept).
    """
    return fit_reduction(features, dims, seed)[1]


@dataclass
class Layout:
    """A fitted 2-D layout: ``coordinates`` (N, 2) float32 of the points it was fitted on, the pre-reduction
    (a fitted PCA, or None) and the fitted embedder; :meth:`place` puts new feature vectors into it."""

    method: str
    reduction: Any
    fitted: Fitted

    @property
    def coordinates(self) -> np.ndarray:
        return np.asarray(self.fitted.coordinates, dtype=np.float32)

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
        estimator = self.fitted.estimator
        reference = np.array(estimator[:1]) if self.method == "tsne" else None
        placed = np.asarray(estimator.transform(features), dtype=np.float64).reshape(len(features), 2)
        if reference is not None:
            # openTSNE's transform first re-centres the layout in place (on its bounding box); shift the new
            # points back into the frame of ``coordinates``, which the scatter shows.
            placed += reference[0] - np.asarray(estimator[:1])[0]
        return placed.astype(np.float32)


def fit(features, method: str = "pca", seed: int = 0, progress: Progress | None = None) -> Layout:
    """Fit ``method`` to ``features`` (N, D) — or (N, ...) flattened — after the <= 50-dim PCA pre-reduction."""
    if method not in EMBEDDERS:
        raise ValueError(f"unknown embedding method {method!r}; choose one of: {', '.join(EMBEDDERS)}")
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    reduction, reduced = fit_reduction(features, seed=seed)
    if len(reduced) < 3:
        raise ValueError("an embedding needs at least 3 samples")
    return Layout(method, reduction, EMBEDDERS[method].function(reduced, seed, progress))


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
    return fit_reduction(features_of(model, dataset.images, layer, mode, progress=progress))


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
    inner = fit(features, method, seed=seed, progress=progress)
    return Layout(method, reduction, inner.fitted)


@memoize
def layer_embedding(model, dataset, layer: str, method: str, mode: str = "flat", seed: int = 0,
                    progress: Progress | None = None) -> np.ndarray:
    """The (N, 2) embedding of ``layer``'s activations over the data set; cached per model, data and parameters."""
    return layer_layout(model, dataset, layer, method, mode, seed, progress=progress).coordinates


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
