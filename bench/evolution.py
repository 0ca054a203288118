"""Benchmark of the evolution during training: ``python -m bench.evolution [--quick]``.

The whole evolution (the 11 checkpoints of the built-in model, layer relu2, all 1,797 digits) cold (empty result
cache, checkpoints present) and warm, for PCA and t-SNE; the per-epoch cost of the aligned chain against one
embedding of the same features; the size of the animated figure's JSON (all frames) against one static scatter.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


from bench.common import Row, auto, markdown_table, ratio, timed, timed_once
from compute import data, embedding, evolution, models
from compute.cache import CACHE_DIR_ENV, cache_dir
from compute.device import pick_device

LAYER = "relu2"


def _cold_cache() -> str:
    """A fresh cache directory that shares the trained checkpoints and the data (so only results are cold)."""
    source = cache_dir()
    fresh = Path(tempfile.mkdtemp(prefix="featurescope-bench-evolution-"))
    for name in ("checkpoints", "data"):
        if (source / name).exists():
            (fresh / name).symlink_to(source / name)
    return str(fresh)


def rows(quick: bool) -> list[Row]:
    from components.evolution import evolution_scatter
    from components.scatter import embedding_scatter

    device = pick_device("auto")
    found = models.ensure_trained("digits-cnn")
    dataset = data.load("digits")
    result: list[Row] = []
    warm_repeats = 1 if quick else 3
    layouts_by_method = {}
    previous = os.environ.get(CACHE_DIR_ENV)
    os.environ[CACHE_DIR_ENV] = _cold_cache()
    try:
        for method in ("pca", "tsne"):
            cold, evolved = timed_once(lambda: evolution.embed_checkpoints(found, dataset, LAYER, method, device=device))
            warm = min(timed(lambda: evolution.embed_checkpoints(found, dataset, LAYER, method, device=device),
                             warm_repeats, warmup=0))
            layouts_by_method[method] = evolved
            # PCA runs first, so its cold time includes the per-epoch features; t-SNE's cold time reuses them.
            cold_what = "cold (features too)" if method == "pca" else "cold (features cached)"
            result.append(Row(f"evolution.{method}.whole", f"{method}: whole evolution, {len(found)} checkpoints, "
                              f"{len(dataset)} points, {LAYER}, on {device.type}: warm vs {cold_what}",
                              auto(warm), auto(cold) + " cold", ratio(cold / warm)))
    finally:
        if previous is None:
            os.environ.pop(CACHE_DIR_ENV, None)
        else:
            os.environ[CACHE_DIR_ENV] = previous

    # One later epoch against one embedding of the same features (the explore view's cost).
    labels, is_test = dataset.labels.numpy(), dataset.is_test.numpy()
    features = [evolution.epoch_features.uncached(models.load("digits-cnn", epoch=c.epoch, device=device), dataset, LAYER,
                                                  "flat", labels, is_test)["features"] for c in found[-2:]]
    one, fresh = timed_once(lambda: embedding.embed(features[1], "tsne"))
    later, _ = timed_once(lambda: evolution._tsne_from(features[0], fresh, 0, None))
    result.append(Row("evolution.tsne.per_epoch", "t-SNE: a later epoch (warm start from the previous layout) vs one "
                      "fresh embedding", auto(later), auto(one), ratio(later / one)))
    one, pca = timed_once(lambda: embedding.embed(features[1], "pca"))
    later, _ = timed_once(lambda: evolution.procrustes_align(embedding.embed(features[0], "pca"), pca))
    scores, _ = timed_once(lambda: evolution._layout_scores(features[1], pca, labels, is_test))
    result.append(Row("evolution.pca.per_epoch", "PCA: a later epoch (PCA + Procrustes) vs one PCA", auto(later), auto(one),
                      ratio(later / one)))
    result.append(Row("evolution.scores.per_epoch", f"per-epoch k-NN 2-D + trustworthiness ({len(labels)} points)",
                      auto(scores)))

    evolved = layouts_by_method["tsne"]
    classes = dataset.classes
    build, figure = timed_once(lambda: evolution_scatter(evolved.layouts, labels, classes, evolved.epochs, selected=0))
    animated = len(figure.to_json().encode())
    static = len(embedding_scatter(evolved.layouts[-1], labels, evolved.predicted[-1], classes).to_json().encode())
    result.append(Row("evolution.figure.bytes", f"animated figure JSON, {len(evolved.epochs)} frames x {len(labels)} "
                      "points (vs one static scatter)", f"{animated / 1e3:.0f} kB", f"{static / 1e3:.0f} kB",
                      ratio(animated / static)))
    result.append(Row("evolution.figure.build", "building the animated figure (server side)", auto(build)))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    print(markdown_table(rows(arguments.quick)))
