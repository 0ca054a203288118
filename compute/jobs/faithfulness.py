"""Jobs of the faithfulness view: the curves of one image's maps, the image at one point of a curve, and the ranking
of the methods over a sample of the test split.

The maps come from the attribution job itself (``attribution.maps``, :mod:`compute.jobs.attribution`, cached per map by
:func:`compute.attribution.attribution_map`), so the curves are those of the very maps the attribution view shows;
the curves are cached by :func:`compute.faithfulness.image_faithfulness`. Model work holds ``workspace.lock`` one
image at a time, so a click's job never waits for a whole ranking.
"""
from __future__ import annotations

import numpy as np
import torch

from compute import faithfulness, faithfulness_stats
from compute.data_mean import data_mean
from compute.errors import UserError
from compute.jobs.attribution import attribution_maps
from compute.jobs.variants import plain
from compute.jobs.workspace import Workspace
from compute.progress import scaled
from compute.specs.faithfulness import BASIC_KINDS, KINDS, ROAD_KINDS, ROAD_NOISE

RANKING_MAX_IMAGES = 2000
# Scores per image and method in the ranking: (the curve areas or their differences, which way is better).
SCORES = {
    "deletion": "lower", "insertion": "higher", "difference": "higher",
    "road_morf": "lower", "road_lerf": "higher", "road": "higher",
}


def _settings(steps: int, fill: str, blur: float, random_orders: int, seed: int) -> dict:
    if fill not in ("zero", "data mean", "blur"):
        raise UserError(f"unknown deletion fill {fill!r}; use zero, data mean or blur")
    if not 1 <= int(random_orders) <= 64:
        raise UserError(f"random orders must be 1 to 64, got {random_orders}")
    if not 1 <= int(steps) <= 1000:
        raise UserError(f"steps must be 1 to 1000, got {steps}")
    return {"steps": int(steps), "fill": fill, "blur": float(blur), "random_count": int(random_orders),
            "seed": int(seed)}


def _image_scores(workspace: Workspace, model, image: torch.Tensor, target: int, maps: dict, kinds, settings: dict,
                  progress) -> dict:
    """:func:`compute.faithfulness.image_faithfulness` of one image with the data set's mean for the fill."""
    with workspace.lock:
        return faithfulness.image_faithfulness(model, image, int(target), maps, settings["steps"], tuple(kinds),
                                               settings["fill"], settings["blur"],
                                               data_mean(workspace.dataset) or None,
                                               settings["random_count"], settings["seed"], ROAD_NOISE,
                                               progress=progress)


def curves(workspace: Workspace, progress, index: int, methods: dict, target: int | None = None,
           use_predicted: bool = False, variant: dict | None = None, epoch: int | None = None, steps: int = 20,
           fill: str = "zero", blur: float = 0.25, random_orders: int = 3, road: bool = False, seed: int = 0) -> dict:
    """Deletion and insertion curves (and with ``road`` ROAD's two) of every map of ``methods`` ({name: parameters},
    as the attribution job takes them) on image ``index`` (or its ``variant``), with the random floor.

    Returns the attribution job's ``image``, ``label``, ``predicted``, ``target``, ``target_how``, and ``methods``
    (the names, in the order asked), ``kinds``, ``fractions`` {kind: (n,)}, ``curves`` {kind: {method: (n,)}},
    ``random`` {kind: (n,)}, ``auc`` {kind: {method: float}}, ``random_auc`` {kind: float}, ``settings``.
    """
    if not methods:
        raise UserError("pick at least one attribution method")
    settings = _settings(steps, fill, blur, random_orders, seed)
    explained = attribution_maps(workspace, scaled(progress, 0.0, 0.4), index=index, methods=methods, target=target,
                                 use_predicted=use_predicted, variant=variant, epoch=epoch)
    maps = {name: torch.as_tensor(explained["maps"][name]["map"]) for name in methods}
    kinds = BASIC_KINDS + (ROAD_KINDS if road else ())
    scores = _image_scores(workspace, workspace.model(epoch), torch.as_tensor(explained["image"]),
                           explained["target"], maps, kinds, settings, scaled(progress, 0.4, 1.0))
    progress(1.0, "faithfulness curves done")
    return {**{key: explained[key] for key in ("image", "label", "predicted", "target", "target_how")},
            "methods": list(methods), "kinds": list(kinds), **plain(scores),
            "settings": {**settings, "road": bool(road)}}


def step(workspace: Workspace, progress, index: int, methods: dict, row: str, kind: str, point: int,
         target: int | None = None, use_predicted: bool = False, variant: dict | None = None,
         epoch: int | None = None, steps: int = 20, fill: str = "zero", blur: float = 0.25, random_orders: int = 3,
         seed: int = 0) -> dict:
    """The image at point ``point`` of the ``kind`` curve of ``row`` (a method of ``methods``, or ``random 1``...),
    exactly as the curves job classified it, with its ``probability`` of the target and the ``fraction`` perturbed."""
    if kind not in KINDS:
        raise UserError(f"unknown curve kind {kind!r}; use one of {', '.join(KINDS)}")
    settings = _settings(steps, fill, blur, random_orders, seed)
    explained = attribution_maps(workspace, scaled(progress, 0.0, 0.8), index=index, methods=methods, target=target,
                                 use_predicted=use_predicted, variant=variant, epoch=epoch)
    maps = {name: torch.as_tensor(explained["maps"][name]["map"]) for name in methods}
    image = torch.as_tensor(explained["image"])
    pixels = int(image.shape[-2] * image.shape[-1])
    rows = faithfulness.curve_rows(maps, settings["random_count"])
    order = faithfulness.row_order(maps, row, pixels, settings["random_count"], settings["seed"])
    mean = data_mean(workspace.dataset) or None
    pictured = faithfulness.step_image(image, order, kind, int(point), settings["steps"], settings["fill"],
                                       settings["blur"], mean, rows.index(row), settings["seed"], ROAD_NOISE)
    model = workspace.model(epoch)
    with workspace.lock, torch.no_grad():
        logits = model(pictured[None].to(workspace.device))
    probability = float(logits.float().softmax(1)[0, explained["target"]])
    fraction = float(faithfulness.curve_fractions(kind, settings["steps"])[int(point)])
    return {"image": pictured.numpy(), "probability": probability, "fraction": fraction, "row": row, "kind": kind,
            "point": int(point), "target": explained["target"]}


def _test_sample(dataset, images: int) -> torch.Tensor:
    """``images`` indices of the test split, evenly spaced through it (every part of the split is represented)."""
    indices = torch.nonzero(dataset.is_test).flatten()
    if len(indices) == 0:
        raise UserError("the data set has no test split to rank the methods on")
    if len(indices) > images:
        indices = indices[torch.linspace(0, len(indices) - 1, images).round().long()]
    return indices


def _summary(values: np.ndarray, better: str, seed: int) -> dict:
    """Means and bootstrap intervals of every column, and the first-place share of the method columns (all but the
    random floor, the last column)."""
    mean, low, high = faithfulness_stats.mean_interval(values, seed=seed)
    share = faithfulness_stats.first_share(values[:, :-1], better == "higher", seed=seed)
    return {"mean": mean, "low": low, "high": high, "first_share": share,
            "rank": faithfulness_stats.ranks(mean[:-1], better == "higher")}


def ranking_summary(methods: list[str], per_image: list[dict], correlations: list[dict], seed: int = 0) -> dict:
    """The ranking's tables from each image's areas (``image_faithfulness`` results) and sanity correlations."""
    kinds = [kind for kind in KINDS if all(kind in scores["auc"] for scores in per_image)]
    columns: dict[str, np.ndarray] = {}
    for kind in kinds:
        columns[kind] = np.array([[scores["auc"][kind][name] for name in methods] + [scores["random_auc"][kind]]
                                 for scores in per_image], dtype=np.float64)
    if "deletion" in columns and "insertion" in columns:
        columns["difference"] = columns["insertion"] - columns["deletion"]
    if "road_morf" in columns and "road_lerf" in columns:
        columns["road"] = columns["road_lerf"] - columns["road_morf"]
    summary = {"scores": list(columns), "values": columns,
               "summary": {name: _summary(values, SCORES[name], seed) for name, values in columns.items()}}
    correlation = np.array([[c[name] for name in methods] for c in correlations], dtype=np.float64)
    mean, low, high = faithfulness_stats.mean_interval(correlation, seed=seed)
    summary["correlation"] = {"values": correlation, "mean": mean, "low": low, "high": high}
    return summary


def ranking(workspace: Workspace, progress, methods: dict, images: int = 200, steps: int = 20, fill: str = "zero",
            blur: float = 0.25, random_orders: int = 1, road: bool = True, seed: int = 0) -> dict:
    """The methods of ``methods`` ranked over ``images`` test images (evenly spaced through the split), each image's
    maps for its predicted class: the areas of its curves, the random floor, and the sanity-check rank correlation
    of each map with the untrained model's (Adebayo et al. 2018), with bootstrap intervals and how often each method
    comes first. Each image's work is cached, and progress is reported after every image: a cancelled ranking
    resumes where it stopped. A partial result (the tables so far) goes out every few images.
    """
    if not methods:
        raise UserError("pick at least one attribution method")
    if not 1 <= int(images) <= RANKING_MAX_IMAGES:
        raise UserError(f"rank over 1 to {RANKING_MAX_IMAGES} images, not {images}")
    settings = _settings(steps, fill, blur, random_orders, seed)
    dataset = workspace.dataset
    indices = _test_sample(dataset, int(images))
    model = workspace.model(progress=scaled(progress, 0.0, 0.02))
    names = list(methods)
    kinds = BASIC_KINDS + (ROAD_KINDS if road else ())
    per_image, correlations, targets = [], [], []
    every = max(1, len(indices) // 20)
    for position, index in enumerate(indices.tolist()):
        report = scaled(progress, 0.02 + 0.98 * position / len(indices), 0.02 + 0.98 * (position + 1) / len(indices))
        explained = attribution_maps(workspace, scaled(report, 0.0, 0.5), index=index, methods=methods,
                                     use_predicted=True, sanity=True)
        maps = {name: torch.as_tensor(explained["maps"][name]["map"]) for name in names}
        per_image.append(_image_scores(workspace, model, torch.as_tensor(explained["image"]), explained["target"],
                                       maps, kinds, settings, scaled(report, 0.5, 1.0)))
        correlations.append(explained["correlation"])
        targets.append(explained["target"])
        done = position + 1
        partial = None
        if done % every == 0 and done < len(indices):
            partial = _ranking_result(names, per_image, correlations, indices[:done], targets, settings, road, dataset)
        report(1.0, f"ranked {done}/{len(indices)} test images", partial)
    return _ranking_result(names, per_image, correlations, indices, targets, settings, road, dataset)


def _ranking_result(names, per_image, correlations, indices, targets, settings, road, dataset) -> dict:
    summary = ranking_summary(names, per_image, correlations, settings["seed"])
    return {"methods": names, "count": len(per_image), "test_count": int(dataset.is_test.sum()),
            "indices": np.asarray(indices[:len(per_image)], dtype=np.int64),
            "targets": np.asarray(targets, dtype=np.int64), **summary, "resamples": faithfulness_stats.RESAMPLES,
            "settings": {**settings, "road": bool(road)}}


JOBS = {"faithfulness.curves": curves, "faithfulness.step": step, "faithfulness.ranking": ranking}
