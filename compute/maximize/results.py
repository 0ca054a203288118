"""A maximisation as the page shows it: :func:`cached_maximize` runs :func:`~compute.maximize.render.maximize` on a
data set's image shape, compares each result with the best image of the data set, and returns plain arrays,
cached by model fingerprint, data set, objective, every setting and the seeds.

It reports a small preview every few steps (``partial={"images": uint8 (n, C, h, w), "history": (steps, n),
"step": k, LAST_IMAGES: the full-size images}``), so a page can update live and a cancelled run can keep its last
images (``compute.jobs.maximize``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from compute.cache import memoize
from compute.data_mean import data_mean
from compute.maximize import objectives as objective_table
from compute.maximize.param import PARAMETERIZATIONS, magnitude_spectrum
from compute.maximize.priors import MAX_PCA_FLOATS, class_balanced_sample, principal_components
from compute.maximize.quality import best_in_data, ratios
from compute.maximize.render import layer_objective, maximize, resolve_settings

PREVIEW_SIDE = 96  # previews larger than this are shrunk before they travel to the page
SPECTRUM_IMAGES = 512  # data-set images averaged for MACO's magnitude template (a seeded sample across classes)
PCA_IMAGES = 2048  # data-set images the pca parameterization's components come from (fewer for big images)
SAMPLE_SEED = 0
OPTIMISATION_SHARE = 0.9  # of the progress bar; the data-set comparison takes the rest
LAST_IMAGES = "last_images"  # full-size images kept by the job for a cancel, never sent with the preview



def preview(images: torch.Tensor) -> np.ndarray:
    """(n, C, H, W) in [0, 1] -> uint8 (n, C, h, w), shrunk (area average) so its longer side is at most PREVIEW_SIDE."""
    side = max(images.shape[2:])
    if side > PREVIEW_SIDE:
        size = [max(1, round(s * PREVIEW_SIDE / side)) for s in images.shape[2:]]
        images = F.interpolate(images.float(), size=size, mode="area")
    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def data_center(dataset) -> Any:
    return data_mean(dataset) or 0.5  # a folder's own mean colour, measured once (compute.data_mean)


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
                  LAST_IMAGES: images.float().cpu().numpy()})

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
