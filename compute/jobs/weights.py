"""The weights view's jobs: one checkpoint's kernels of a conv layer, and the same at every saved epoch."""
from __future__ import annotations

import math

import numpy as np

from compute import models
from compute.jobs.workspace import Workspace
from compute.layers import conv_layers
from compute.weights import kernels, noise_smoothness, summary


def _epochs(workspace: Workspace, progress) -> list[tuple[int | None, str]]:
    """(epoch, label) of every saved state: each checkpoint of a built-in model, else untrained and loaded."""
    if workspace.built_in:
        workspace.model(progress=progress)  # trains the built-in model on first use, writing its checkpoints
        return [(c.epoch, f"epoch {c.epoch}") for c in models.checkpoints(workspace.source.model, workspace.dataset)]
    return [(0, "untrained"), (None, "checkpoint")]


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def kernels_job(workspace: Workspace, progress, layer: str, epoch: int | None = None, mode: str = "auto",
                input_channel: int = 0) -> dict:
    """One checkpoint's kernels of ``layer``: see :func:`summary`, plus the layer, epoch and the conv layers."""
    progress(0.0, f"reading the kernels of {layer}")
    with workspace.lock:
        model = workspace.model_at(epoch)
        weights = kernels(model, layer)
    result = summary(weights, mode, input_channel)
    result.update(layer=layer, epoch=epoch, conv_layers=conv_layers(model),
                  noise_smoothness=noise_smoothness())
    progress(1.0, f"kernels of {layer}")
    return result


def evolution_job(workspace: Workspace, progress, layer: str, mode: str = "auto", input_channel: int = 0) -> dict:
    """The kernels of ``layer`` at every saved epoch, so a slider over epochs needs no further request.

    Returns ``epochs`` (E,) (None for a loaded checkpoint), ``labels`` (E,), ``grids`` (E, out, kh, kw[, 3]),
    ``smoothness`` (E, out), ``mean_smoothness`` (E,), ``diversity`` (E,), ``test_accuracy`` (E,) (NaN where
    unknown), and ``mode``, ``shape``, ``noise_smoothness`` (what white noise would score).
    """
    progress(0.0, "listing the saved epochs")
    states = _epochs(workspace, progress)
    accuracy = ({c.epoch: c.test_accuracy for c in models.checkpoints(workspace.source.model, workspace.dataset)}
                if states[-1][0] is not None else {})
    rows = []
    for step, (epoch, label) in enumerate(states):
        with workspace.lock:
            weights = kernels(workspace.model_at(epoch), layer)
        rows.append(summary(weights, mode, input_channel))
        progress((step + 1) / len(states), f"kernels of {layer}: {label} ({step + 1}/{len(states)})")
    return {
        "layer": layer,
        "epochs": [epoch for epoch, _ in states],
        "labels": [label for _, label in states],
        "mode": rows[0]["mode"],
        "input_channel": rows[0]["input_channel"],
        "shape": rows[0]["shape"],
        "grids": np.stack([row["grid"] for row in rows]),
        "smoothness": np.stack([row["smoothness"] for row in rows]),
        "mean_smoothness": np.array([row["mean_smoothness"] for row in rows]),
        "diversity": np.array([row["diversity"] for row in rows]),
        "test_accuracy": np.array([_or_nan(accuracy.get(epoch)) for epoch, _ in states], dtype=float),
        "noise_smoothness": noise_smoothness(),
    }


JOBS = {"weights.kernels": kernels_job, "weights.evolution": evolution_job}
