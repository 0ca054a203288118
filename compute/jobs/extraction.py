"""A layer's features over an image folder extracted by every worker of the cluster (``compute.shards``), for the
jobs that need them: the job that first asks runs the shards from its worker, then reads the store as usual."""
from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass

from compute import cache, shards
from compute.cache import fingerprint, get_cache
from compute.data import FolderImages
from compute.errors import ModelError
from compute.extraction import features_directory
from compute.jobs.workspace import Workspace, workspace
from compute.progress import Progress
from compute.specs.source import Source


log = logging.getLogger("featurescope.jobs")
_locks: "weakref.WeakValueDictionary[str, threading.Lock]" = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


def waiting_for_another():
    return cache.waiting_for_another()  # read when called: the jobs table sets it after this module is imported


class WeightsDiffer(ModelError):
    """A worker loads the model with other weights than the job's (a user's model drawn at random per process)."""


@dataclass(frozen=True)
class WorkspaceModel:
    """The loader a shard task gets: the model of ``source`` (at ``epoch``) in the worker that runs it, loaded
    there once, with the weights (``fingerprint``) of the model the job that asked holds."""

    source: Source
    fingerprint: str
    epoch: int | None = None

    def __call__(self):
        model = workspace(self.source).extraction_model(self.epoch)
        # A model built by a function of the user's may draw its weights at random: every worker must extract
        # with the very weights the features are stored under, or the rows of two workers would not fit together.
        if fingerprint(model) != self.fingerprint:
            raise WeightsDiffer(f"model {self.source.model} loads with other weights in each compute process (drawn "
                                "at random?): seed its initialisation or give --checkpoint, so that every worker "
                                "of the cluster extracts with the same weights")
        return model


def cluster_workers() -> int:
    """Workers of the Dask cluster this job runs in (0 outside a worker: a notebook, a test)."""
    try:
        from distributed import get_client, get_worker

        get_worker()
        return len(get_client().scheduler_info().get("workers", {}))
    except (ImportError, ValueError):
        return 0


def extract_on_cluster(space: Workspace, model, layer: str, mode: str, progress: Progress,
                       epoch: int | None = None) -> bool:
    """Fill the features store of ``layer`` (``mode`` pooled or flat) of ``model`` (the workspace's, at ``epoch``)
    across the cluster's workers when there are several and the data is an image folder not yet reduced; True when
    it did. The one-process pass reads the store as its own (:func:`compute.extraction.stream_features`), so
    nothing after this changes; it also extracts, on this worker alone, when the workers' weights differ."""
    from compute import embedding

    dataset = space.dataset
    if not isinstance(dataset.images, FolderImages) or cluster_workers() < 2:
        return False
    directory = features_directory(model, dataset, layer, mode)
    with _locks_guard:
        lock = _locks.setdefault(str(directory), threading.Lock())
    # Two jobs of this process asking for a new layer at once (the scatter and the neighbours): one extracts, the
    # other waits for it (not counting as running meanwhile) and then finds the store complete.
    if not lock.acquire(blocking=False):
        with waiting_for_another():
            lock.acquire()
    try:
        if embedding.layer_reduction.key(model, dataset, layer, mode) in get_cache():
            return False  # the reduced features are cached: the store is not read again
        from distributed import worker_client

        loader = WorkspaceModel(space.source, fingerprint(model), epoch)
        try:
            with worker_client() as client:  # this job's thread leaves the worker's pool while the shards run
                shards.extract_sharded(client, loader, dataset.images, layer, directory, pooled=mode == "pooled",
                                       decode_workers=None, progress=progress)
        except WeightsDiffer as error:
            log.warning("%s; the features are extracted by one worker", error)
            return False
        return True
    finally:
        lock.release()
