"""Named training runs of a built-in CNN with other settings (epochs, learning rate, width, seed).

A run keeps one checkpoint per epoch, epoch 0 (untrained) included, in ``<home>/runs/<name>/`` next to its
``history.json`` (settings and per-epoch test accuracy), where ``<home>`` is the built-in model's own checkpoint
folder (``models.checkpoint_dir``: ``<cache>/checkpoints/digits-cnn`` for the digits CNN, one per data content for
the CIFAR-10 CNN). Its name is made from its settings, so asking for the same settings twice trains once. The
default run is the built-in model's own training (``models.checkpoints(model)``), listed as ``"default"``.
Every function takes ``model`` (default the digits CNN) and ``dataset`` (the data it trains on, see
``models.training_data``).

    name = train_run(epochs=2, lr=3e-3, width=0.5, seed=1)      # -> "e2-lr0.003-w0.5-s1"
    model = load_run(name, epoch=1)                             # DigitsCNN of width 0.5, eval mode
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from compute import models
from compute.cache import cache_dir  # noqa: F401
from compute.errors import UserError
from compute.progress import Progress
from compute.specs.training import DEFAULT_RUN, DEFAULT_SETTINGS, LIMITS, MODEL, check_settings  # noqa: F401


def default_settings(model: str = MODEL) -> dict:
    """The settings of built-in ``model``'s own training (its epochs; the same rate, width and seed for all)."""
    return {**DEFAULT_SETTINGS, "epochs": models.MODELS[model].epochs}



@dataclass(frozen=True)
class Run:
    """One training run: its name, settings and per-epoch test accuracy (epoch 0 = untrained first)."""

    name: str
    epochs: int
    lr: float
    width: float
    seed: int
    test_accuracy: tuple[float, ...]

    @property
    def final_accuracy(self) -> float:
        return self.test_accuracy[-1]

    @property
    def settings(self) -> dict:
        return {"epochs": self.epochs, "lr": self.lr, "width": self.width, "seed": self.seed}


def runs_dir(model: str = MODEL, dataset=None) -> Path:
    return models.checkpoint_dir(model, dataset) / "runs"


def run_name(epochs: int, lr: float, width: float, seed: int, model: str = MODEL) -> str:
    """The name of the run with these settings: ``"default"`` for the built-in model's, else e.g. ``e2-lr0.003-w0.5-s1``."""
    settings = check_settings(epochs, lr, width, seed)
    if settings == default_settings(model):
        return DEFAULT_RUN
    return f"e{settings['epochs']}-lr{settings['lr']:g}-w{settings['width']:g}-s{settings['seed']}"


def _read_history(directory: Path) -> dict | None:
    try:
        history = json.loads((directory / "history.json").read_text())
    except (OSError, ValueError):
        return None
    return history if history.get("complete") else None


def _run_from_history(name: str, history: dict, model: str = MODEL) -> Run:
    settings = {**default_settings(model), **history.get("settings", {})}
    return Run(name, int(settings["epochs"]), float(settings["lr"]), float(settings["width"]), int(settings["seed"]),
               tuple(float(row["test_accuracy"]) for row in history["epochs"]))


def runs(model: str = MODEL, dataset=None) -> list[Run]:
    """Every completed run, the default one first (once the built-in model is trained), then by name."""
    found = []
    default_history = _read_history(models.checkpoint_dir(model, dataset))
    if default_history is not None:
        found.append(_run_from_history(DEFAULT_RUN, default_history, model))
    folder = runs_dir(model, dataset)
    if folder.is_dir():
        for directory in sorted(p for p in folder.iterdir() if p.is_dir()):
            history = _read_history(directory)
            if history is not None:
                found.append(_run_from_history(directory.name, history, model))
    return found


def run_checkpoints(name: str | None = None, progress: Progress | None = None, model: str = MODEL,
                    dataset=None) -> list[models.Checkpoint]:
    """The per-epoch checkpoints of run ``name`` (None or "default": the built-in model, trained on first use)."""
    if name in (None, DEFAULT_RUN):
        return models.ensure_trained(model, progress, dataset)
    directory = runs_dir(model, dataset) / name
    if "/" in name or name.startswith(".") or (history := _read_history(directory)) is None:
        known = ", ".join(run.name for run in runs(model, dataset)) or "none yet"
        raise UserError(f"no completed training run {name!r}; runs: {known}")
    return [models.Checkpoint(row["epoch"], directory / f"epoch_{row['epoch']:03d}.pt", row.get("test_accuracy"))
            for row in history["epochs"]]


def model_from_checkpoint(checkpoint: models.Checkpoint | str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The built-in CNN (grey or colour, by its first layer) of the width its weights were saved with, loaded from
    ``checkpoint``, in eval mode."""
    path = Path(checkpoint.path if isinstance(checkpoint, models.Checkpoint) else checkpoint)
    state = models.read_state_dict(path)
    if "conv1.weight" not in state:
        raise models.ModelError(f"{path.name} is not a checkpoint of the built-in CNN")
    # The first conv's channel count fixes the width (16 channels at width 1), its input channels the class.
    out_channels, in_channels = state["conv1.weight"].shape[:2]
    model = models.small_cnn_class(in_channels)(int(state["logits.weight"].shape[0]), width=int(out_channels) / 16)
    models.load_state(model, state, path.name)
    return model.to(device).eval()


def load_run(name: str | None = None, epoch: int | None = None, device: str | torch.device = "cpu",
             model: str = MODEL, dataset=None) -> torch.nn.Module:
    """The model of run ``name`` at ``epoch`` (None = the last), in eval mode on ``device``."""
    found = run_checkpoints(name, model=model, dataset=dataset)
    chosen = found[-1] if epoch is None else next((c for c in found if c.epoch == epoch), None)
    if chosen is None:
        raise models.ModelError(f"run {name or DEFAULT_RUN} has no checkpoint for epoch {epoch}; epochs 0..{found[-1].epoch}")
    return model_from_checkpoint(chosen, device)


def train_run(epochs: int = 10, lr: float = 3e-3, width: float = 1.0, seed: int = 0, progress: Progress | None = None,
              device: str | torch.device = "cpu", model: str = MODEL, dataset=None) -> str:
    """Train the digits CNN with these settings as a named run (once: a completed run is reused); returns its name.

    Training goes to a temporary folder renamed when complete, so a cancelled or failed run leaves nothing behind
    that :func:`runs` would list.
    """
    name = run_name(epochs, lr, width, seed, model)
    if name == DEFAULT_RUN:
        models.ensure_trained(model, progress, dataset)
        return name
    folder = runs_dir(model, dataset)
    directory = folder / name
    if _read_history(directory) is not None:
        return name
    from filelock import FileLock  # installed with torch

    folder.mkdir(parents=True, exist_ok=True)
    # Two requests for the same run (two tabs) train it once; the lock dies with its process.
    with FileLock(str(folder / f".{name}.lock")):
        if _read_history(directory) is not None:
            return name
        partial = folder / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            settings = check_settings(epochs, lr, width, seed)
            models.train_built_in(model, settings["epochs"], seed=settings["seed"], progress=progress,
                                  lr=settings["lr"], width=settings["width"], directory=partial, device=device,
                                  dataset=dataset)
            shutil.rmtree(directory, ignore_errors=True)
            partial.rename(directory)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return name
