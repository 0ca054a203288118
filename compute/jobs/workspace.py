"""What a compute process keeps loaded: one :class:`Workspace` per :class:`~compute.specs.source.Source`.

The data set is loaded once and each model once per lane (``compute.jobs.lanes``): interactive jobs share one copy,
long jobs another, so the hooks one lane puts on a model never meet the other lane's forward passes. Within a lane,
``lock`` serialises work on its models (hooks and the inversion's ReLU rule change a model while they run). Work
that needs no model (t-SNE of features already extracted, say) runs outside the lock.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from compute.jobs.lanes import GATE, INTERACTIVE, LONG, DeviceGate, current_lane
from compute.progress import Progress
from compute.specs.models import is_built_in
from compute.specs.source import Source

_load_lock = threading.RLock()  # one model load (or the built-in model's training) at a time in this process


@contextlib.contextmanager
def _waiting_for_load(progress: Progress | None):
    """Hold the load lock; a job that finds another one loading (or training) the model says so while it waits,
    with no level on its bar: it cannot know how far the other one is."""
    if not _load_lock.acquire(blocking=False):
        if progress is not None:
            progress(None, "waiting for the model: another panel is loading it (the first start trains it)")
        _load_lock.acquire()
    try:
        yield
    finally:
        _load_lock.release()


@dataclass
class Workspace:
    """The loaded data set and models of one :class:`Source` in this process."""

    source: Source
    gate: DeviceGate = GATE
    _locks: dict = field(default_factory=lambda: {INTERACTIVE: threading.RLock(), LONG: threading.RLock()})
    _models: dict = field(default_factory=dict)

    @property
    def lock(self) -> threading.RLock:
        """The lock of the calling job's lane: held while a job uses (and may hook) that lane's models."""
        return self._locks[current_lane()]

    @functools.cached_property
    def device(self) -> torch.device:
        from compute.device import pick_device

        device = pick_device(self.source.device)
        if self.source.device in ("auto", "", None) and device.type == "cuda" and torch.cuda.device_count() > 1:
            # The local cluster's workers (--workers N) are named 0..N-1: each takes its own GPU of the machine.
            # A lab's cluster starts one worker per GPU with that GPU alone visible (dask-cuda), so count is 1 there.
            device = torch.device("cuda", _worker_number() % torch.cuda.device_count())
        return device

    @functools.cached_property
    def dataset(self):
        from compute import data, model_sources

        source = self.source
        preprocessing = model_sources.preprocessing(source.model, source.weights, source.image_size, source.resize)
        return data.load(source.data, preprocessing, source.download)

    @property
    def built_in(self) -> bool:
        """A built-in model trained here: its epochs are saved checkpoints."""
        return is_built_in(self.source.model, self.source.checkpoint)

    def _lane_model(self, key: Any, load, progress: Progress | None = None) -> torch.nn.Module:
        """This lane's instance of model ``key``: loaded once (the interactive lane's), copied for the long lane."""
        lane = current_lane()
        if (lane, key) in self._models:
            return self._models[(lane, key)]
        # Another thread may be loading (or training) it: waiting for that is not running interactive work.
        with self.gate.stepping_aside(), _waiting_for_load(progress):
            if (INTERACTIVE, key) not in self._models:
                self._models[(INTERACTIVE, key)] = load()
            if lane == LONG and (LONG, key) not in self._models:
                model = copy.deepcopy(self._models[(INTERACTIVE, key)])
                # Every forward pass of long work is a step at which a click may go first.
                model.register_forward_pre_hook(lambda _module, _inputs: self.gate.step())
                self._models[(LONG, key)] = model
        return self._models[(lane, key)]

    def _load(self, epoch: int | None, progress: Progress | None) -> torch.nn.Module:
        from compute import models

        return models.load(self.source.model, epoch=epoch, checkpoint=self.source.checkpoint, device=self.device,
                           progress=progress, weights=self.source.weights, num_classes=len(self.dataset.classes),
                           dataset=self.dataset)

    def model(self, epoch: int | None = None, progress: Progress | None = None) -> torch.nn.Module:
        """The model (trained on first use for the built-in one), one instance per epoch and lane, in eval mode."""
        return self._lane_model(epoch, lambda: self._load(epoch, progress), progress)

    def extraction_model(self, epoch: int | None = None) -> torch.nn.Module:
        """An instance of the model (at ``epoch``) of its own for the shards of a cluster extraction
        (``compute.shards``): they run beside this process's jobs, whose hooks and locks never meet it."""
        return self._lane_model(("extraction", epoch), lambda: self._load(epoch, None))

    def will_train(self) -> bool:
        """True until the built-in model has its checkpoints: its first use trains it, most of that job's time."""
        from compute import models

        return (self.built_in and (INTERACTIVE, None) not in self._models
                and not models.checkpoints(self.source.model, self.dataset))

    def untrained_model(self) -> torch.nn.Module:
        """The model before training: epoch 0 for built-in models, else the architecture freshly initialised."""
        from compute import models

        if self.built_in:
            return self.model(epoch=0)
        trained = self.model()
        return self._lane_model("random", lambda: models.fresh_copy(trained, seed=0).to(self.device).eval())

    def architecture(self) -> torch.nn.Module:
        """The architecture, enough to list layers and check shapes (untrained for the built-in model)."""
        from compute import models

        if self.built_in:
            return self._lane_model("architecture", lambda: models.build(self.source.model).to(self.device).eval())
        return self.model()

    def model_at(self, epoch: int | None) -> torch.nn.Module:
        """The model saved at ``epoch`` (0: untrained) for a built-in model; for another, 0 is its architecture
        freshly initialised and anything else the loaded model."""
        if epoch == 0 and not self.built_in:
            return self.untrained_model()
        return self.model(epoch=epoch if self.built_in else None)

    def image(self, index: Any) -> torch.Tensor:
        """Data-set image ``index`` (C, H, W) (a UserError when out of range). An image derived from it (an
        adversarial example, an upload) comes from :func:`compute.jobs.variants.image`."""
        return self.dataset.image(int(index))


def _worker_number() -> int:
    """This Dask worker's name when it is a number (a LocalCluster's workers), else 0."""
    try:
        from distributed import get_worker

        return int(get_worker().name)
    except (ImportError, ValueError, TypeError):
        return 0


_workspaces: dict[Source, Workspace] = {}
_workspaces_lock = threading.Lock()


def workspace(source: Source) -> Workspace:
    """This process's workspace for ``source`` (created on first use)."""
    with _workspaces_lock:
        if source not in _workspaces:
            _workspaces[source] = Workspace(source)
        return _workspaces[source]
