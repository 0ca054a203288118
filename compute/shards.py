"""Extraction of one layer over an image folder as shards spread across every worker of a Dask cluster.

The folder's images are cut into shards of ``shard_size`` consecutive images. Each worker loads the model once (a
picklable *loader*, cached in the worker process) and extracts whole shards on its own device, one shard at a time;
a shard's rows go to ``shards/NNNNN.npy`` under a temporary name, renamed when complete, then its record
``shards/NNNNN.json`` (unreadable files) marks it done. A rerun skips done shards; a shard whose worker died (a
crash, SIGKILL) is submitted again, and the nanny has started a new worker meanwhile. When every shard is done they
are gathered into ``features.npy`` with the ``progress.json`` record of :func:`compute.extraction.stream_features`,
so the app's one-process path reads the result as its own (and a folder already extracted there is not redone).

Every shard decodes and batches exactly as the one-process pass does (the same decoding, batches aligned to the
shard's start), so the features equal it; two workers give the very numbers one worker gives.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from compute import layers as layer_names
from compute.data import FolderImages, uint8_to_float
from compute.device import model_device
from compute.extraction import CPU_BATCH, GPU_BATCH, read_record, write_record, folder_batches
from compute.extraction import decode_workers as decoding_workers
from compute.progress import Progress

SHARD_SIZE = 2048  # images per shard at most: what a dead worker costs, and enough to amortise starting its decoders
ATTEMPTS = 3  # a shard whose worker died this many times is a failure, not bad luck
REPORT_EVERY_S = 1.0  # progress (and so a chance to hear of a cancel) at least this often while shards run
# One shard at a time per process: the device runs one batch at a time anyway, and a layer's forward pass hooks
# the model (concurrent passes on one model would mix their hooks).
_one_shard_at_a_time = threading.Lock()


@dataclass(frozen=True)
class Shard:
    """Images ``start``..``start + len(paths)`` of the folder: what a worker needs to extract them (no folder
    listing, so a worker on another machine reads just its shard's files)."""

    index: int
    start: int
    paths: tuple[str, ...]
    size: int
    resize: int


@dataclass
class ShardedRun:
    """What a call of :func:`extract_sharded` did: shards extracted now, found done, and submitted again after
    their worker died."""

    processed: int = 0
    skipped: int = 0
    retried: int = 0


@functools.lru_cache(maxsize=2)
def loaded_model(loader: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """The model of ``loader`` in this process, loaded on first use (a loader is hashable by value: a frozen
    dataclass, so every task of a run finds the same model)."""
    return loader()


def shard_path(directory: Path, index: int) -> Path:
    return directory / "shards" / f"{index:05d}.npy"


def shard_done(directory: Path, index: int) -> bool:
    return shard_path(directory, index).with_suffix(".json").is_file()


def shard_size_for(count: int, workers: int) -> int:
    """Images per shard: at least four shards per worker (a small folder still keeps every worker busy), in whole
    CPU batches, at most :data:`SHARD_SIZE`."""
    per_shard = -(-count // (4 * max(1, workers)))
    return min(SHARD_SIZE, max(CPU_BATCH, -(-per_shard // CPU_BATCH) * CPU_BATCH))


def plan(images: FolderImages, shard_size: int = SHARD_SIZE) -> list[Shard]:
    """The shards of ``images`` in order."""
    paths = [str(path) for path in images.paths]
    return [Shard(index, start, tuple(paths[start:start + shard_size]), images.size, images.resize)
            for index, start in enumerate(range(0, len(paths), shard_size))]


def extract_shard(loader, shard: Shard, layer: str, pooled: bool, directory: str, batch_size: int | None = None,
                  decode_workers: int | None = 0) -> int:
    """Extract ``shard`` into ``directory/shards`` (runs in a worker); returns the rows written (0: found done).

    Unreadable files are zero images (as in the one-process pass); their positions in the shard go to its record.
    ``decode_workers``: processes (threads in a daemonic worker) decoding ahead; None: as many as the cores allow.
    """
    directory = Path(directory)
    with _one_shard_at_a_time:
        # Done meanwhile: a run's cancelled task that was already running when a new run re-submitted its shard,
        # or the store gathered (Dask cannot stop a running task; such a task ends here, harmlessly).
        if shard_done(directory, shard.index) or not (directory / "shards").is_dir():
            return 0
        model = loaded_model(loader)
        device = model_device(model)
        batch_size = batch_size or (GPU_BATCH if device.type == "cuda" else CPU_BATCH)
        target = shard_path(directory, shard.index)
        # A name of this process's own: a worker that died mid-shard leaves its file behind, never a complete name.
        temporary = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npy")
        rows, unreadable = None, []
        with torch.no_grad():
            workers = decoding_workers() if decode_workers is None else decode_workers
            for indices, pixels, readable in folder_batches(shard, 0, batch_size, workers,
                                                            pin_memory=device.type == "cuda"):
                batch = uint8_to_float(pixels.to(device, non_blocking=True))
                output = layer_names.run_until(model, batch, layer).float()
                output = output.mean(dim=tuple(range(2, output.ndim))) if pooled and output.ndim > 2 else output
                values = output.reshape(len(output), -1).cpu().numpy()
                if rows is None:
                    rows = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32,
                                                     shape=(len(shard.paths), values.shape[1]))
                rows[int(indices[0]):int(indices[0]) + len(values)] = values
                unreadable += [int(i) for i in indices[~readable]]
        rows.flush()
        del rows
        temporary.replace(target)
        record = target.with_name(f"{target.stem}.{os.getpid()}.tmp.json")
        record.write_text(json.dumps({"rows": len(shard.paths), "unreadable": unreadable}))
        record.replace(target.with_suffix(".json"))  # the shard is done once this name exists
        return len(shard.paths)


def _prepare(directory: Path, identity: dict) -> None:
    """Start the shard store afresh unless its manifest is of this very extraction."""
    manifest = directory / "shards" / "manifest.json"
    try:
        same = json.loads(manifest.read_text()) == identity
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(directory / "shards", ignore_errors=True)
        (directory / "shards").mkdir(parents=True)
        manifest.write_text(json.dumps(identity))


def _worker_died(error: BaseException) -> bool:
    from distributed.scheduler import KilledWorker

    return isinstance(error, KilledWorker) or type(error).__name__ in ("CommClosedError", "FutureCancelledError")


def extract_sharded(client, loader, images: FolderImages, layer: str, directory: str | os.PathLike,
                    pooled: bool = True, shard_size: int | None = None, batch_size: int | None = None,
                    decode_workers: int | None = 0, progress: Progress | None = None) -> tuple[np.ndarray, ShardedRun]:
    """Features (N, D) float32 of ``layer`` over ``images``, pooled to channel means (``pooled``) or flattened, as
    a read-only memory map of ``directory/features.npy``, extracted by every worker of ``client``'s cluster in
    shards of ``shard_size`` images (default :func:`shard_size_for`).

    loader: a picklable callable, hashable by value, that returns the model on the worker's device. Resumable:
    done shards are kept, and a finished store is read, not computed. ``progress`` may raise to stop: the shards
    in flight are cancelled, the done ones kept.
    """
    from distributed import wait

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    count = len(images)
    identity = {"count": count, "layer": layer, "pooled": pooled}
    record = read_record(directory)
    run = ShardedRun()
    if (directory / "features.npy").is_file() and all(record.get(k) == v for k, v in identity.items()) \
            and record.get("done") == count:
        return np.load(directory / "features.npy", mmap_mode="r"), run
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    shard_size = shard_size or shard_size_for(count, workers)
    shards = plan(images, shard_size)
    paths_digest = hashlib.blake2b("\n".join(s for shard in shards for s in shard.paths).encode(),
                                   digest_size=12).hexdigest()
    _prepare(directory, {**identity, "shard_size": shard_size, "paths": paths_digest})
    pending = [shard for shard in shards if not shard_done(directory, shard.index)]
    run.skipped = len(shards) - len(pending)
    attempts = {shard.index: 0 for shard in pending}
    done_images = sum(len(shard.paths) for shard in shards) - sum(len(shard.paths) for shard in pending)

    shard_of: dict[str, Shard] = {}

    def submit(shard: Shard):
        attempts[shard.index] += 1
        future = client.submit(extract_shard, loader, shard, layer, pooled, str(directory), batch_size,
                               decode_workers, key=f"featurescope-shard-{shard.index}-{uuid.uuid4().hex[:12]}")
        shard_of[future.key] = shard
        return future

    def report() -> None:
        if progress:  # also while no shard ends: a cancelled job hears of it within a second, not a shard
            progress(done_images / count, f"features of {layer}: {run.skipped + run.processed}/{len(shards)} "
                                          f"shards, {done_images:,}/{count:,} images on {workers} workers")

    # Two shards in flight per worker: each has the next one at hand, and a cancel or a death loses little.
    queue = list(pending)
    in_flight = {submit(queue.pop(0)) for _ in range(min(len(queue), 2 * workers))}
    try:
        while in_flight:
            try:
                ended, in_flight = wait(in_flight, timeout=REPORT_EVERY_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                report()
                continue
            for future in ended:
                shard = shard_of.pop(future.key)
                # The status, not the result: a result is fetched from the worker that holds it, which may be the
                # one that just died (and the rows are on disk anyway).
                if future.status != "finished":
                    error = future.exception() if future.status == "error" else None
                    if (error is not None and not _worker_died(error)) or attempts[shard.index] >= ATTEMPTS:
                        raise error or RuntimeError(f"shard {shard.index} was lost {ATTEMPTS} times")
                    run.retried += 1
                    in_flight.add(submit(shard))
                    continue
                run.processed += 1
                done_images += len(shard.paths)
                if queue:
                    in_flight.add(submit(queue.pop(0)))
                report()
    finally:
        client.cancel(list(in_flight))
    _gather(directory, shards, images, record={**identity, "done": count})
    return np.load(directory / "features.npy", mmap_mode="r"), run


def _gather(directory: Path, shards: list[Shard], images: FolderImages, record: dict) -> None:
    """Shards -> ``features.npy`` and its complete ``progress.json`` record; the shards are removed after."""
    unreadable: list[str] = []
    temporary = directory / f"features.{os.getpid()}.tmp.npy"
    features = None
    for shard in shards:
        rows = np.load(shard_path(directory, shard.index), mmap_mode="r")
        if features is None:
            features = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32,
                                                 shape=(len(images), rows.shape[1]))
        features[shard.start:shard.start + len(rows)] = rows
        positions = json.loads(shard_path(directory, shard.index).with_suffix(".json").read_text())["unreadable"]
        unreadable += [images.relative(images.paths[shard.start + p]) for p in positions]
    features.flush()
    del features
    temporary.replace(directory / "features.npy")
    write_record(directory, {**record, "unreadable": unreadable})
    shutil.rmtree(directory / "shards", ignore_errors=True)  # the gathered file holds it all: half the disk
