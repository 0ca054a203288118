"""Streaming extraction (compute.extraction): equal to in-memory extraction, resumable, parallel decoding that also
works inside the real compute process (a Dask worker)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from compute import activations, data, extraction


@pytest.fixture()
def jpeg_folder(tmp_path):
    """Two classes of 9 random JPEGs each, of three different sizes, and one file that is not an image."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for k in range(9):
            height, width = [(30, 40), (40, 30), (36, 36)][k % 3]
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / label / f"{k}.jpg")
    (root / "dogs" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.LazyLinear(3)).eval()


def reference_features(model, dataset, layer, pooled):
    """The naive path: every image decoded here, one at a time, through the model."""
    rows = []
    with torch.no_grad():
        for index in range(len(dataset)):
            output = activations.run_until(model, dataset.images[index][None], layer)[0]
            rows.append(output.mean(dim=(1, 2)) if pooled else output.flatten())
    return torch.stack(rows).numpy()


def prepared(folder, size=24, resize=28):
    dataset = data.load_folder(folder, size=size, resize=resize)
    model = small_cnn()
    model(torch.zeros(1, 3, size, size))  # materialise the lazy layer
    return dataset, model


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("pooled", [True, False])
def test_streamed_features_equal_in_memory_extraction(jpeg_folder, tmp_path, workers, pooled):
    dataset, model = prepared(jpeg_folder)
    assert dataset.skipped == ["dogs/broken.jpg"] and len(dataset) == 18
    streamed = extraction.stream_features(model, dataset.images, "2", tmp_path / "features", pooled=pooled,
                                          batch_size=4, workers=workers)
    assert isinstance(streamed, np.memmap) and streamed.dtype == np.float32
    assert streamed.shape == ((18, 5) if pooled else (18, 5 * 11 * 11))
    expected = reference_features(model, dataset, "2", pooled)
    np.testing.assert_allclose(np.asarray(streamed), expected, rtol=1e-5, atol=1e-6)
    in_memory = activations.extract(model, dataset.images, "2", pooled=pooled, batch_size=7)
    np.testing.assert_allclose(np.asarray(streamed), in_memory.reshape(18, -1).numpy(), rtol=1e-5, atol=1e-6)
    record = json.loads((tmp_path / "features" / "progress.json").read_text())
    assert record["done"] == 18 and record["unreadable"] == []


def test_the_batch_size_and_decoding_threads_change_nothing(jpeg_folder, tmp_path, monkeypatch):
    dataset, model = prepared(jpeg_folder)
    first = np.asarray(extraction.stream_features(model, dataset.images, "2", tmp_path / "a", batch_size=5, workers=0))
    monkeypatch.setattr(extraction, "_can_fork_workers", lambda: False)  # as in a daemonic process: threads decode
    texts = []
    second = extraction.stream_features(model, dataset.images, "2", tmp_path / "b", batch_size=3, workers=2,
                                        progress=lambda fraction, text: texts.append(text))
    np.testing.assert_allclose(np.asarray(second), first, rtol=1e-5, atol=1e-6)
    assert "2 decoding threads" in texts[-1] and "18/18" in texts[-1]


class Interrupt(Exception):
    pass


def test_an_interrupted_pass_resumes_where_its_record_says_and_ends_equal(jpeg_folder, tmp_path):
    dataset, model = prepared(jpeg_folder)
    rows_computed = []
    model[0].register_forward_hook(lambda _m, inputs, _out: rows_computed.append(len(inputs[0])))

    def stop_after_two_batches(fraction, text):
        if len(rows_computed) == 2:
            raise Interrupt

    directory = tmp_path / "features"
    with pytest.raises(Interrupt):
        extraction.stream_features(model, dataset.images, "2", directory, batch_size=4, chunk_size=4, workers=2,
                                   progress=stop_after_two_batches)
    assert json.loads((directory / "progress.json").read_text())["done"] == 8  # two chunks of 4 were final
    rows_computed.clear()
    texts = []
    resumed = extraction.stream_features(model, dataset.images, "2", directory, batch_size=4, chunk_size=4,
                                         workers=2, progress=lambda fraction, text: texts.append(text))
    assert sum(rows_computed) == 10  # only the 10 images not yet done
    assert "resumed at 8" in texts[-1]
    np.testing.assert_allclose(np.asarray(resumed), reference_features(model, dataset, "2", True), rtol=1e-5, atol=1e-6)
    rows_computed.clear()
    again = extraction.stream_features(model, dataset.images, "2", directory, batch_size=4, workers=2)
    assert rows_computed == [] and np.array_equal(np.asarray(again), np.asarray(resumed))  # complete: read, not redone


def test_a_record_of_another_layer_is_not_resumed(jpeg_folder, tmp_path):
    dataset, model = prepared(jpeg_folder)
    directory = tmp_path / "features"
    extraction.stream_features(model, dataset.images, "0", directory, batch_size=6, workers=0)
    other = extraction.stream_features(model, dataset.images, "2", directory, batch_size=6, workers=0)
    np.testing.assert_allclose(np.asarray(other), reference_features(model, dataset, "2", True), rtol=1e-5, atol=1e-6)


def test_a_file_broken_after_loading_is_a_blank_row_and_listed(jpeg_folder, tmp_path):
    dataset, model = prepared(jpeg_folder)
    broken = [p.name for p in dataset.images.paths].index("4.jpg")
    dataset.images.paths[broken].write_bytes(b"overwritten")
    with pytest.warns(UserWarning, match="cats/4.jpg"):
        features = extraction.stream_features(model, dataset.images, "2", tmp_path / "f", batch_size=4, workers=2)
    assert dataset.images.unreadable == ["cats/4.jpg"]
    assert json.loads((tmp_path / "f" / "progress.json").read_text())["unreadable"] == ["cats/4.jpg"]
    with torch.no_grad():
        blank = activations.run_until(model, torch.zeros(1, 3, 24, 24), "2").mean(dim=(2, 3))[0].numpy()
    np.testing.assert_allclose(features[broken], blank, rtol=1e-5, atol=1e-6)


def test_dataset_features_streams_folders_into_the_cache_and_keeps_tensors_in_memory(jpeg_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURESCOPE_CACHE_DIR", str(tmp_path / "cache"))
    dataset, model = prepared(jpeg_folder)
    features = extraction.dataset_features(model, dataset, "2", "pooled")
    assert isinstance(features, np.memmap)
    directory = extraction.features_directory(model, dataset, "2", "pooled")
    assert directory.parent == tmp_path / "cache" / "features" and (directory / "features.npy").is_file()
    np.testing.assert_allclose(np.asarray(features), reference_features(model, dataset, "2", True), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        model[0].bias.add_(1.0)
    assert extraction.features_directory(model, dataset, "2", "pooled") != directory  # new weights, new file
    tensors = data.Dataset("t", torch.rand(5, 3, 24, 24), torch.zeros(5, dtype=torch.long), ["a"],
                           torch.zeros(5, dtype=torch.bool))
    in_memory = extraction.dataset_features(model, tensors, "2", "flat")
    assert type(in_memory) is np.ndarray and in_memory.shape == (5, 5 * 11 * 11)


def test_decoding_worker_processes_start_inside_the_real_compute_process(jpeg_folder, tmp_path):
    """The compute process is a Dask worker: daemonic by default, which forbids children. dashboard/service.py
    turns that off, so the folder pass there decodes with worker processes, not threads."""
    from compute.specs.source import Source
    from dashboard.service import ComputeService

    service = ComputeService.start(Source(model="resnet18", weights="random", data=str(jpeg_folder), image_size=32))
    try:
        flags = service.client.run(lambda: __import__("multiprocessing").current_process().daemon)
        assert list(flags.values()) == [False]
        texts = service.client.submit(_stream_in_worker, str(jpeg_folder), str(tmp_path / "w"), pure=False).result(300)
        assert "2 decoding processes" in texts[-1] and "18/18" in texts[-1]
    finally:
        service.close(quietly=True)


def _stream_in_worker(folder: str, directory: str) -> list[str]:
    dataset, model = prepared(folder)
    texts: list[str] = []
    extraction.stream_features(model, dataset.images, "2", directory, batch_size=4, workers=2,
                               progress=lambda fraction, text: texts.append(text))
    return texts
