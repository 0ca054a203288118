"""Tests of compute.training: named runs of the digits CNN with other settings, next to the default run."""
from __future__ import annotations

import pytest
import torch

from compute import models, training
from compute.errors import Cancelled
from compute.jobs.table import run
from compute.specs.source import Source

OTHER = {"epochs": 2, "lr": 5e-3, "width": 0.5, "seed": 1}


@pytest.fixture(scope="module")
def other_run(trained_model) -> str:
    return training.train_run(**OTHER)


def test_width_one_keeps_the_saved_architecture():
    default, explicit = models.DigitsCNN(), models.DigitsCNN(width=1.0)
    shapes = {name: tuple(t.shape) for name, t in default.state_dict().items()}
    assert shapes == {name: tuple(t.shape) for name, t in explicit.state_dict().items()}
    assert (shapes["conv1.weight"][0], shapes["conv2.weight"][0], shapes["conv3.weight"][0]) == (16, 32, 64)
    assert shapes["fc1.weight"] == (128, 64 * 4 * 4)
    half = models.DigitsCNN(width=0.5)
    assert half.conv3.out_channels == 32 and half.fc1.in_features == 32 * 4 * 4
    assert half(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_run_with_other_settings_keeps_a_checkpoint_per_epoch(other_run, cache_root):
    assert other_run == "e2-lr0.005-w0.5-s1"
    found = training.run_checkpoints(other_run)
    assert [c.epoch for c in found] == [0, 1, 2]
    assert all(c.path.is_file() for c in found)
    assert all(c.path.parent == cache_root / "checkpoints" / "digits-cnn" / "runs" / other_run for c in found)


def test_run_is_listed_with_its_settings_and_accuracies(other_run, digits):
    listed = {r.name: r for r in training.runs()}
    assert listed[other_run].settings == OTHER
    model = training.load_run(other_run, epoch=2)
    test = digits.is_test
    # the listed accuracy is the loaded model's accuracy, counted independently
    with torch.no_grad():
        correct = (model(digits.images[test]).argmax(1) == digits.labels[test]).float().mean().item()
    assert listed[other_run].test_accuracy[2] == pytest.approx(correct)
    assert listed[other_run].test_accuracy[0] < 0.3 < listed[other_run].test_accuracy[2]


def test_run_model_loads_with_its_width_at_each_epoch(other_run):
    first, last = training.load_run(other_run, epoch=0), training.load_run(other_run)
    assert isinstance(last, models.DigitsCNN) and not last.training
    assert last.conv1.out_channels == 8
    assert not torch.equal(first.conv1.weight, last.conv1.weight)
    with pytest.raises(models.ModelError, match="epoch 7"):
        training.load_run(other_run, epoch=7)


def test_asking_again_for_the_same_settings_trains_nothing(other_run):
    before = [c.path.stat().st_mtime_ns for c in training.run_checkpoints(other_run)]
    assert training.train_run(**OTHER) == other_run
    assert [c.path.stat().st_mtime_ns for c in training.run_checkpoints(other_run)] == before


def test_default_run_is_unchanged(other_run, trained_model, cache_root):
    default = models.checkpoints("digits-cnn")
    assert [c.epoch for c in default] == list(range(11))
    assert all(c.path.parent == cache_root / "checkpoints" / "digits-cnn" for c in default)
    assert training.runs()[0].name == training.DEFAULT_RUN
    assert training.runs()[0].settings == training.DEFAULT_SETTINGS
    assert training.run_checkpoints(None) == default
    assert training.run_name(**training.DEFAULT_SETTINGS) == training.DEFAULT_RUN
    loaded = training.load_run(None)
    assert all(torch.equal(v, trained_model.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert models.load("digits-cnn", epoch=0).conv1.out_channels == 16


def test_unknown_run_and_out_of_range_settings_are_refused(other_run):
    with pytest.raises(ValueError, match="no completed training run"):
        training.run_checkpoints("e99-lr1-w1-s0")
    with pytest.raises(ValueError, match="width must be between"):
        training.train_run(epochs=1, width=100)
    with pytest.raises(ValueError, match="epochs must be between"):
        training.run_name(epochs=0, lr=1e-3, width=1, seed=0)


def test_cancelled_training_leaves_no_run(trained_model):
    calls = []

    def cancel_soon(fraction, text):
        calls.append(fraction)
        if len(calls) > 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        training.train_run(epochs=3, lr=1e-3, width=0.25, seed=2, progress=cancel_soon)
    name = training.run_name(epochs=3, lr=1e-3, width=0.25, seed=2)
    assert name not in {r.name for r in training.runs()}
    assert not any(p.name.startswith(f".{name}.partial") for p in training.runs_dir().iterdir())


def test_train_job_returns_the_run_and_its_accuracies(other_run):
    result = run(Source(), "evolution.train", OTHER)
    assert result["run"] == other_run
    assert result["settings"] == OTHER
    assert len(result["test_accuracy"]) == 3
    listed = run(Source(), "evolution.runs", {})["runs"]
    assert [r["name"] for r in listed][0] == training.DEFAULT_RUN
    assert other_run in [r["name"] for r in listed]


def test_the_command_line_trains_a_run_the_view_lists(cache_root, capsys):
    import subprocess
    import sys

    from compute import train

    # In a fresh interpreter, as a user types it; the run lands in the shared cache, where the view lists it.
    command = [sys.executable, "-m", "compute.train", "--epochs", "2", "--lr", "0.003", "--width", "0.5",
               "--seed", "3", "--cache-dir", str(cache_root)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=training.Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert "run e2-lr0.003-w0.5-s3: 3 checkpoints" in done.stdout
    listed = {r.name: r for r in training.runs()}["e2-lr0.003-w0.5-s3"]
    assert listed.settings == {"epochs": 2, "lr": 0.003, "width": 0.5, "seed": 3}
    assert len(listed.test_accuracy) == 3 and listed.test_accuracy[2] > 0.5 > listed.test_accuracy[0]
    assert train.main(["--list"]) == 0 and "e2-lr0.003-w0.5-s3" in capsys.readouterr().out
    assert train.main(["--epochs", "0"]) == 2 and "epochs must be between" in capsys.readouterr().err
