"""A layer change, timed to the first drawn scatter and to the final one; the embedding of 50,000 points fitted on a
sample; and the bytes a colour change sends at 50,000 points (a Patch against the full figure).

The layer switch is timed through the service, as the scatter panel's callback sees it: from ``submit`` until the
job's first partial layout (the PCA picture the page draws at once) and until its final t-SNE layout, on the
compute process (a spawned worker, every core of this machine). Cold: the layer's cached features and layouts are
deleted first (the model is trained already); warm: asked again of the same server; precomputed: a new server,
after its background precomputation (started as the app starts it) has finished. The baseline, measured in the same run, is the time to the final layout: the first
thing the page could draw before layouts were streamed.

``python -m bench.layer_switch [--quick]``
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.common import Row, markdown_table, met, ratio, sec, timed_once

METHOD = "tsne"
QUICK_LAYERS = ["conv1", "relu2", "logits"]


def switch_times(service, layer: str, timeout: float = 600.0) -> tuple[float, float]:
    """(seconds to the first layout the page can draw, seconds to the final one) of one layer change."""
    start = time.perf_counter()
    key = service.submit("explore.scatter", {"layer": layer, "method": METHOD, "features": "auto"},
                         holder=("bench", "scatter"))
    first = None
    while time.perf_counter() - start < timeout:
        status = service.wait(key, 0.02)
        if first is None and (status.partial is not None or status.state == "done"):
            first = time.perf_counter() - start
        if status.state != "running":
            if status.state != "done":
                raise RuntimeError(f"{layer}: {status.state} {status.error}")
            return first, time.perf_counter() - start
    raise TimeoutError(layer)


def layer_rows(quick: bool) -> list[Row]:
    from compute import activations, embedding, models
    from compute.data import load
    from dashboard.config import AppConfig
    from dashboard.service import QUIET_S, ComputeService, job_key
    from dashboard.views import explore

    model, dataset = models.load("digits-cnn"), load("digits")
    names = activations.layers(model)
    layers = [name for name in QUICK_LAYERS if name in names] if quick else names
    modes = {layer: embedding.feature_mode(tuple(activations.single(model, dataset.images[0], [layer])[layer].shape))
             for layer in layers}
    for layer in layers:
        embedding.forget_layer(model, dataset, layer, modes[layer], ("pca", METHOD))
    config = AppConfig()
    service = ComputeService.start(config.source())
    rows = []
    try:
        # Loads the model in the compute process, on a layer not measured (its features stay cold).
        warm_up = next(name for name in names if name not in layers)
        service.run("explore.scatter", {"layer": warm_up, "method": "pca", "features": "auto"}, timeout=600)
        for layer in layers:
            cold_first, cold_final = switch_times(service, layer)
            warm_first, warm_final = switch_times(service, layer)
            rows.append(Row(f"layer_switch_cold_{layer}", f"layer change to {layer}, cold: first scatter "
                            f"(final t-SNE {sec(cold_final)})", sec(cold_first), sec(cold_final),
                            ratio(cold_first / cold_final), "first < 1 s", met(cold_first < 1.0)))
            rows.append(Row(f"layer_switch_warm_{layer}", f"layer change to {layer}, warm: first | final",
                            f"{sec(warm_first)} | {sec(warm_final)}", sec(cold_final), ratio(warm_final / cold_final)))
        for layer in layers:
            embedding.forget_layer(model, dataset, layer, modes[layer], ("pca", METHOD))
        # A new server: the old one keeps its finished results in memory, which would make this phase trivial.
        service.close()
        service = ComputeService.start(config.source())
        service.run("explore.scatter", {"layer": warm_up, "method": "pca", "features": "auto"}, timeout=600)
        # What the app starts after its first page: every layer's PCA layout, then every layer's t-SNE.
        requests = explore.background_requests(layers, layers[0], METHOD)
        time.sleep(QUIET_S)  # background work waits this long after a user's request (the warm-up): not timed
        pca_keys = [job_key(service.source, r.job, r.params) for r in requests if r.params["method"] == "pca"]
        start = time.perf_counter()
        finished = service.precompute([(r.job, r.params) for r in requests], delay_s=0)
        while not all(service.status(key).state == "done" for key in pca_keys):
            time.sleep(0.02)
        pca_phase_s = time.perf_counter() - start
        finished.wait(1800)
        precompute_s = time.perf_counter() - start
        rows.append(Row("layer_switch_pca_phase", f"background work after start-up: every layer's first picture "
                        f"(PCA) cached | every layer's t-SNE too ({len(layers)} layers)",
                        f"{sec(pca_phase_s)} | {sec(precompute_s)}", "—", "—"))
        for layer in layers:
            first, final = switch_times(service, layer)
            rows.append(Row(f"layer_switch_precomputed_{layer}", f"layer change to {layer} after background "
                            f"precomputation ({sec(precompute_s)} for {len(layers)} layers): first | final",
                            f"{sec(first)} | {sec(final)}", "—", "—"))
    finally:
        service.close()
    return rows


def synthetic_features(count: int, dims: int = 512, classes: int = 10, seed: int = 0):
    """(count, dims) float32 features in ``classes`` Gaussian clusters, and their labels (count,)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dims)).astype(np.float32) * 0.6
    labels = rng.integers(0, classes, size=count)
    return centres[labels] + rng.normal(size=(count, dims)).astype(np.float32), labels


def embedding_rows(quick: bool) -> list[Row]:
    from compute import embedding

    rows = []
    features, _ = synthetic_features(50_000)
    seconds, layout = timed_once(lambda: embedding.fit(features, METHOD))
    rows.append(Row("embed_50k_sampled", f"t-SNE of 50,000 x 512 features: fit on {len(layout.sample):,}, "
                    "place the rest", sec(seconds)))
    # The baseline: t-SNE of every point, at a size this machine finishes in the run (15,000 in quick mode).
    count = 15_000 if quick else 50_000
    subset = features[:count]
    sampled_s, _ = timed_once(lambda: embedding.fit(subset, METHOD))
    full_s, _ = timed_once(lambda: embedding.fit(subset, METHOD, sample_above=count))
    rows.append(Row(f"embed_{count // 1000}k_sampled_vs_full", f"t-SNE of {count:,} x 512: sampled vs every point",
                    sec(sampled_s), sec(full_s), ratio(sampled_s / full_s)))
    return rows


def extra_peak_mb(fn) -> float | None:
    """Megabytes this process's peak resident memory rose above its current size during ``fn()`` (Linux: the peak is
    reset through /proc/self/clear_refs first), or None where that cannot be read."""
    def status(field: str) -> float:
        with open("/proc/self/status") as lines:
            return next(int(line.split()[1]) for line in lines if line.startswith(field)) / 1024

    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        before = status("VmRSS:")
        fn()
        return status("VmHWM:") - before
    except (OSError, StopIteration, ValueError):
        return None


def lowrank_pca(features: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    """The same pre-reduction by torch.svd_lowrank (Halko et al.'s algorithm, as ours), centred by its ``M`` argument
    (the mean, broadcast to the data's shape); its random start from a seeded global generator. (dims, D) components."""
    import torch

    x = torch.as_tensor(features)
    mean = x.mean(dim=0, keepdim=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _u, _s, v = torch.svd_lowrank(x, q=min(dims + 10, *x.shape), niter=4, M=mean)
    return v[:, :dims].T.numpy()


def reduction_rows() -> list[Row]:
    """The pre-reduction to 50 dimensions of a layer's features, the largest step before a new layer's first
    scatter: the torch randomized SVD against scikit-learn's randomized PCA (the baseline), and against
    torch.svd_lowrank with ``M=mean`` (the same algorithm in torch itself: time, and extra peak memory, since it
    broadcasts the mean to the data's shape), same data, same run."""
    from sklearn.decomposition import PCA

    from bench.common import timed_interleaved
    from compute import models
    from compute.data import load
    from compute.extraction import dataset_features
    from compute.projection import randomized_pca

    model, dataset = models.load("digits-cnn"), load("digits")
    rows = []
    for layer in ("conv1", "relu2", "pool3"):
        features = np.asarray(dataset_features(model, dataset, layer, "flat"), dtype=np.float32)
        features = features.reshape(len(features), -1)
        times = timed_interleaved({
            "torch": lambda: randomized_pca(features, 50),
            "sklearn": lambda: PCA(n_components=50, random_state=0, svd_solver="randomized").fit_transform(features),
            "lowrank": lambda: lowrank_pca(features, 50),
        }, repeats=3)
        size = f"{features.shape[0]:,} x {features.shape[1]:,}"
        rows.append(Row(f"pre_reduction_{layer}", f"PCA to 50 dims of {layer} ({size}): torch randomized SVD "
                        "(baseline: scikit-learn's randomized PCA)",
                        sec(times["torch"]), sec(times["sklearn"]), ratio(times["torch"] / times["sklearn"])))
        ours_mb = extra_peak_mb(lambda: randomized_pca(features, 50))
        lowrank_mb = extra_peak_mb(lambda: lowrank_pca(features, 50))
        ours_components = randomized_pca(features, 50)[0].components
        agreement = float(np.abs(np.sum(ours_components[:10] * lowrank_pca(features, 50)[:10], axis=1)).min())
        memory = "" if ours_mb is None or lowrank_mb is None else f"; extra peak memory {ours_mb:.0f} MB vs " \
            f"{lowrank_mb:.0f} MB (the data: {features.nbytes / 2**20:.0f} MB)"
        rows.append(Row(f"pre_reduction_lowrank_{layer}", f"the same, ours (baseline: torch.svd_lowrank(q=60, "
                        f"niter=4, M=mean)); top-10 components agree to |cos| >= {agreement:.4f}{memory}",
                        sec(times["torch"]), sec(times["lowrank"]), ratio(times["torch"] / times["lowrank"])))
    return rows


def neighbour_rows() -> list[Row]:
    """The k nearest neighbours job's search (compute.neighbours.nearest: scikit-learn's brute-force
    NearestNeighbors in float64, on one OpenMP thread) for one query, on the digits' size and on 50,000 x 50 (a large
    folder's reduced space); baseline: the same search on scikit-learn's default thread count."""
    from sklearn.neighbors import NearestNeighbors

    from bench.common import ms, timed_interleaved
    from compute.neighbours import nearest

    rows = []
    for count in (1_797, 50_000):
        features = synthetic_features(count, dims=50)[0]
        exact = features.astype(np.float64)
        times = timed_interleaved({
            "ours": lambda: nearest(features, features[[10]], 12, exclude=np.array([10])),
            "threads": lambda: NearestNeighbors(n_neighbors=13, algorithm="brute").fit(exact).kneighbors(exact[[10]]),
        }, repeats=7)
        rows.append(Row(f"nearest_{count // 1000}k", f"nearest neighbours of one image, {count:,} x 50 features, "
                        "k = 12: scikit-learn on one OpenMP thread (baseline: its default threads)",
                        ms(times["ours"]), ms(times["threads"]), ratio(times["ours"] / times["threads"])))
    return rows


def colour_change_rows() -> list[Row]:
    import plotly.io

    from dashboard.views import explore

    count, classes = 50_000, [str(k) for k in range(10)]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=count)
    predicted = np.where(rng.random(count) < 0.9, labels, rng.integers(0, 10, size=count))
    result = {"coords": rng.normal(size=(count, 2)).astype(np.float32), "labels": labels, "predicted": predicted,
              "mode": "pooled", "values_per_image": 512, "method": METHOD, "sample_size": 10_000}
    shown = {"layer": "avgpool", "method": METHOD}
    rows = []
    for colour in ("predicted", "correct"):
        full = len(plotly.io.to_json(explore.scatter_figure(result, shown, classes, colour, 7, final=True)))
        patch = len(json.dumps(explore.recolour(result, classes, colour).to_plotly_json()))
        rows.append(Row(f"colour_change_bytes_{colour}", f"bytes sent for a colour change to {colour} at 50,000 "
                        "points: Patch (baseline: the full figure)", f"{patch / 1e6:.2f} MB", f"{full / 1e6:.2f} MB",
                        ratio(patch / full)))
    return rows


def rows(quick: bool) -> list[Row]:
    return reduction_rows() + neighbour_rows() + colour_change_rows() + layer_rows(quick) + embedding_rows(quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(markdown_table(rows(parser.parse_args().quick)))
