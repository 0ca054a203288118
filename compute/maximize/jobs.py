"""The compute process's jobs: ``maximize.run`` (one objective, several starts) and ``maximize.layer`` (a whole layer).

Both report a small preview every few steps (``partial={"images": uint8 (n, C, h, w), "history": (steps, n),
"step": k}``) so the page updates live, and when ``progress`` raises :class:`Cancelled` they return the last
images with ``"cancelled": True`` ("cancel keeps the last image"). Finished results are cached by model
fingerprint, data set, objective, every setting and the seeds.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from compute.cache import memoize
from compute.maximize import objectives as objective_table
from compute.maximize.param import PARAMETERIZATIONS, magnitude_spectrum
from compute.maximize.priors import MAX_PCA_FLOATS, class_balanced_sample, principal_components
from compute.maximize.quality import best_in_data, ratios
from compute.maximize.render import layer_objective, maximize, resolve_settings
from compute.params import Param
from compute.workspace import Cancelled, job

PREVIEW_SIDE = 96  # previews larger than this are shrunk before they travel to the page
SPECTRUM_IMAGES = 512  # data-set images averaged for MACO's magnitude template (a seeded sample across classes)
PCA_IMAGES = 2048  # data-set images the pca parameterization's components come from (fewer for big images)
SAMPLE_SEED = 0
OPTIMISATION_SHARE = 0.9  # of the progress bar; the data-set comparison takes the rest
_LAST_IMAGES = "last_images"  # full-size images kept by the job for a cancel, never sent with the preview

# The run's own controls (the pieces' controls come from OBJECTIVES, PARAMETERIZATIONS, TRANSFORMS, REGULARIZERS).
RUN_PARAMS: tuple[Param, ...] = (
    Param("steps", "int", 256, "steps", 1, 4096, 1),
    Param("n", "int", 1, "starts", 1, 16, 1, help="several starts find different local maxima"),
    Param("seed", "int", 0, "seed", 0, 2**31 - 1, 1),
    Param("lr", "float", 0.05, "learning rate (Adam)", 0.001, 1.0, 0.005),
    Param("parameterization", "choice", "fourier", "parameterization", choices=tuple(PARAMETERIZATIONS)),
)
_RUN = {p.name: p for p in RUN_PARAMS}


def preview(images: torch.Tensor) -> np.ndarray:
    """(n, C, H, W) in [0, 1] -> uint8 (n, C, h, w), shrunk (area average) so its longer side is at most PREVIEW_SIDE."""
    side = max(images.shape[2:])
    if side > PREVIEW_SIDE:
        size = [max(1, round(s * PREVIEW_SIDE / side)) for s in images.shape[2:]]
        images = F.interpolate(images.float(), size=size, mode="area")
    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _data_center(dataset) -> Any:
    return tuple(dataset.channel_mean) if getattr(dataset, "channel_mean", None) else 0.5


def data_sample(dataset, count: int) -> torch.Tensor:
    """``count`` images (float32) of a seeded sample of ``dataset`` spread evenly over its classes."""
    return dataset.images[class_balanced_sample(dataset.labels, count, SAMPLE_SEED)].to(torch.float32)


def data_prior(dataset, settings: dict) -> dict:
    """What the chosen parameterization needs of the data: MACO's spectrum or the pca components (else nothing)."""
    name = settings["parameterization"]
    if name == "maco":
        return {"magnitude": magnitude_spectrum(data_sample(dataset, SPECTRUM_IMAGES))}
    if name == "pca":
        values = int(torch.Size(dataset.image_shape).numel())
        count = max(256, min(PCA_IMAGES, MAX_PCA_FLOATS // max(1, values)))
        return {"components": principal_components(data_sample(dataset, count),
                                                   settings["parameterization_params"]["count"])}
    return {}


@memoize
def cached_maximize(model, dataset, objective: tuple, steps: int, seeds: list[int], settings: dict,
                    progress=None) -> dict:
    """:func:`maximize` on the data set's image shape plus the data-set comparison, as plain arrays (cached)."""

    def report(step: int, images: torch.Tensor, history: torch.Tensor) -> None:
        if progress is None:
            return
        values = history[-1].float().cpu()
        progress(OPTIMISATION_SHARE * step / steps, f"step {step}/{steps}: objective {values.mean():.3g}",
                 {"images": preview(images), "history": history.float().cpu().numpy(), "step": step,
                  _LAST_IMAGES: images.float().cpu().numpy()})

    result = maximize(model, objective, steps, n=len(seeds), seed=list(seeds), callback=report,
                      **data_prior(dataset, settings), **settings)
    if progress is not None:
        def report_data(fraction: float, text: str) -> None:
            progress(OPTIMISATION_SHARE + (1 - OPTIMISATION_SHARE) * fraction, text)
    else:
        report_data = None
    best_values, best_indices = best_in_data(model, dataset, objective, progress=report_data)
    top = result.probabilities.topk(min(5, result.probabilities.shape[1]), dim=1)
    count = len(seeds)
    per_image = objective_table.build(objective).count is not None
    best_indices = best_indices.expand(count)
    return {
        "objective": objective,
        "titles": [objective_table.describe(objective_table.item(objective, k) if per_image else objective,
                                            list(dataset.classes)) for k in range(count)],
        "images": result.images.numpy(),
        "history": result.history.numpy(),
        "values": result.values.numpy(),
        "start_values": result.start_values.numpy(),
        "importance": result.importance.numpy().astype(np.float16),
        "top_classes": top.indices.numpy(),
        "top_probabilities": top.values.numpy(),
        "best_values": best_values.expand(count).numpy(),
        "best_indices": best_indices.numpy(),
        "best_images": torch.stack([dataset.image(int(i)) for i in best_indices]).float().numpy(),
        "ratios": ratios(result.values, best_values).numpy(),
        "class_names": list(dataset.classes),
        "seeds": list(seeds),
        "settings": result.settings,
        "steps_done": steps,
        "cancelled": False,
    }


def _run(workspace, progress, objective: tuple, steps: int, seeds: list[int], settings: dict) -> dict:
    """Run (or read from the cache) under the workspace's lock; on Cancelled return the last images reported."""
    last: dict = {}

    def tracked(fraction: float, text: str, partial: dict | None = None) -> None:
        if partial is None:
            progress(fraction, text)
            return
        last.update(partial)
        progress(fraction, text, {k: v for k, v in partial.items() if k != _LAST_IMAGES})

    try:
        with workspace.lock:
            return cached_maximize(workspace.model(), workspace.dataset, objective, steps, seeds, settings,
                                   progress=tracked)
    except Cancelled:
        history = last.get("history", np.zeros((0, len(seeds)), np.float32))
        return {
            "objective": objective,
            "images": last.get(_LAST_IMAGES),  # None when cancelled before the first report
            "history": history,
            "values": history[-1] if len(history) else None,
            "class_names": list(workspace.dataset.classes),
            "seeds": list(seeds),
            "settings": settings,
            "steps_done": int(last.get("step", 0)),
            "cancelled": True,
        }


def _settings(workspace, settings: dict) -> dict:
    """Every setting explicit (the data set's image size and mean colour by default), for the cache key."""
    settings = dict(settings)
    settings.setdefault("center", _data_center(workspace.dataset))
    settings.setdefault("image_shape", workspace.dataset.image_shape)
    image_shape = settings.pop("image_shape")
    return resolve_settings(image_shape, **settings)


@job("maximize.run")
def run_job(workspace, progress, objective, steps: int = 256, n: int = 1, seed: int = 0, **settings) -> dict:
    """``n`` starts of one objective (seeds ``seed .. seed + n - 1``); settings as :func:`maximize` takes them."""
    spec = objective_table.normalize(objective)
    count = objective_table.build(spec).count or _RUN["n"].coerce(n)
    steps, seed = _RUN["steps"].coerce(steps), _RUN["seed"].coerce(seed)
    return _run(workspace, progress, spec, steps, [seed + k for k in range(count)], _settings(workspace, settings))


@job("maximize.layer")
def layer_job(workspace, progress, layer: str, steps: int = 256, seed: int = 0, channels=None, **settings) -> dict:
    """One image per channel of ``layer`` (or per class: ``layer="classes"``), one batch; channel k seeded seed + k."""
    resolved = _settings(workspace, settings)
    steps, seed = _RUN["steps"].coerce(steps), _RUN["seed"].coerce(seed)
    with workspace.lock:
        spec = layer_objective(workspace.model(), layer, resolved["image_shape"], channels)
    return _run(workspace, progress, spec, steps, [seed + int(k) for k in spec[-1]], resolved)
