"""The evolution view's jobs: every epoch's aligned layout of a layer, training another run of the built-in CNN,
and the list of runs."""
from __future__ import annotations

import numpy as np

from compute import training
from compute.errors import UserError
from compute.evolution import embed_checkpoints
from compute.jobs.workspace import Workspace
from compute.progress import scaled
from compute.specs.models import MODELS


def built_in(workspace: Workspace) -> tuple[str, object]:
    """(model, data set) of the workspace's built-in model, whose runs the jobs list and train; UserError for any
    other model (only the built-in CNNs keep a checkpoint per epoch)."""
    source = workspace.source
    if not workspace.built_in:
        raise UserError(f"the evolution needs per-epoch checkpoints: only the built-in models "
                        f"({', '.join(MODELS)}) and their runs have them")
    return source.model, workspace.dataset


def embed_job(workspace: Workspace, progress, layer: str, method: str = "pca", mode: str = "auto",
              run: str | None = None, seed: int = 0) -> dict:
    """Every epoch's aligned layout of ``layer`` for run ``run`` (None: the built-in model's own training).

    Returns layouts (E, N, 2) float32 (all frames at once, so the page animates without a round trip per frame),
    labels (N,), is_test (N,), predicted (E, N), the per-epoch numbers, epochs, classes and the alignment sentence.
    """
    model, data = built_in(workspace)
    needs_training = run in (None, training.DEFAULT_RUN) and not any(
        r.name == training.DEFAULT_RUN for r in training.runs(model, data))
    split = 0.3 if needs_training else 0.0
    checkpoints = training.run_checkpoints(run, progress=scaled(progress, 0.0, split) if needs_training else None,
                                           model=model, dataset=data)
    dataset = workspace.dataset
    # The checkpoints are loaded into models of this job's own, so no lane's lock is needed.
    evolution = embed_checkpoints(checkpoints, dataset, layer, method, seed=seed, mode=mode,
                                  progress=scaled(progress, split, 1.0), device=workspace.device)
    return {"run": run or training.DEFAULT_RUN, "epochs": evolution.epochs, "layouts": evolution.layouts,
            "labels": dataset.labels.numpy().astype(np.int64), "is_test": dataset.is_test.numpy().astype(bool),
            "classes": list(dataset.classes), "predicted": evolution.predicted, **evolution.numbers(),
            "alignment": evolution.alignment, "method": method, "layer": layer, "mode": evolution.mode,
            "trust_sample": evolution.trust_sample}


def train_job(workspace: Workspace, progress, epochs: int = 10, lr: float = 3e-3, width: float = 1.0,
              seed: int = 0) -> dict:
    """Train the built-in CNN with these settings as a named run (reused when it exists): {"run", "settings",
    "test_accuracy": per epoch}."""
    model, dataset = built_in(workspace)
    name = training.train_run(epochs, lr, width, seed, progress=progress, device=workspace.device, model=model,
                              dataset=dataset)
    found = next(r for r in training.runs(model, dataset) if r.name == name)
    return {"run": name, "settings": found.settings, "test_accuracy": list(found.test_accuracy)}


def runs_job(workspace: Workspace, progress, asked: int | None = None) -> dict:
    """The completed training runs: {"runs": [{"name", "settings", "test_accuracy"}, ...]}, the default first.

    ``asked`` (when the page asked, ignored here) makes every listing its own request: the server shares the answers
    of equal requests, and a listing must see runs trained since, in this tab or another. Empty for a model that is
    not built in."""
    if not workspace.built_in:
        return {"runs": []}
    return {"runs": [{"name": r.name, "settings": r.settings, "test_accuracy": list(r.test_accuracy)}
                     for r in training.runs(*built_in(workspace))]}


JOBS = {"evolution.embed": embed_job, "evolution.train": train_job, "evolution.runs": runs_job}
