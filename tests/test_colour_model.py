"""The built-in CNN on a colour data set: ``--data cifar10[:ROOT]`` trains ``cifar10-cnn`` on first use, with a
checkpoint per epoch, so the weights view shows colour filters and the evolution view works. The CIFAR-10 here is a
small folder in CIFAR's own pickled format, written by the test, whose classes differ by colour and stripes."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from compute import models
from compute.jobs.table import run
from compute.specs.source import Source
from dashboard.__main__ import parse_args

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_colour_cifar(root, per_batch: int = 100, seed: int = 0) -> None:
    """CIFAR-10's python layout (five training batches, a test batch, the meta file) holding images a small CNN
    can learn in a few epochs: class c has its own colour, horizontal stripes for even c and vertical for odd, and
    noise."""
    rng = np.random.default_rng(seed)
    palette = rng.uniform(0.1, 0.9, (10, 3))
    stripes = (np.arange(32) // 4 % 2).astype(np.float64)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        pattern = np.where((labels % 2 == 0)[:, None, None], stripes[None, :, None], stripes[None, None, :])
        images = palette[labels][:, :, None, None] * (0.6 + 0.4 * pattern[:, None]) + rng.normal(0, 0.08, (per_batch, 3, 32, 32))
        pixels = (np.clip(images, 0, 1) * 255).round().astype(np.uint8).reshape(per_batch, 3072)
        (folder / name).write_bytes(pickle.dumps({"data": pixels, "labels": labels.tolist(), "batch_label": name},
                                                 protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CLASSES}, protocol=2))


@pytest.fixture(scope="module")
def colour_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_colour_cifar(root)
    return Source(model="cifar10-cnn", data=f"cifar10:{root}", device="cpu")


def test_the_command_line_picks_the_colour_cnn_for_cifar10_and_downloads_only_when_asked():
    config = parse_args(["--data", "cifar10:/somewhere"])
    assert (config.model, config.data, config.download) == ("cifar10-cnn", "cifar10:/somewhere", False)
    assert parse_args(["--data", "cifar10", "--download"]).download is True
    assert parse_args([]).model == "digits-cnn" and parse_args([]).data == "digits"
    assert parse_args(["--data", "cifar10", "--model", "resnet18"]).model == "resnet18"


def test_the_colour_cnn_trains_itself_on_first_use_with_a_checkpoint_per_epoch(colour_source, cache_root):
    description = run(colour_source, "describe", {})
    assert description["model"] == "cifar10-cnn" and description["image_shape"] == [3, 32, 32]
    assert description["classes"] == CLASSES
    from compute.jobs.workspace import workspace

    dataset = workspace(colour_source).dataset
    assert models.checkpoints("cifar10-cnn", dataset) == []  # describing needs only the architecture
    model = workspace(colour_source).model()  # the first use trains it
    found = models.checkpoints("cifar10-cnn", dataset)
    assert [c.epoch for c in found] == list(range(models.MODELS["cifar10-cnn"].epochs + 1))
    # Checkpoints of this folder's content, apart from any other CIFAR-10 (and from the digits CNN's).
    assert found[0].path.parent.parent == cache_root / "checkpoints" / "cifar10-cnn"
    assert found[0].path.parent.name.startswith("data-")
    assert found[0].test_accuracy < 0.3 and found[-1].test_accuracy > 0.8  # measured: 0.01 -> 1.00
    assert isinstance(model, models.ColourCNN) and model.input_shape == (3, 32, 32)
    # The test accuracy of the history is the model's own on the test split.
    with torch.no_grad():
        predicted = model(dataset.images[dataset.is_test.nonzero().flatten()]).argmax(1)
    assert float((predicted == dataset.labels[dataset.is_test]).float().mean()) == pytest.approx(found[-1].test_accuracy)


def test_the_weights_view_shows_colour_filters_and_their_evolution(colour_source):
    kernels = run(colour_source, "weights.kernels", {"layer": "conv1"})
    assert kernels["mode"] == "rgb" and kernels["shape"] == (16, 3, 5, 5) and kernels["grid"].shape == (16, 5, 5, 3)
    evolution = run(colour_source, "weights.evolution", {"layer": "conv1"})
    epochs = models.MODELS["cifar10-cnn"].epochs
    assert evolution["epochs"] == list(range(epochs + 1)) and evolution["grids"].shape == (epochs + 1, 16, 5, 5, 3)
    assert evolution["test_accuracy"][-1] > 0.8 and np.isfinite(evolution["test_accuracy"]).all()


def test_the_evolution_view_embeds_every_epoch_of_the_colour_cnn(colour_source):
    result = run(colour_source, "evolution.embed", {"layer": "relu4", "method": "pca", "run": "default"})
    epochs = models.MODELS["cifar10-cnn"].epochs
    assert result["epochs"] == list(range(epochs + 1)) and result["layouts"].shape == (epochs + 1, 600, 2)
    assert result["classes"] == CLASSES
    assert result["test_accuracy"][-1] > 0.8 > result["test_accuracy"][0]
    listed = run(colour_source, "evolution.runs", {})["runs"]
    assert [r["name"] for r in listed] == ["default"] and listed[0]["settings"]["epochs"] == epochs


def test_another_cifar_folder_trains_its_own_checkpoints(colour_source, tmp_path):
    from compute import data

    write_colour_cifar(tmp_path, per_batch=20, seed=1)
    other = data.load(f"cifar10:{tmp_path}")
    mine = data.load(colour_source.data)
    assert models.checkpoint_dir("cifar10-cnn", other) != models.checkpoint_dir("cifar10-cnn", mine)
    assert models.checkpoints("cifar10-cnn", other) == []  # nothing trained on it yet
