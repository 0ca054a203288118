"""What a compute process keeps loaded, and the table of named jobs it runs.

A :class:`Source` names a model and a data set (plain strings, so it travels to the compute process and keys
its workspace). The compute process keeps one :class:`Workspace` per source: the data set and each model are
loaded once and reused by every job. A job is a function ``fn(workspace, progress, **params) -> dict`` of plain
values and numpy arrays, registered with :func:`job` in the compute module of its family; the web server asks for
it by name (``dashboard/service.py``) and never holds a model itself.

``progress(fraction, text, partial=None)`` reports how far a job is; ``partial`` (optional) is a small dict of plain
values and arrays the page may show before the job ends (a live image of an optimisation, a t-SNE layout as it
converges). It raises :class:`Cancelled` once nobody waits for the job any more, so a superseded job stops at its
next report.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

Progress = Callable[..., None]  # progress(fraction: float, text: str, partial: dict | None = None)
JobFunction = Callable[..., dict]

JOBS: dict[str, JobFunction] = {}
# Images derived from a data-set image (an adversarial example, say): name -> fn(workspace, index, **params) -> (C, H, W).
# A selection can name one ({"kind": name, **params}), and every panel then opens for it as for the image itself.
VARIANTS: dict[str, Callable[..., torch.Tensor]] = {}


def _user_errors() -> tuple[type[Exception], ...]:
    from compute import activations, data, models

    return (data.DataError, models.ModelError, activations.LayerError, ValueError, IndexError, KeyError)


class Cancelled(Exception):
    """Raised by a job's progress callback once the job has been superseded or its page closed."""


def job(name: str) -> Callable[[JobFunction], JobFunction]:
    """Register ``fn(workspace, progress, **params)`` as the job called ``name`` (names are unique)."""

    def register(function: JobFunction) -> JobFunction:
        if name in JOBS and JOBS[name] is not function:
            raise ValueError(f"job {name!r} is registered twice")
        JOBS[name] = function
        return function

    return register


def variant(name: str) -> Callable:
    """Register ``fn(workspace, index, **params) -> (C, H, W)`` as the image variant called ``name``."""

    def register(function: Callable) -> Callable:
        VARIANTS[name] = function
        return function

    return register


def quiet(_fraction: float, _text: str, _partial: dict | None = None) -> None:
    """A progress callback that reports nowhere (for calling jobs directly)."""


def scaled(progress: Progress, start: float, end: float) -> Progress:
    """A progress callback that maps 0..1 into ``start..end`` of ``progress``: one bar for a chain of steps."""
    def report(fraction: float, text: str, partial: dict | None = None) -> None:
        value = start + (end - start) * max(0.0, min(1.0, fraction))
        # Two-argument callbacks (a notebook's print, say) keep working when no partial result is sent.
        progress(value, text) if partial is None else progress(value, text, partial)

    return report


@dataclass(frozen=True)
class Source:
    """A model and its data, by name: what the command line says. Hashable; keys the workspace."""

    model: str = "digits-cnn"
    data: str = "digits"
    checkpoint: str | None = None
    device: str = "auto"
    layer: str = ""  # the layer shown first ("" = the model's choice)
    weights: str | None = None  # torchvision weights: DEFAULT, an enum name (from the torch hub cache), or random
    image_size: int | None = None  # crop size of the images (None: the weights' transforms(), else the data's own)
    resize: int | None = None  # shorter side before the crop (None: the weights' transforms(), else image_size)
    download: bool = False  # fetch a missing torchvision data set (cifar10, mnist, fashion-mnist)


@dataclass
class Workspace:
    """The loaded data set and models of one :class:`Source` in this process.

    ``lock`` serialises work on the shared models: hooks and the inversion's ReLU rule change a model while they
    run, so two threads must not run the same model at once. Work that needs no model (t-SNE of features already
    extracted, say) runs outside the lock.
    """

    source: Source
    lock: threading.RLock = field(default_factory=threading.RLock)
    _models: dict = field(default_factory=dict)

    @functools.cached_property
    def device(self) -> torch.device:
        from compute.device import pick_device

        return pick_device(self.source.device)

    @functools.cached_property
    def dataset(self):
        from compute import data, model_sources

        source = self.source
        preprocessing = model_sources.preprocessing(source.model, source.weights, source.image_size, source.resize)
        return data.load(source.data, preprocessing, source.download)

    def model(self, epoch: int | None = None, progress: Progress | None = None) -> torch.nn.Module:
        """The model (trained on first use for the built-in one), one instance per epoch, in eval mode."""
        from compute import models

        with self.lock:
            if epoch not in self._models:
                self._models[epoch] = models.load(self.source.model, epoch=epoch, checkpoint=self.source.checkpoint,
                                                  device=self.device, progress=progress, weights=self.source.weights,
                                                  num_classes=len(self.dataset.classes), dataset=self.dataset)
            return self._models[epoch]

    def untrained_model(self) -> torch.nn.Module:
        """The model before training: epoch 0 for built-in models, else the architecture freshly initialised."""
        from compute import models

        if self.source.model in models.MODELS and self.source.checkpoint is None:
            return self.model(epoch=0)
        with self.lock:
            if "random" not in self._models:
                self._models["random"] = models.fresh_copy(self.model(), seed=0).to(self.device).eval()
            return self._models["random"]

    def architecture(self) -> torch.nn.Module:
        """The architecture, enough to list layers and check shapes (untrained for the built-in model)."""
        from compute import models

        if self.source.model in models.MODELS and self.source.checkpoint is None:
            with self.lock:
                if "architecture" not in self._models:
                    self._models["architecture"] = models.build(self.source.model).to(self.device).eval()
                return self._models["architecture"]
        return self.model()

    def image(self, index: Any, variant: dict | None = None) -> torch.Tensor:
        """One image (C, H, W) of the data set by index (IndexError with a readable message when out of range), or
        with ``variant`` ({"kind": name, **params}) that image transformed by a registered variant."""
        if not variant:
            return self.dataset.image(int(index))
        import compute.jobs  # noqa: F401  (the families register their variants)

        params = dict(variant)
        kind = params.pop("kind", None)
        if kind not in VARIANTS:
            raise ValueError(f"unknown image variant {kind!r}; known: {', '.join(sorted(VARIANTS)) or 'none'}")
        return VARIANTS[kind](self, int(index), **params)


_workspaces: dict[Source, Workspace] = {}
_workspaces_lock = threading.Lock()


def workspace(source: Source) -> Workspace:
    """This process's workspace for ``source`` (created on first use)."""
    with _workspaces_lock:
        if source not in _workspaces:
            _workspaces[source] = Workspace(source)
        return _workspaces[source]


# Mistakes in a request that the error's own message explains to the user (shown as they are, never retried).
USER_ERRORS: tuple[type[Exception], ...] = _user_errors()


def run(source: Source, name: str, params: dict, progress: Progress = quiet) -> dict:
    """Run the job ``name`` with ``params`` on this process's workspace of ``source``."""
    import compute.jobs  # noqa: F401  (imports every family module, which registers its jobs)

    if name not in JOBS:
        raise KeyError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}")
    return JOBS[name](workspace(source), progress, **params)
