"""The command line: help lists the options, bad input gives one clear line and exit code 2, never a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dashboard", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_every_option():
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--model", "--data", "--layer", "--host", "--port", "--device", "--cache-dir", "--debug",
                   "--checkpoint", "--embedding"):
        assert option in result.stdout
    assert "127.0.0.1" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--layer", "conv9"), ["unknown layer 'conv9'", "conv1", "relu2", "logits"]),
        (("--data", "imagenet"), ["unknown data set 'imagenet'", "digits"]),
        (("--model", "vgg99"), ["unknown model 'vgg99'", "digits-cnn"]),
        (("--model", "resnet18"), ["needs --checkpoint", "never downloaded"]),
        (("--device", "cuda:7"), ["cuda:7"]),
    ],
)
def test_bad_input_gives_one_line_naming_the_valid_choices(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    assert message.startswith("featurescope: error:")
    for text in expected:
        assert text in message


def test_a_checkpoint_that_does_not_match_is_refused(tmp_path):
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(3, 3)}, wrong)
    result = run_cli("--checkpoint", str(wrong))
    assert result.returncode == 2
    assert "does not match DigitsCNN" in result.stderr and "missing" in result.stderr


def test_a_corrupt_checkpoint_is_refused(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    result = run_cli("--checkpoint", str(corrupt))
    assert result.returncode == 2
    assert "corrupt.pt is not a usable checkpoint" in result.stderr
    assert "weights_only=False" not in result.stderr  # torch's advice would be unsafe for an unknown file


def test_images_the_model_cannot_read_are_refused(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos" / "cats"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    result = run_cli("--data", str(tmp_path / "photos"))
    assert result.returncode == 2
    assert "cannot read the images" in result.stderr


def test_a_busy_port_gives_one_line_before_anything_else():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("--port", str(port), timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""  # nothing is printed before the refusal
    assert result.stderr.strip() == f"featurescope: error: 127.0.0.1:{port} is already in use; choose another with --port"


@pytest.mark.parametrize("port", ["0", "70000"])
def test_an_invalid_port_gives_one_line(port):
    result = run_cli("--port", port, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not a valid port" in result.stderr


def test_help_lists_the_researcher_options():
    result = run_cli("--help")
    for option in ("--weights", "--download", "--image-size", "--resize", "cifar10", "mnist", "fashion-mnist",
                   "module:function", "TorchScript"):
        assert option in result.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (("--image-size", "0"), "--image-size 0 is not a size in pixels"),
    (("--image-size", "64", "--resize", "32"), "--resize 32 is smaller than --image-size 64"),
])
def test_bad_sizes_give_one_line_before_anything_starts(args, expected):
    result = run_cli(*args, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"featurescope: error: {expected}")


@pytest.mark.parametrize(("args", "expected"), [
    (("--model", "resnet18", "--weights", "DEFAULT"), ["resnet18-f37072fd.pth", "{hub}/checkpoints", "nothing is downloaded"]),
    (("--model", "resnet18", "--weights", "ResNet50_Weights.IMAGENET1K_V2"), ["not for resnet18"]),
    (("--model", "resnet18", "--weights", "random", "--data", "cifar10:{tmp}"), ["{tmp}/cifar-10-batches-py", "--download"]),
    (("--model", "no_such_module_here:build"), ["cannot import no_such_module_here"]),
    (("--model", "{tmp}/missing.pt"), ["TorchScript file {tmp}/missing.pt does not exist"]),
])
def test_researcher_inputs_that_cannot_work_give_one_line(tmp_path, args, expected):
    import os

    hub = tmp_path / "torch" / "hub"
    args = [a.format(tmp=tmp_path, hub=hub) for a in args]
    result = subprocess.run([sys.executable, "-m", "dashboard", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    for text in expected:
        assert text.format(tmp=tmp_path, hub=hub) in message, message
