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
        (("--device", "cuda:7"), ["cuda"]),
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
