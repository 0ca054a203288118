"""Sharded extraction across a Dask cluster (compute.shards): per-image throughput per worker with one worker and
with two, in the same run, against the one-process pass of today (compute.extraction.stream_features) as baseline.

Generated JPEGs of 64x64 through resnet18 with random weights (avgpool, 512 values per image). Every worker is a
spawned process with one torch thread (Dask sets OMP_NUM_THREADS=1) that decodes its own shards; the baseline runs
here, also with one thread and decoding inline, so the three rows compare like with like. The workers are started
and each has loaded the model before the clock starts (a short warm-up extraction): the rows time the shards.
Features of the three passes must be equal.

    PYTHONPATH=. python -m bench.extraction_cluster --images 4000
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import photo_like_folder

LAYER, SIZE, SHARD = "avgpool", 64, 256


@dataclass(frozen=True)
class RandomResnet18:
    """The loader every worker gets (picklable, equal by value: loaded once per worker)."""

    def __call__(self):
        from compute import models

        return models.load("resnet18", weights="random", device="cpu")


def make_folder(root: Path, count: int) -> Path:
    """``count`` JPEGs of 64x64 (smooth random colour fields, so they compress like photos) in two classes."""
    return photo_like_folder(root, count, SIZE, SIZE)


def cluster_pass(dataset, warmup, workers: int, directory: Path) -> tuple[float, float, np.ndarray]:
    """(wall seconds, CPU seconds of all workers, features) of the sharded extraction on a local cluster of
    ``workers`` processes."""
    import dask
    from distributed import Client, LocalCluster

    from compute import shards

    # As the app starts its compute processes (dashboard/service.py): without Dask's MALLOC_TRIM_THRESHOLD_, which
    # makes every large tensor a fresh zero-filled mmap (batched extraction 2-2.7x slower); one thread each.
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), "OMP_NUM_THREADS": "1"}
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        # Every worker loads the model (and warms its kernels) on a shard of its own before the clock starts.
        shards.extract_sharded(client, RandomResnet18(), warmup.images, LAYER, directory / "warmup",
                               shard_size=16, decode_workers=0)
        cpu_before = sum(client.run(time.process_time).values())
        start = time.perf_counter()
        features, run = shards.extract_sharded(client, RandomResnet18(), dataset.images, LAYER, directory / "run",
                                               shard_size=SHARD, decode_workers=0)
        seconds = time.perf_counter() - start
        cpu = sum(client.run(time.process_time).values()) - cpu_before
        assert run.processed == -(-len(dataset) // SHARD)
    return seconds, cpu, np.asarray(features)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.extraction_cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000, help="generated JPEGs (default 4000)")
    args = parser.parse_args(argv)
    import torch

    from compute import data, extraction

    torch.set_num_threads(1)
    start_load = open("/proc/loadavg").read().split()[:3]
    with tempfile.TemporaryDirectory(prefix="featurescope-bench-") as temporary:
        root = Path(temporary)
        dataset = data.load_folder(make_folder(root / "images", args.images), size=SIZE, resize=SIZE)
        warmup = data.load_folder(make_folder(root / "warmup", 128), size=SIZE, resize=SIZE)
        model = RandomResnet18()()
        extraction.stream_features(model, warmup.images, LAYER, root / "alone-warmup", workers=0)
        start, cpu_start = time.perf_counter(), time.process_time()
        alone = np.asarray(extraction.stream_features(model, dataset.images, LAYER, root / "alone", workers=0))
        baseline, baseline_cpu = time.perf_counter() - start, time.process_time() - cpu_start
        rows = [("one process (today's pass)", 1, baseline, baseline_cpu)]
        for workers in (1, 2):
            seconds, cpu, features = cluster_pass(dataset, warmup, workers, root / f"cluster{workers}")
            np.testing.assert_allclose(features, alone, rtol=1e-4, atol=1e-5)
            rows.append((f"cluster of {workers} worker{'s' if workers > 1 else ''}", workers, seconds, cpu))
    print(f"load at the start {start_load}")
    print(f"{args.images:,} JPEGs of {SIZE}x{SIZE}, resnet18 (random weights) to {LAYER}, CPU, one thread per "
          f"process; load {open('/proc/loadavg').read().split()[:3]} on {os.cpu_count()} cores")
    print(f"{'pass':28s} {'wall s':>7s} {'images/s':>9s} {'per worker':>11s} {'vs one process':>15s} "
          f"{'CPU ms/image':>13s} {'vs one process':>15s}")
    for name, workers, seconds, cpu in rows:
        rate = args.images / seconds
        print(f"{name:28s} {seconds:7.2f} {rate:9.1f} {rate / workers:11.1f} {baseline / seconds:14.2f}x "
              f"{1000 * cpu / args.images:13.2f} {baseline_cpu / cpu:14.2f}x")
    two_vs_one = rows[1][2] / rows[2][2]
    print(f"two workers vs one: {two_vs_one:.2f}x the images/s (features equal to the one-process pass)")
    # The wall clock of a machine shared with others says how much of its cores this run got; the CPU time per
    # image is the work itself: a worker with a core of its own extracts 1 / (CPU s per image) images/s.
    per_worker = args.images / rows[2][3]  # images per CPU-second, summed over both workers
    print(f"per worker with a core of its own (two-worker run's CPU time): {per_worker:.0f} images/s")
    for workers in (1, 8, 64):
        print(f"a million images on {workers} workers of {per_worker:.0f} images/s each: "
              f"{1e6 / (per_worker * workers) / 3600:.2f} h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
