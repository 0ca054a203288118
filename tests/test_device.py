"""compute/device.py: the device a preference names, and how it is reported (the exact device, index included)."""
from __future__ import annotations

import pytest
import torch

from compute import device as devices
from compute.jobs.table import run
from compute.specs.source import Source


@pytest.fixture
def four_gpus(monkeypatch):
    """torch as it looks on a machine with four GPUs (names differ, so a test sees which one was asked about)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: f"GPU number {index}")


def test_an_indexed_cuda_device_is_reported_with_its_index_and_name(four_gpus):
    chosen = devices.pick_device("cuda:3")
    assert chosen == torch.device("cuda", 3)
    assert devices.device_name(chosen) == "cuda:3 (GPU number 3)"
    assert devices.device_name(devices.pick_device("cuda")) == "cuda:0 (GPU number 0)"
    assert devices.device_name(devices.pick_device("auto")) == "cuda:0 (GPU number 0)"
    with pytest.raises(ValueError, match="'cuda:4' does not exist: torch sees 4 GPU"):
        devices.pick_device("cuda:4")


def test_without_a_gpu_the_message_names_the_exact_device_asked_for(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda:3' was asked for, but torch sees no CUDA GPU"):
        devices.pick_device("cuda:3")
    assert devices.pick_device("auto") == torch.device("cpu")
    assert devices.device_name(torch.device("cpu")) == "cpu"


def test_the_describe_job_reports_the_device_by_name(trained_model):
    assert run(Source(device="cpu"), "describe", {})["device"] == "cpu"
