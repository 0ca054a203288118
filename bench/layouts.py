"""Layouts at a million points: the streamed PCA against exact PCA in memory, placing points by their nearest
sampled neighbours against openTSNE's / UMAP's own ``transform``, and the placement's quality against fitting every
point. Generated features (tests/layout_data.py: a 10-class Gaussian mixture on a curved 3-D manifold in 64-D).

- ``pca``: 1,000,000 x 64 float32 in a memory-mapped .npy; the streamed pass (fit + projection, chunk by chunk)
  against numpy's exact SVD of the same array held in memory (float64, as ``exact_pca``), and their agreement.
- ``place``: t-SNE and UMAP fitted on 10,000 of ``--points`` (1,000,000); the rest placed by pynndescent neighbours
  (seconds per point) against ``transform`` of ``--transform-points`` (2,000) in the same run; the ratio per point.
- ``quality``: at 50,000 points, the layout fitted on 10,000 with the rest placed against fitting all 50,000:
  trustworthiness and kNN accuracy in 2-D (k = 10) on 1,000 held-out placed points, for both placement rules.

``python -m bench.layouts [--parts pca place quality] [--methods tsne umap] [--points 1000000]``
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from compute import embedding, placement
from compute.projection import project_in_chunks, streamed_pca
from tests.layout_data import curved_clusters


def load() -> str:
    with open("/proc/loadavg") as file:
        return file.read().strip()


def generated_memmap(path: str, count: int, dims: int = 64, chunk: int = 100_000) -> np.ndarray:
    """A (count, dims) float32 .npy of curved clusters written chunk by chunk, opened as a memory map."""
    features = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, dims))
    for start in range(0, count, chunk):
        end = min(count, start + chunk)
        features[start:end] = curved_clusters(end - start, dims, seed=start // chunk)[0]
    features.flush()
    return np.load(path, mmap_mode="r")


def bench_pca(count: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        features = generated_memmap(os.path.join(directory, "features.npy"), count)
        start = time.perf_counter()
        projection = streamed_pca(features, 50)
        streamed_projected = project_in_chunks(projection, features)
        streamed = time.perf_counter() - start
        start = time.perf_counter()
        in_memory = np.asarray(features, dtype=np.float64)
        centred = in_memory - in_memory.mean(axis=0)
        _, _, rows = np.linalg.svd(centred, full_matrices=False)
        exact_projected = centred @ rows[:50].T
        exact = time.perf_counter() - start
    signs = np.sign(np.sum(streamed_projected[:, :10] * exact_projected[:, :10], axis=0))
    error = np.abs(streamed_projected[:, :10] * signs - exact_projected[:, :10]).max() / np.abs(exact_projected).max()
    return {"rows": count, "streamed_s": streamed, "exact_svd_in_memory_s": exact, "ratio_exact_over_streamed":
            exact / streamed, "max_relative_error_top10": float(error),
            "exact_extra_memory_mb": in_memory.nbytes * 2 / 2 ** 20, "streamed_extra_memory_mb": (
                64 * 64 * 8 + 65_536 * 64 * 8 * 2 + streamed_projected.nbytes) / 2 ** 20}


def fit_sample(method: str, reduced: np.ndarray, sample: np.ndarray):
    start = embedding.fit_pca(reduced[sample], 0, None).coordinates
    initialization = embedding.tsne_initialization(start) if method == "tsne" else start
    return embedding.EMBEDDERS[method].function(reduced[sample], 0, None, initialization=initialization)


def bench_place(method: str, count: int, transform_points: int) -> dict:
    features, _ = curved_clusters(count, 64)
    _, reduced = embedding.fit_reduction(features)
    sample = embedding.choose_sample(count)
    begin = time.perf_counter()
    fitted = fit_sample(method, reduced, sample)
    fit_s = time.perf_counter() - begin
    rest = np.setdiff1d(np.arange(count), sample)
    placement.sample_neighbours(reduced[sample][:2000], reduced[rest][:2000])  # numba compiles outside the timing
    begin = time.perf_counter()
    neighbours = placement.sample_neighbours(reduced[sample], reduced[rest])
    neighbours.place(fitted.coordinates)
    place_s = time.perf_counter() - begin
    chosen = rest[:transform_points]
    begin = time.perf_counter()
    embedding._transform(fitted, method, reduced[chosen])
    transform_s = time.perf_counter() - begin
    per_point_place, per_point_transform = place_s / len(rest), transform_s / len(chosen)
    return {"method": method, "points": count, "sample_fit_s": fit_s, "placed": int(len(rest)), "place_s": place_s,
            "transform_points": int(len(chosen)), "transform_s": transform_s,
            "transform_all_estimated_s": per_point_transform * len(rest),
            "ratio_transform_over_place_per_point": per_point_transform / per_point_place}


def bench_quality(method: str, count: int = 50_000) -> dict:
    features, labels = curved_clusters(count, 64)
    _, reduced = embedding.fit_reduction(features)
    sample = embedding.choose_sample(count)
    fitted = fit_sample(method, reduced, sample)
    rest = np.setdiff1d(np.arange(count), sample)
    held_out, _ = placement.held_out_points(count, sample)
    result = {"method": method, "points": count, "held_out": int(len(held_out))}
    for rule in placement.WEIGHTS:
        coordinates = np.empty((count, 2), dtype=np.float32)
        coordinates[sample] = fitted.coordinates
        coordinates[rest] = placement.sample_neighbours(reduced[sample], reduced[rest], rule=rule).place(
            fitted.coordinates)
        result[f"placed_{rule}"] = placement.group_quality(reduced, coordinates, held_out, labels)
    begin = time.perf_counter()
    start = embedding.fit_pca(reduced, 0, None).coordinates
    full = embedding.EMBEDDERS[method].function(
        reduced, 0, None, initialization=embedding.tsne_initialization(start) if method == "tsne" else start)
    result["full_fit_s"] = time.perf_counter() - begin
    result["full_fit"] = placement.group_quality(reduced, full.coordinates, held_out, labels)
    from sklearn.neighbors import KNeighborsClassifier

    others = np.setdiff1d(np.arange(count), held_out)
    result["feature_space_knn_accuracy"] = float(KNeighborsClassifier(10).fit(reduced[others], labels[others])
                                                 .score(reduced[held_out], labels[held_out]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["pca", "place", "quality"])
    parser.add_argument("--methods", nargs="+", default=["umap", "tsne"])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--transform-points", type=int, default=2_000)
    arguments = parser.parse_args()
    print("load before:", load(), flush=True)
    for part in arguments.parts:
        for method in (["-"] if part == "pca" else arguments.methods):
            if part == "pca":
                result = bench_pca(arguments.points)
            elif part == "place":
                result = bench_place(method, arguments.points, arguments.transform_points)
            else:
                result = bench_quality(method)
            print(part, json.dumps(result), "| load:", load(), flush=True)


if __name__ == "__main__":
    main()
