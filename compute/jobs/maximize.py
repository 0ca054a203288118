"""The maximization view's jobs: ``maximize.run`` (one objective, several starts) and ``maximize.layer`` (one image
per channel or class of a whole layer).

Both are long work: they report a preview every few steps, and when ``progress`` raises :class:`Cancelled` they
return the last images with ``"cancelled": True`` ("cancel keeps the last image"). A whole layer is made in chunks
that fit in memory: each image has its own seed and random stream, so the images are exactly those one batch would
give, and a 512-channel layer of a ResNet at 224 px never needs 512 backward passes' memory at once.
"""
from __future__ import annotations

import numpy as np

from compute.device import activation_floats, batch_size_for
from compute.errors import Cancelled
from compute.jobs.workspace import Workspace
from compute.maximize import objectives as objective_table
from compute.maximize.render import layer_objective, resolve_settings
from compute.maximize.results import LAST_IMAGES, cached_maximize, data_center
from compute.progress import scaled
from compute.specs.maximize import RUN_PARAMS

_RUN = {p.name: p for p in RUN_PARAMS}
# Result arrays with one entry per image, joined along this axis when a layer is made in chunks.
_PER_IMAGE_AXIS = {"images": 0, "history": 1, "values": 0, "start_values": 0, "importance": 0, "top_classes": 0,
                   "top_probabilities": 0, "best_values": 0, "best_indices": 0, "best_images": 0, "ratios": 0}
_PER_IMAGE_LISTS = ("titles", "seeds")


def _cancelled(workspace: Workspace, objective: tuple, seeds: list[int], settings: dict, last: dict) -> dict:
    history = last.get("history", np.zeros((0, len(seeds)), np.float32))
    return {
        "objective": objective,
        "images": last.get(LAST_IMAGES),  # None when cancelled before the first report
        "history": history,
        "values": history[-1] if len(history) else None,
        "class_names": list(workspace.dataset.classes),
        "seeds": list(seeds),
        "settings": settings,
        "steps_done": int(last.get("step", 0)),
        "cancelled": True,
    }


def _tracking(progress, last: dict):
    """A progress callback that keeps the last full-size images for a cancel and sends only the preview."""
    def tracked(fraction: float, text: str, partial: dict | None = None) -> None:
        if partial is None:
            progress(fraction, text)
            return
        last.update(partial)
        progress(fraction, text, {k: v for k, v in partial.items() if k != LAST_IMAGES})

    return tracked


def _run(workspace: Workspace, progress, objective: tuple, steps: int, seeds: list[int], settings: dict) -> dict:
    """Run (or read from the cache) under the lane's lock; on Cancelled return the last images reported."""
    last: dict = {}
    try:
        with workspace.lock:
            return cached_maximize(workspace.model(), workspace.dataset, objective, steps, seeds, settings,
                                   progress=_tracking(progress, last))
    except Cancelled:
        return _cancelled(workspace, objective, seeds, settings, last)


def _settings(workspace: Workspace, settings: dict) -> dict:
    """Every setting explicit (the data set's image size and mean colour by default), for the cache key."""
    settings = dict(settings)
    settings.setdefault("center", data_center(workspace.dataset))
    settings.setdefault("image_shape", workspace.dataset.image_shape)
    image_shape = settings.pop("image_shape")
    return resolve_settings(image_shape, **settings)


def run_job(workspace: Workspace, progress, objective, steps: int = 256, n: int = 1, seed: int = 0,
            **settings) -> dict:
    """``n`` starts of one objective (seeds ``seed .. seed + n - 1``); settings as :func:`maximize` takes them."""
    spec = objective_table.normalize(objective)
    count = objective_table.build(spec).count or _RUN["n"].coerce(n)
    steps, seed = _RUN["steps"].coerce(steps), _RUN["seed"].coerce(seed)
    return _run(workspace, progress, spec, steps, [seed + k for k in range(count)], _settings(workspace, settings))


def chunk_size(workspace: Workspace, image_shape) -> int:
    """How many images of a layer maximization fit in one batch: a forward and backward pass each, at most a
    quarter of the free memory (``compute.device.batch_size_for``)."""
    with workspace.lock:
        floats = activation_floats(workspace.model(), tuple(image_shape))
    return batch_size_for(workspace.device, floats, with_backward=True)


def _joined(parts: list[dict]) -> dict:
    """The chunks' results as one result, as if the images had been one batch."""
    if len(parts) == 1:
        return parts[0]
    joined = dict(parts[0])
    for key, axis in _PER_IMAGE_AXIS.items():
        if all(part.get(key) is not None for part in parts):
            joined[key] = np.concatenate([np.asarray(part[key]) for part in parts], axis=axis)
    for key in _PER_IMAGE_LISTS:
        if all(key in part for part in parts):
            joined[key] = [value for part in parts for value in part[key]]
    name, *arguments = parts[0]["objective"]
    joined["objective"] = (name, *arguments[:-1], tuple(k for part in parts for k in part["objective"][-1]))
    joined["chunks"] = len(parts)
    return joined


def layer_job(workspace: Workspace, progress, layer: str, steps: int = 256, seed: int = 0, channels=None,
              chunk: int | None = None, **settings) -> dict:
    """One image per channel of ``layer`` (or per class: ``layer="classes"``); channel k seeded seed + k.

    Made in chunks of ``chunk`` images (default: what fits in memory); each chunk is cached on its own, so a
    cancelled run keeps its finished chunks for the next one.
    """
    resolved = _settings(workspace, settings)
    steps, seed = _RUN["steps"].coerce(steps), _RUN["seed"].coerce(seed)
    with workspace.lock:
        spec = layer_objective(workspace.model(), layer, resolved["image_shape"], channels)
    name, *arguments = spec
    targets = list(spec[-1])
    size = max(1, int(chunk) if chunk else chunk_size(workspace, resolved["image_shape"]))
    pieces = [targets[start:start + size] for start in range(0, len(targets), size)]
    parts = []
    for number, piece in enumerate(pieces):
        report = scaled(progress, number / len(pieces), (number + 1) / len(pieces),
                        f"chunk {number + 1}/{len(pieces)}: " if len(pieces) > 1 else "")
        part = _run(workspace, report, (name, *arguments[:-1], tuple(piece)), steps, [seed + int(k) for k in piece],
                    resolved)
        if part.get("cancelled"):
            return part if not parts else {**_joined(parts), "cancelled": True}
        parts.append(part)
    return _joined(parts)


JOBS = {"maximize.run": run_job, "maximize.layer": layer_job}
