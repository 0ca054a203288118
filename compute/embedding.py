"""Embedding methods (``EMBEDDERS``: pca, tsne, umap) and the cached layer -> 2-D embedding pipeline."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from compute.activations import extract
from compute.cache import memoize
from compute.params import Method

Progress = Callable[[float, str], None]
PRE_REDUCE_DIMS = 50
# Beyond this many floats per image a conv layer is embedded from its channel means (spatial pooling).
MAX_FLAT_FEATURES = 32768


def _pca(features: np.ndarray, seed: int, progress: Progress | None) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(features)


def _tsne(features: np.ndarray, seed: int, progress: Progress | None) -> np.ndarray:
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
    return np.asarray(tsne.fit(features))


def _umap(features: np.ndarray, seed: int, progress: Progress | None) -> np.ndarray:
    if progress:
        progress(0.1, "UMAP: building the neighbour graph (the first run compiles numba code)")
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(features) - 1), random_state=seed)
    return reducer.fit_transform(features)


EMBEDDERS: dict[str, Method] = {
    "pca": Method(_pca, "PCA", description="linear: the two directions of largest variance"),
    "tsne": Method(_tsne, "t-SNE", description="openTSNE (FFT-accelerated), perplexity 30, PCA initialisation"),
    "umap": Method(_umap, "UMAP", description="umap-learn, 15 neighbours"),
}


def reduce_dimensions(features: np.ndarray, dims: int = PRE_REDUCE_DIMS, seed: int = 0) -> np.ndarray:
    """Standardise-free PCA to at most ``dims`` dimensions, the usual first step before t-SNE/UMAP.

    PCA to 2-D of the reduced features equals PCA to 2-D of the originals (the top components are kept).
    """
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    if features.shape[1] <= dims or len(features) <= dims:
        return features
    from sklearn.decomposition import PCA

    return PCA(n_components=dims, random_state=seed, svd_solver="randomized").fit_transform(features).astype(np.float32)


def embed(features, method: str = "pca", seed: int = 0, progress: Progress | None = None) -> np.ndarray:
    """Embed ``features`` (N, D) — or (N, ...) flattened — in 2-D with ``method``; returns (N, 2) float32.

    Deterministic for a fixed ``seed``. Unknown methods raise ValueError naming the valid ones.
    """
    if method not in EMBEDDERS:
        raise ValueError(f"unknown embedding method {method!r}; choose one of: {', '.join(EMBEDDERS)}")
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    reduced = reduce_dimensions(features, seed=seed)
    if len(reduced) < 3:
        raise ValueError("an embedding needs at least 3 samples")
    return np.asarray(EMBEDDERS[method].function(reduced, seed, progress), dtype=np.float32)


def feature_mode(shape: tuple[int, ...], requested: str = "auto") -> str:
    """``flat`` or ``pooled`` for a layer whose per-image output has ``shape``; auto pools very large maps."""
    if requested in ("flat", "pooled"):
        return requested
    floats = int(np.prod(shape))
    return "pooled" if len(shape) > 1 and floats > MAX_FLAT_FEATURES else "flat"


@memoize
def layer_features(model, dataset, layer: str, mode: str = "flat", progress: Progress | None = None) -> np.ndarray:
    """A layer's activations for the whole data set, flattened (or pooled) and PCA-reduced to <= 50 dims: (N, D)."""
    features = extract(model, dataset.images, layer, pooled=(mode == "pooled"), progress=progress)
    return reduce_dimensions(features.reshape(len(features), -1).numpy())


@memoize
def layer_embedding(model, dataset, layer: str, method: str, mode: str = "flat", seed: int = 0,
                    progress: Progress | None = None) -> np.ndarray:
    """The (N, 2) embedding of ``layer``'s activations over the data set; cached per model, data and parameters."""
    features = layer_features(model, dataset, layer, mode, progress=progress)
    return embed(features, method, seed=seed, progress=progress)
