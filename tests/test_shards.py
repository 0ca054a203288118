"""Sharded extraction across a Dask cluster (compute.shards): two worker processes give the features of one worker
and of the one-process pass, a worker killed mid-shard costs only its shard, a finished store is not redone, and a
file broken after loading is a blank row listed as the one-process pass lists it."""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from compute import activations, data, extraction, shards
from dashboard.service import restore_environ

SIZE, SHARD, BATCH = 16, 24, 8  # 200 images -> 9 shards (the last one of 8), 3 batches each
LAYER = "3"


class Slowly(nn.Module):
    """Identity that takes a while: a shard lasts long enough for a worker to be killed in the middle of it."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def small_cnn(seconds: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(Slowly(seconds), nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2),
                         nn.ReLU()).eval()


@dataclass(frozen=True)
class SmallCnn:
    """The loader the workers get: picklable, equal by value (so each worker loads it once)."""

    seconds: float = 0.0

    def __call__(self) -> nn.Module:
        return small_cnn(self.seconds)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """200 random images in two classes, JPEG and PNG, of a few sizes."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("shards") / "images"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for k in range(100):
            height, width = [(20, 24), (24, 20), (18, 18)][k % 3]
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{k:03d}.{'png' if k % 4 == 0 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes (spawned, as the app's), one thread each; a worker that dies fails its task at once
    (as the app sets it), so the re-submission tested is the extraction's own."""
    import dask
    from distributed import Client, LocalCluster

    # Dask's nanny writes its pre-spawn environment (OMP_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_) into this process's
    # os.environ, and a later nanny prefers os.environ to its config: every compute process a later test starts
    # would inherit Dask's values. Put the environment back afterwards.
    environ_before = {name: os.environ.get(name) for name in dask.config.get("distributed.nanny.pre-spawn-environ")}
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address="127.0.0.1:0") as local, Client(local) as client:
                client.wait_for_workers(2)
                yield client
    finally:
        restore_environ(environ_before)


@pytest.fixture(scope="module")
def one_worker():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0") as local, \
            Client(local) as client:
        yield client


def loaded(folder):
    return data.load_folder(folder, size=SIZE, resize=SIZE + 2)


def one_process(dataset, directory):
    return np.asarray(extraction.stream_features(small_cnn(), dataset.images, LAYER, directory, batch_size=BATCH,
                                                 workers=0))


def sharded(client, dataset, directory, loader=SmallCnn(), progress=None):
    return shards.extract_sharded(client, loader, dataset.images, LAYER, directory, shard_size=SHARD,
                                  batch_size=BATCH, progress=progress)


def test_two_workers_give_the_features_of_one_worker_and_of_the_one_process_pass(folder, cluster, one_worker,
                                                                                 tmp_path):
    dataset = loaded(folder)
    texts = []
    two, run = sharded(cluster, dataset, tmp_path / "two", progress=lambda fraction, text: texts.append(text))
    assert isinstance(two, np.memmap) and two.shape == (200, 8)
    assert run.processed == 9 and run.skipped == 0 and run.retried == 0
    assert "9/9 shards, 200/200 images on 2 workers" in texts[-1]
    one, _ = sharded(one_worker, dataset, tmp_path / "one")
    np.testing.assert_array_equal(np.asarray(two), np.asarray(one))
    np.testing.assert_allclose(np.asarray(two), one_process(dataset, tmp_path / "alone"), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # and the naive loop, image by image
        naive = np.stack([activations.run_until(small_cnn(), dataset.images[k][None], LAYER)[0].mean(dim=(1, 2))
                          .numpy() for k in range(0, 200, 37)])
    np.testing.assert_allclose(np.asarray(two)[::37], naive, rtol=1e-5, atol=1e-6)
    # Both workers did shards, each loading the model once.
    loads = cluster.run(lambda: shards.loaded_model.cache_info().misses)
    assert sorted(loads.values()) == [1, 1]
    record = json.loads((tmp_path / "two" / "progress.json").read_text())
    assert record == {"count": 200, "layer": LAYER, "pooled": True, "done": 200, "unreadable": []}
    assert not (tmp_path / "two" / "shards").exists()


def test_a_rerun_over_a_complete_store_does_no_work_and_the_one_process_pass_reads_it(folder, cluster, tmp_path):
    dataset = loaded(folder)
    first, _ = sharded(cluster, dataset, tmp_path / "f")
    again, run = sharded(cluster, dataset, tmp_path / "f")
    assert run.processed == 0
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))
    # The app's own pass finds the store complete: it reads it, it computes nothing (no progress at all).
    texts = []
    read = extraction.stream_features(small_cnn(), dataset.images, LAYER, tmp_path / "f", batch_size=BATCH,
                                      progress=lambda fraction, text: texts.append(text))
    assert texts == [] and np.array_equal(np.asarray(read), np.asarray(first))


def test_a_stopped_run_resumes_with_the_shards_it_had_not_done(folder, cluster, tmp_path):
    dataset = loaded(folder)

    def stop_after_three(fraction, text):
        if text.startswith(f"features of {LAYER}: 3/"):
            raise KeyboardInterrupt("stopped")

    with pytest.raises(KeyboardInterrupt):
        sharded(cluster, dataset, tmp_path / "s", progress=stop_after_three)
    assert not (tmp_path / "s" / "features.npy").exists()
    resumed, run = sharded(cluster, dataset, tmp_path / "s")
    # At least the three reported; a shard already running when the run stopped may have finished since (Dask
    # cannot interrupt a running task; it completes its shard, which the rerun then skips).
    assert run.skipped >= 3 and run.processed == 9 - run.skipped
    np.testing.assert_allclose(np.asarray(resumed), one_process(dataset, tmp_path / "alone"), rtol=1e-5, atol=1e-6)


def test_a_run_hears_of_a_cancel_while_its_shards_run(folder, cluster, tmp_path):
    """Progress comes at least every second, also before any shard ended, so a cancelled job stops then."""
    texts = []

    def cancel_at_once(fraction, text):
        texts.append(text)
        raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):  # a shard lasts at least 1.5 s: three batches of 0.5 s each
        sharded(cluster, loaded(folder), tmp_path / "c", loader=SmallCnn(seconds=0.5), progress=cancel_at_once)
    assert texts == [f"features of {LAYER}: 0/9 shards, 0/200 images on 2 workers"]


def test_a_worker_killed_in_the_middle_of_a_shard_costs_only_that_shard(folder, cluster, tmp_path):
    dataset = loaded(folder)
    directory = tmp_path / "k"
    killed = []

    def kill_a_worker_mid_shard(fraction, text):
        """At the first shard done, SIGKILL the worker that is writing a shard (its temporary file names it)."""
        if killed:
            return
        for _ in range(6000):
            writing = [path for path in (directory / "shards").glob("*.tmp.npy")]
            if writing:
                pid = int(writing[0].name.split(".")[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.005)

    before = set(cluster.run(os.getpid).values())
    features, run = sharded(cluster, dataset, directory, loader=SmallCnn(seconds=0.1), progress=kill_a_worker_mid_shard)
    assert killed and killed[0] in before
    assert run.retried >= 1 and run.processed == 9
    np.testing.assert_allclose(np.asarray(features), one_process(dataset, tmp_path / "alone"), rtol=1e-5, atol=1e-6)
    cluster.wait_for_workers(2)  # the nanny started a new worker in place of the killed one
    assert killed[0] not in set(cluster.run(os.getpid).values())
    assert list(directory.glob("*.tmp*")) == [] and not (directory / "shards").exists()


def test_a_file_broken_after_loading_is_a_blank_row_listed_as_the_one_process_pass_lists_it(folder, cluster,
                                                                                            tmp_path):
    broken_folder = tmp_path / "images"
    shutil.copytree(folder, broken_folder)
    dataset = loaded(broken_folder)
    position = [path.relative_to(broken_folder).as_posix() for path in dataset.images.paths].index("b/050.jpg")
    dataset.images.paths[position].write_bytes(b"not an image any more")
    features, _ = sharded(cluster, dataset, tmp_path / "f")
    assert json.loads((tmp_path / "f" / "progress.json").read_text())["unreadable"] == ["b/050.jpg"]
    with torch.no_grad():
        blank = activations.run_until(small_cnn(), torch.zeros(1, 3, SIZE, SIZE), LAYER).mean(dim=(2, 3))[0].numpy()
    np.testing.assert_allclose(features[position], blank, rtol=1e-5, atol=1e-6)
    with pytest.warns(UserWarning, match="b/050.jpg"):
        alone = one_process(dataset, tmp_path / "alone")
    np.testing.assert_allclose(np.asarray(features), alone, rtol=1e-5, atol=1e-6)
    # Read through the app's pass, the store says the same as the one-process pass: a warning, and the file listed.
    dataset.images.unreadable.clear()
    with pytest.warns(UserWarning, match="1 unreadable image"):
        extraction.stream_features(small_cnn(), dataset.images, LAYER, tmp_path / "f")
    assert dataset.images.unreadable == ["b/050.jpg"]


def test_the_scatter_job_extracts_a_folder_on_every_worker_of_the_local_cluster(folder, tmp_path, monkeypatch):
    """The app's path: ``--workers 2`` starts two compute processes; the scatter's job runs the shards from its
    worker on both, and the store it reads holds the one-process pass's features."""
    from compute.jobs.workspace import workspace
    from compute.specs.source import Source
    from compute.worker import PROGRESS_TOPIC
    from dashboard.service import ComputeService

    source = Source(model="resnet18", weights="random", data=str(folder), image_size=SIZE)
    # Dask reads thread counts from os.environ before its config, and this module's cluster, still open, wrote its
    # own there when its nanny restarted the worker killed above: the app's share of the cores is tested here.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    service = ComputeService.start(source, workers=2, threads_per_worker=2)
    try:
        result = service.run("explore.scatter", {"layer": "layer2", "method": "pca"}, timeout=600)
        loads = service.client.run(lambda: shards.loaded_model.cache_info().misses)
        # What the page's bar said on the way (the progress channel's events, as the scheduler keeps them).
        texts = [message.get("text", "") for _time, message in service.client.get_events(PROGRESS_TOPIC)]
        facts = list(service.worker_facts().values())
    finally:
        service.close(quietly=True)
    assert sorted(loads.values()) == [1, 1]  # each worker loaded the model for its shards once
    assert [fact["threads"] for fact in facts] == [max(1, os.cpu_count() // 2)] * 2  # the cores shared out
    assert any(text.startswith("features of layer2: ") and "images on 2 workers" in text for text in texts), texts
    mode = result["mode"]
    assert result["coords"].shape == (200, 2) and mode in ("pooled", "flat")
    here = workspace(source)  # the same model and data in this process, as a notebook would have them
    model, dataset = here.model(), here.dataset
    store = np.load(extraction.features_directory(model, dataset, "layer2", mode) / "features.npy")
    alone = extraction.stream_features(model, dataset.images, "layer2", tmp_path / "alone", pooled=mode == "pooled",
                                       workers=0)
    np.testing.assert_allclose(store, np.asarray(alone), rtol=1e-4, atol=1e-5)


def test_the_command_line_starts_a_local_cluster_of_n_workers_and_refuses_nonsense(capsys, monkeypatch):
    from dashboard.__main__ import CLUSTER_ENV, parse_args

    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    assert parse_args([]).workers == 1 and parse_args(["--workers", "3"]).workers == 3
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    assert "--workers" in capsys.readouterr().out
    for args, expected in ((["--workers", "0"], "--workers 0 is not a number of processes"),
                           (["--workers", "2", "--cluster", "tcp://10.0.0.1:8786"], "--cluster uses a running one")):
        with pytest.raises(SystemExit) as stopped:
            parse_args(args)
        assert stopped.value.code == 2 and expected in capsys.readouterr().err


def test_each_worker_extracts_with_the_weights_of_the_job_or_refuses(folder):
    """The app's loader: a worker's own instance of the workspace's model, with the same weights; other weights
    (a user's model drawn at random in each process) are refused, and the job then extracts on one worker."""
    from compute.cache import fingerprint
    from compute.jobs.extraction import WeightsDiffer, WorkspaceModel
    from compute.jobs.workspace import workspace
    from compute.specs.source import Source

    source = Source(model="resnet18", weights="random", data=str(folder), image_size=SIZE)
    jobs_model = workspace(source).model()
    shards_model = WorkspaceModel(source, fingerprint(jobs_model))()
    assert shards_model is not jobs_model and fingerprint(shards_model) == fingerprint(jobs_model)
    with pytest.raises(WeightsDiffer, match="seed its initialisation or give --checkpoint"):
        WorkspaceModel(source, "model:other weights")()
