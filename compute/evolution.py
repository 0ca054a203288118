"""Evolution during training: a layer's 2-D embedding at every saved epoch, aligned so motion means change.

Slides 5 and 6 (Rauber et al. 2017): the same images embedded with the untrained model, each epoch, and the
trained one. Independent embeddings of each epoch would rotate, mirror and reshuffle at random, so each epoch is
tied to the previous one (``ALIGNMENTS`` says how, in a sentence the page shows):

* PCA: each epoch on its own, then rotated or mirrored onto the previous epoch by orthogonal Procrustes;
* t-SNE: epoch 0 as in the explore view, every later epoch started from the previous epoch's layout;
* UMAP: umap-learn's AlignedUMAP of all epochs at once (``_aligned_umap`` says why not ``init=``).

t-SNE and UMAP are Procrustes-aligned too, which removes what little rotation is left. Every layout is centred
and scaled to unit RMS radius, so the animation shows the arrangement, not the growth of the activations.
Per epoch: test accuracy, k-NN accuracy (k=5, test split predicted from the training split) in the layer's
feature space and in 2-D, and trustworthiness (scikit-learn) of the 2-D layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from compute import training  # the family's training runs and their jobs (importing registers them)
from compute.activations import extract
from compute.cache import array_fingerprint, memoize
from compute.device import activation_floats, batch_size_for, model_device, pick_device
from compute.embedding import embed, feature_mode, reduce_dimensions
from compute.workspace import job, scaled

Progress = Callable[[float, str], None]
NEIGHBOURS = 5
# Trustworthiness sorts an N x N distance matrix; above this many points it uses a fixed random subsample.
TRUST_SAMPLE = 2000
# Warm-started t-SNE: iterations per later epoch, without early exaggeration (measured: a fresh run's 750
# iterations with exaggeration reshuffle the clusters even for identical features; these keep them in place).
TSNE_WARM_ITERATIONS = 250
ALIGNMENTS = {
    "pca": "PCA of each epoch, rotated or mirrored onto the previous epoch by orthogonal Procrustes.",
    "tsne": "t-SNE of each epoch started from the previous epoch's layout (openTSNE, "
            f"{TSNE_WARM_ITERATIONS} iterations without exaggeration), then rotated onto it by Procrustes.",
    "umap": "AlignedUMAP (umap-learn) of all epochs at once, each point tied to itself in the next epoch, then "
            "rotated onto the previous epoch by Procrustes.",
}


@dataclass
class Evolution:
    """Aligned layouts and per-epoch numbers of one layer over a sequence of checkpoints.

    layouts: (E, N, 2) float32, one aligned layout per checkpoint, each centred with unit RMS radius.
    predicted: (E, N) int64, each epoch's predicted class. The per-epoch numbers are (E,) float64 (NaN without
    labels). trust_sample: how many points trustworthiness was computed on.
    """

    epochs: list[int]
    layouts: np.ndarray
    predicted: np.ndarray
    test_accuracy: np.ndarray
    knn_features: np.ndarray
    knn_layout: np.ndarray
    trustworthiness: np.ndarray
    method: str
    layer: str
    mode: str
    alignment: str
    trust_sample: int

    def numbers(self) -> dict[str, list[float]]:
        """The per-epoch numbers as plain lists, for a page or a table."""
        return {"test_accuracy": self.test_accuracy.tolist(), "knn_features": self.knn_features.tolist(),
                "knn_layout": self.knn_layout.tolist(), "trustworthiness": self.trustworthiness.tolist()}


# ------------------------------------------------------------------------------------------ alignment

def normalise(layout: np.ndarray) -> np.ndarray:
    """``layout`` (N, 2) centred and scaled to unit root-mean-square distance from its centre."""
    centred = np.asarray(layout, dtype=np.float64) - np.mean(layout, axis=0)
    radius = np.sqrt(np.mean(np.sum(centred**2, axis=1)))
    return centred / radius if radius > 0 else centred


def procrustes_align(layout: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``layout`` (N, 2), normalised, then rotated or mirrored to best match normalised ``reference`` (N, 2).

    The orthogonal matrix minimising ||layout R - reference|| (scipy's orthogonal Procrustes; its determinant may
    be -1, so a mirrored layout is undone too).
    """
    from scipy.linalg import orthogonal_procrustes

    moving, fixed = normalise(layout), normalise(reference)
    rotation, _ = orthogonal_procrustes(moving, fixed)
    return moving @ rotation


def _tsne_from(features: np.ndarray, previous: np.ndarray, seed: int, progress: Progress | None) -> np.ndarray:
    """t-SNE of ``features`` (N, D) warm-started from ``previous`` (N, 2), the previous epoch's raw t-SNE layout.

    openTSNE expects a tiny initialisation (std 1e-4) only when it runs early exaggeration to form the clusters;
    started from a converged layout at its own scale it only has to move what changed.
    """
    import logging

    from openTSNE import TSNE

    def report(iteration: int, _error: float, _embedding) -> bool:
        if progress:
            progress(min(1.0, iteration / TSNE_WARM_ITERATIONS), f"t-SNE: iteration {iteration}/{TSNE_WARM_ITERATIONS}")
        return False

    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    # Threads pay off only for large layouts: below ~1,000 points their per-iteration synchronisation costs more
    # than it saves (measured on a busy 2-core machine: 200 points, 4 s with one thread, 29 s with two).
    threads = 1 if len(features) < 1000 else -1
    tsne = TSNE(n_components=2, perplexity=perplexity, random_state=seed, n_jobs=threads, early_exaggeration_iter=0,
                n_iter=TSNE_WARM_ITERATIONS, callbacks=report, callbacks_every_iters=50,
                negative_gradient_method="bh" if len(features) < 10_000 else "fft")
    quiet = logging.getLogger("openTSNE.tsne")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warning about a wide initialisation is the point here
    try:
        return np.asarray(tsne.fit(features, initialization=np.ascontiguousarray(previous, dtype=np.float64)))
    finally:
        quiet.setLevel(level)


def _aligned_umap(features: list, seed: int, progress: Progress | None) -> list[np.ndarray]:
    """umap-learn's AlignedUMAP of every epoch at once (each point is itself in the next epoch): E x (N, 2).

    Chosen over UMAP started from the previous layout (init=), measured on 4 epochs of relu2 on 2 busy cores:
    init= costs 17 s CPU but moves points by 0.23-0.27 RMS radius per step even where the features barely
    change (it reruns the whole optimisation); AlignedUMAP costs 55 s CPU and moves them by 0.02-0.04.
    It is one fit, so progress is reported only before and after it.
    """
    if progress:
        progress(0.05, f"AlignedUMAP of {len(features)} epochs (the first run compiles numba code)")
    import umap

    if len(features) == 1:
        return [np.asarray(embed(features[0], "umap", seed=seed))]
    identity = {i: i for i in range(len(features[0]))}
    reducer = umap.AlignedUMAP(n_neighbors=min(15, len(features[0]) - 1), random_state=seed)
    reducer.fit(list(features), relations=[identity] * (len(features) - 1))
    return [np.asarray(layout) for layout in reducer.embeddings_]


def _layout_scores(features: np.ndarray, layout: np.ndarray, labels: np.ndarray | None, is_test: np.ndarray) -> tuple[float, float]:
    """(k-NN accuracy in 2-D, trustworthiness of ``layout`` against ``features``)."""
    from sklearn.manifold import trustworthiness

    sample = np.arange(len(layout))
    if len(sample) > TRUST_SAMPLE:
        sample = np.sort(np.random.default_rng(0).permutation(len(layout))[:TRUST_SAMPLE])
    trust = float(trustworthiness(features[sample], layout[sample], n_neighbors=NEIGHBOURS))
    return knn_accuracy(layout, labels, is_test), trust


@memoize
def aligned_layouts(features: list, method: str, labels, is_test, seed: int = 0,
                    progress: Progress | None = None) -> dict:
    """Aligned layouts of a sequence of feature matrices, each (N, D): {"layouts": (E, N, 2) float32, "knn_layout",
    "trustworthiness": (E,) float64}. Identical consecutive features give the identical layout."""
    if method not in ALIGNMENTS:
        raise ValueError(f"unknown embedding method {method!r}; choose one of: {', '.join(ALIGNMENTS)}")
    layouts, knn_2d, trust = [], [], []
    raw_previous, previous_key = None, None
    keys = [array_fingerprint(f) for f in features]
    distinct = [i for i, key in enumerate(keys) if i == 0 or key != keys[i - 1]]
    umap_layouts = dict(zip(distinct, _aligned_umap([features[i] for i in distinct], seed, progress))) if method == "umap" else {}
    for index, epoch_features in enumerate(features):
        step = _scaled(progress, index / len(features), (index + 1) / len(features), f"epoch {index + 1}/{len(features)}: ")
        key = keys[index]
        if key == previous_key:
            raw = raw_previous  # same features, same layout: no motion that is not in the features
        elif method == "umap":
            raw = umap_layouts[index]
        elif raw_previous is None or method == "pca":
            raw = embed(epoch_features, method, seed=seed, progress=step)
        else:
            raw = _tsne_from(epoch_features, raw_previous, seed, step)
        layout = normalise(raw) if not layouts else procrustes_align(raw, layouts[-1])
        layouts.append(layout)
        scores = _layout_scores(epoch_features, layout, labels, is_test)
        knn_2d.append(scores[0])
        trust.append(scores[1])
        raw_previous, previous_key = raw, key
    return {"layouts": np.stack(layouts).astype(np.float32), "knn_layout": np.asarray(knn_2d),
            "trustworthiness": np.asarray(trust)}


# ------------------------------------------------------------------------------------------ per-epoch features

def knn_accuracy(points: np.ndarray, labels: np.ndarray | None, is_test: np.ndarray) -> float:
    """Accuracy of a k-NN classifier (k=5) fitted on the training rows of ``points`` (N, D), scored on the test rows."""
    if labels is None or is_test.all() or not is_test.any():
        return float("nan")
    from sklearn.neighbors import KNeighborsClassifier

    classifier = KNeighborsClassifier(n_neighbors=NEIGHBOURS).fit(points[~is_test], labels[~is_test])
    return float(classifier.score(points[is_test], labels[is_test]))


def _predict(model: torch.nn.Module, images, batch_size: int) -> np.ndarray:
    device = model_device(model)
    chunks = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            chunks.append(model(images[start : start + batch_size].to(device)).argmax(1).cpu())
    return torch.cat(chunks).numpy()


@memoize
def epoch_features(model, images, layer: str, mode: str, labels, is_test, batch_size: int | None = None,
                   progress: Progress | None = None) -> dict:
    """One checkpoint's view of the images: {"features": (N, <=50) float32, the layer's features PCA-reduced as
    the embeddings see them, "predicted": (N,) int64, "knn_features": k-NN accuracy in the full feature space}."""
    tensor = getattr(images, "images", images)
    if batch_size is None:
        batch_size = batch_size_for(model_device(model), activation_floats(model, tuple(tensor.shape[1:])))
    model.eval()
    raw = extract(model, tensor, layer, pooled=(mode == "pooled"), batch_size=batch_size, progress=progress)
    raw = raw.reshape(len(raw), -1).numpy()
    return {"features": reduce_dimensions(raw), "predicted": _predict(model, tensor, batch_size),
            "knn_features": knn_accuracy(raw, labels, is_test)}


# ------------------------------------------------------------------------------------------ the whole evolution

def _scaled(progress: Progress | None, start: float, end: float, prefix: str = "") -> Progress | None:
    if progress is None:
        return None
    return lambda fraction, text: progress(start + (end - start) * max(0.0, min(1.0, fraction)), prefix + text)


def _as_model(checkpoint, device) -> torch.nn.Module:
    if isinstance(checkpoint, torch.nn.Module):
        return checkpoint
    return training.model_from_checkpoint(checkpoint, device)


def embed_checkpoints(
    checkpoints: Sequence,
    images,
    layer: str,
    method: str,
    seed: int = 0,
    mode: str = "auto",
    progress: Progress | None = None,
    labels=None,
    is_test=None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> Evolution:
    """The aligned embedding of ``layer`` at each checkpoint, and the per-epoch numbers.

    checkpoints: ``compute.models.Checkpoint`` (loaded onto ``device``, default cuda when present) or models,
    oldest first. images: a ``Dataset`` (its labels and test split are used) or (N, C, H, W) images with
    ``labels`` (N,) and optionally ``is_test`` (N,) bool (default: every fifth image is a test image).
    mode: ``flat``, ``pooled`` or ``auto`` (pools very large maps). Cached per checkpoint and as a whole.
    """
    if method not in ALIGNMENTS:
        raise ValueError(f"unknown embedding method {method!r}; choose one of: {', '.join(ALIGNMENTS)}")
    if not checkpoints:
        raise ValueError("an evolution needs at least one checkpoint")
    tensor = getattr(images, "images", images)
    labels = getattr(images, "labels", labels)
    is_test = getattr(images, "is_test", is_test)
    labels = None if labels is None else np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
    is_test = (np.arange(len(tensor)) % 5 == 0) if is_test is None else np.asarray(torch.as_tensor(is_test).cpu(), dtype=bool)
    device = pick_device("auto") if device is None else device
    epochs = [getattr(c, "epoch", index) for index, c in enumerate(checkpoints)]
    first = _as_model(checkpoints[0], device)
    mode = feature_mode(tuple(extract(first, tensor[:1], layer, batch_size=1).shape[1:]), mode)

    per_epoch = []
    for index, checkpoint in enumerate(checkpoints):
        model = first if index == 0 else _as_model(checkpoint, device)
        step = _scaled(progress, 0.4 * index / len(epochs), 0.4 * (index + 1) / len(epochs), f"epoch {epochs[index]}: ")
        per_epoch.append(epoch_features(model, images, layer, mode, labels, is_test, batch_size=batch_size, progress=step))
    layouts = aligned_layouts([e["features"] for e in per_epoch], method, labels, is_test, seed=seed,
                              progress=_scaled(progress, 0.4, 1.0))
    predicted = np.stack([e["predicted"] for e in per_epoch]).astype(np.int64)
    test_accuracy = (predicted[:, is_test] == labels[is_test]).mean(axis=1) if labels is not None else np.full(len(epochs), np.nan)
    if progress:
        progress(1.0, f"evolution of {layer}: {len(epochs)} epochs")
    return Evolution(
        epochs=epochs, layouts=layouts["layouts"], predicted=predicted, test_accuracy=np.asarray(test_accuracy, dtype=np.float64),
        knn_features=np.asarray([e["knn_features"] for e in per_epoch]), knn_layout=layouts["knn_layout"],
        trustworthiness=layouts["trustworthiness"], method=method, layer=layer, mode=mode,
        alignment=ALIGNMENTS[method], trust_sample=min(len(tensor), TRUST_SAMPLE),
    )


# ------------------------------------------------------------------------------------------ jobs

@job("evolution.embed")
def embed_job(workspace, progress, layer: str, method: str = "pca", mode: str = "auto", run: str | None = None,
              seed: int = 0) -> dict:
    """Every epoch's aligned layout of ``layer`` for run ``run`` (None: the built-in model's own training).

    Returns layouts (E, N, 2) float32 (all frames at once, so the page animates without a round trip per frame),
    labels (N,), is_test (N,), predicted (E, N), the per-epoch numbers, epochs, classes and the alignment sentence.
    """
    model, data = training.built_in(workspace)
    needs_training = run in (None, training.DEFAULT_RUN) and not any(
        r.name == training.DEFAULT_RUN for r in training.runs(model, data))
    split = 0.3 if needs_training else 0.0
    checkpoints = training.run_checkpoints(run, progress=scaled(progress, 0.0, split) if needs_training else None,
                                           model=model, dataset=data)
    dataset = workspace.dataset
    # The checkpoints are loaded into models of this job's own, so the workspace's lock is not needed.
    evolution = embed_checkpoints(checkpoints, dataset, layer, method, seed=seed, mode=mode,
                                  progress=scaled(progress, split, 1.0), device=workspace.device)
    return {"run": run or training.DEFAULT_RUN, "epochs": evolution.epochs, "layouts": evolution.layouts,
            "labels": dataset.labels.numpy().astype(np.int64), "is_test": dataset.is_test.numpy().astype(bool),
            "classes": list(dataset.classes), "predicted": evolution.predicted, **evolution.numbers(),
            "alignment": evolution.alignment, "method": method, "layer": layer, "mode": evolution.mode,
            "trust_sample": evolution.trust_sample}
