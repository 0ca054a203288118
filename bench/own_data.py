"""A researcher's own images: the folder pass (resnet18, random weights) through the project's streaming extraction
against a plain worker-process DataLoader over the same files, with images/s and each pass's peak memory.

Each pass runs in a fresh spawned process, so its peak resident memory (``ru_maxrss`` of the process and of its
decoding workers) is its own. Both use the same number of decoding workers and the same model on the same device.
Quick mode: 300 generated JPEGs of 500x375; full: 2,000.
"""
from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

from bench.common import Row, met, photo_like_folder, ratio

LAYER = "avgpool"
TARGET = 0.9  # the project's pass within 0.9x of the DataLoader's images/s


def make_folder(root: Path, count: int) -> Path:
    """``count`` JPEGs of 500x375 (smooth random colour fields, so they compress like photos) in two classes."""
    return photo_like_folder(root, count, 500, 375, field=(12, 16))


def _model(device: str):
    from compute import models

    return models.load("resnet18", weights="random", device=device)


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024  # kilobytes on Linux


def project_pass(folder: str, features: str, workers: int, device: str) -> dict:
    """The project's path: load_folder (cheap checks) + stream_features to a memory-mapped file."""
    import torch

    from compute import data, extraction

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = _model(device)
    start = time.perf_counter()
    dataset = data.load_folder(folder, size=224, resize=256)
    result = extraction.stream_features(model, dataset.images, LAYER, features, workers=workers)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "count": len(result), "peak_mb": _peak_mb()}


def dataloader_pass(folder: str, workers: int, device: str) -> dict:
    """The baseline: torchvision's ImageFolder + the weights' transforms in a DataLoader with worker processes,
    features kept in a list in memory (what a researcher writes by hand)."""
    import torch
    import torchvision
    from torchvision.transforms import v2

    from compute import layers as layer_names

    model = _model(device)
    start = time.perf_counter()
    transform = v2.Compose([v2.PILToTensor(), v2.Resize(256, antialias=True), v2.CenterCrop(224),
                            v2.ToDtype(torch.float32, scale=True)])
    images = torchvision.datasets.ImageFolder(folder, transform=transform)
    loader = torch.utils.data.DataLoader(images, batch_size=32, num_workers=workers, prefetch_factor=4)
    rows = []
    with torch.no_grad():
        for batch, _labels in loader:
            output = layer_names.run_until(model, batch.to(device), LAYER)
            rows.append(output.flatten(1).cpu())
    count = len(torch.cat(rows))
    return {"seconds": time.perf_counter() - start, "count": count, "peak_mb": _peak_mb()}


def _report(queue, function, args) -> None:
    queue.put(function(*args))


def _in_fresh_process(function, *args) -> dict:
    """``function(*args)`` in a new, non-daemonic spawned process (a Pool's are daemonic: no decoding workers)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_report, args=(queue, function, args))
    process.start()
    result = queue.get()
    process.join()
    return result


def rows(quick: bool) -> list[Row]:
    import torch

    count = 300 if quick else 2000
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from compute.extraction import decode_workers

    workers = decode_workers()
    with tempfile.TemporaryDirectory(prefix="own-data-") as temporary:
        folder = make_folder(Path(temporary) / "photos", count)
        baseline = _in_fresh_process(dataloader_pass, str(folder), workers, device)
        project = _in_fresh_process(project_pass, str(folder), str(Path(temporary) / "features"), workers, device)
    assert project["count"] == baseline["count"] == count
    project_rate = count / project["seconds"]
    baseline_rate = count / baseline["seconds"]
    where = f"{device}, {workers} decoding workers, {multiprocessing.cpu_count()} cores"
    return [
        Row("own.1", f"folder pass: {count} JPEGs 500x375 -> resnet18 {LAYER} ({where})",
            f"{project_rate:.1f} images/s", f"{baseline_rate:.1f} images/s (DataLoader, ImageFolder)",
            ratio(project_rate / baseline_rate), f">= {TARGET}×", met(project_rate / baseline_rate >= TARGET)),
        Row("own.2", "peak resident memory of the pass (process + decoding workers)",
            f"{project['peak_mb']:.0f} MB", f"{baseline['peak_mb']:.0f} MB", ratio(project["peak_mb"] / baseline["peak_mb"])),
    ]


if __name__ == "__main__":
    import sys

    from bench.common import markdown_table

    print(markdown_table(rows(quick="--full" not in sys.argv)))
