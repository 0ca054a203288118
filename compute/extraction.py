"""Streaming extraction of one layer over a large data set: resumable, memory-mapped, decoding in parallel.

For an image folder, worker processes (a torch DataLoader) decode and resize JPEGs/PNGs to uint8 while the model
runs on the previous batch; each batch's layer output (pooled to channel means, or flattened) is written into a
``.npy`` file opened as a memory map, so no more than a batch of maps is ever in memory. Every ``chunk_size``
images the file is flushed and a small progress record (``progress.json``) says how many rows are final: a pass
that was interrupted (a cancelled job, a killed process) starts again where the record says.

Decoding gives the very numbers :class:`compute.data.FolderImages` gives (the same resize, crop and uint8 -> float
step), so the result equals :func:`compute.activations.extract` on the same images.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from compute import layers as layer_names
from compute.cache import cache_dir, fingerprint
from compute.data import MAX_IMAGE_BYTES, FolderImages, image_to_uint8, uint8_to_float
from compute.device import model_device
from compute.progress import Progress

CHUNK_SIZE = 1024  # images between two progress records: what an interruption can cost
CPU_BATCH = 32  # small batches on the CPU keep decoding and the model in step (and memory low)
GPU_BATCH = 256


class FolderFiles(torch.utils.data.Dataset):
    """The files of a :class:`FolderImages` as a map-style dataset for DataLoader workers (picklable).

    ``files[i]`` -> (i, (3, size, size) uint8, readable); an unreadable file gives zeros and ``readable=False``.
    """

    def __init__(self, images: FolderImages, start: int = 0):
        self.paths = [str(path) for path in images.paths[start:]]
        self.size, self.resize, self.start = images.size, images.resize, start

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> tuple[int, torch.Tensor, bool]:
        from PIL import Image

        try:
            if os.path.getsize(self.paths[position]) > MAX_IMAGE_BYTES:  # as FolderImages: no decompression bombs
                raise ValueError("too large")
            with Image.open(self.paths[position]) as opened:
                pixels = image_to_uint8(opened.convert("RGB"), self.size, self.resize)
            return self.start + position, pixels, True
        except Exception:  # PIL raises many kinds for bad data; the file is listed, the pass goes on
            return self.start + position, torch.zeros((3, self.size, self.size), dtype=torch.uint8), False


def collate(items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(indices (B,), uint8 images (B, 3, H, W), readable (B,) bool)."""
    return (torch.tensor([i for i, _, _ in items]), torch.stack([p for _, p, _ in items]),
            torch.tensor([ok for _, _, ok in items]))


def decode_workers() -> int:
    """Worker processes for decoding: every core but one for the model, at least 2, at most 16."""
    return max(2, min(16, (os.cpu_count() or 2) - 1))


def _can_fork_workers() -> bool:
    # A daemonic process may not start children (Dask workers are daemonic unless distributed.worker.daemon is
    # False, as dashboard/service.py sets it); there decoding falls back to threads.
    return not multiprocessing.current_process().daemon


def folder_batches(images: FolderImages, start: int, batch_size: int, workers: int,
                   pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(indices, uint8 images, readable) batches of ``images[start:]`` in order, decoded ahead in parallel:
    ``workers`` processes (threads where this process may not have children; 0: decoded here, one by one)."""
    files = FolderFiles(images, start)
    if workers > 0 and _can_fork_workers():
        # fork is cheap and shares the path list; a process that has touched CUDA must never be forked.
        context = "forkserver" if torch.cuda.is_initialized() else "fork"
        loader = torch.utils.data.DataLoader(files, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                                             prefetch_factor=4, pin_memory=pin_memory,
                                             multiprocessing_context=context)
        iterator = iter(loader)
        try:
            yield from iterator
        finally:
            iterator._shutdown_workers()  # at once, also when the consumer stopped early (a cancelled job)
        return
    if workers == 0:
        for begin in range(0, len(files), batch_size):
            yield collate([files[i] for i in range(begin, min(len(files), begin + batch_size))])
        return
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        pending = []
        starts = list(range(0, len(files), batch_size))
        for begin in starts[:2]:
            pending.append(pool.map(files.__getitem__, range(begin, min(len(files), begin + batch_size))))
        for k in range(len(starts)):
            batch = collate(list(pending.pop(0)))
            if k + 2 < len(starts):
                begin = starts[k + 2]
                pending.append(pool.map(files.__getitem__, range(begin, min(len(files), begin + batch_size))))
            yield batch


def tensor_batches(images, start: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The same batches for images already in memory (a tensor, or lazily transformed stored images)."""
    for begin in range(start, len(images), batch_size):
        batch = images[begin:begin + batch_size]
        yield torch.arange(begin, begin + len(batch)), batch, torch.ones(len(batch), dtype=torch.bool)


def read_record(directory: Path) -> dict:
    """The progress record of a features directory: {count, layer, pooled, done, unreadable}; {} when none."""
    try:
        return json.loads((directory / "progress.json").read_text())
    except (OSError, ValueError):
        return {}


def write_record(directory: Path, record: dict) -> None:
    temporary = directory / f"progress.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(record))
    temporary.replace(directory / "progress.json")  # atomic: an interruption leaves the old record or the new


def stream_features(model: nn.Module, images, layer: str, directory: str | os.PathLike, pooled: bool = True,
                    batch_size: int | None = None, chunk_size: int = CHUNK_SIZE, workers: int | None = None,
                    progress: Progress | None = None) -> np.ndarray:
    """The output of ``layer`` for every image, pooled to channel means (``pooled``) or flattened: a read-only
    memory map (N, D) float32 of ``directory/features.npy``.

    images: a :class:`FolderImages` (decoded by ``workers`` processes, default :func:`decode_workers`) or anything
    indexable by slices returning (B, C, H, W) float tensors in [0, 1]. A pass that stopped early (``progress``
    raised, the process died) resumes from the last complete chunk when called again with the same ``directory``.
    Files unreadable at decoding are blank rows, listed in the record and in ``images.unreadable``.
    """
    layer_names.parse(model, layer)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    count, device = len(images), model_device(model)
    if count == 0:
        raise ValueError("no images to extract from")
    identity = {"count": count, "layer": layer, "pooled": pooled}
    record = read_record(directory)
    target = directory / "features.npy"
    if not (target.is_file() and all(record.get(k) == v for k, v in identity.items())):
        record = {**identity, "done": 0, "unreadable": []}
    done = int(record["done"])
    if done < count:
        batch_size = batch_size or (GPU_BATCH if device.type == "cuda" else CPU_BATCH)
        folder = isinstance(images, FolderImages)
        workers = decode_workers() if workers is None else workers
        batches = folder_batches(images, done, batch_size, workers, pin_memory=device.type == "cuda") if folder \
            else tensor_batches(images, done, batch_size)
        how = (f"{workers} decoding {'processes' if _can_fork_workers() else 'threads'}" if folder and workers
               else "decoded here")
        features = np.lib.format.open_memmap(target, mode="r+") if done else None
        committed = done
        try:
            with torch.no_grad():
                for indices, pixels, readable in batches:
                    batch = pixels.to(device, non_blocking=True)
                    batch = uint8_to_float(batch) if batch.dtype == torch.uint8 else batch.float()
                    output = layer_names.run_until(model, batch, layer).float()
                    output = output.mean(dim=tuple(range(2, output.ndim))) if pooled and output.ndim > 2 else output
                    rows = output.reshape(len(output), -1).cpu().numpy()
                    if features is None:
                        features = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32,
                                                             shape=(count, rows.shape[1]))
                    first = int(indices[0])
                    features[first:first + len(rows)] = rows
                    if not bool(readable.all()):
                        record["unreadable"] += [images.relative(images.paths[int(i)]) for i in indices[~readable]]
                    stop = first + len(rows)
                    if stop - committed >= chunk_size or stop == count:
                        features.flush()  # rows on disk before the record says they are
                        record["done"] = committed = stop
                        write_record(directory, record)
                    if progress:
                        progress(stop / count, f"features of {layer}: {stop:,}/{count:,} images ({how})"
                                               + (f", resumed at {done:,}" if done else ""))
        finally:
            close = getattr(batches, "close", None)
            if close:
                close()  # stops decoding workers now, not when the generator is collected
            del features
    unreadable = record.get("unreadable", [])
    if unreadable:
        if isinstance(images, FolderImages):
            images.unreadable[:] = sorted(set(images.unreadable) | set(unreadable))
        warnings.warn(f"{len(unreadable)} unreadable image(s) left blank: {', '.join(unreadable[:5])}"
                      f"{' ...' if len(unreadable) > 5 else ''}", stacklevel=2)
    return np.load(target, mmap_mode="r")


def features_directory(model: nn.Module, dataset, layer: str, mode: str) -> Path:
    """Where the streamed features of ``layer`` over ``dataset`` live: keyed by the model's weights, the data's
    fingerprint, the layer and the mode, so a changed model or folder never reuses them."""
    key = hashlib.blake2b(f"{fingerprint(model)}|{fingerprint(dataset)}|{layer}|{mode}".encode(),
                          digest_size=12).hexdigest()
    return cache_dir() / "features" / key


def dataset_features(model: nn.Module, dataset, layer: str, mode: str = "pooled",
                     progress: Progress | None = None) -> np.ndarray:
    """(N, D) float32 features of ``layer`` over ``dataset`` (``mode``: ``pooled`` or ``flat``). Image folders
    stream through :func:`stream_features` into the cache directory (resumable, memory-mapped); data sets held
    in memory go through :func:`compute.activations.extract` as before."""
    if not isinstance(dataset.images, FolderImages):
        from compute.activations import extract

        features = extract(model, dataset.images, layer, pooled=(mode == "pooled"), progress=progress)
        return features.reshape(len(features), -1).numpy()
    directory = features_directory(model, dataset, layer, mode)
    return stream_features(model, dataset.images, layer, directory, pooled=(mode == "pooled"), progress=progress)
