"""Reading a state dict from a checkpoint file safely, and loading it into a model with a readable mismatch."""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from compute.errors import ModelError

MAX_CHECKPOINT_BYTES = 2 * 1024**3


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` with readable errors for missing, huge or foreign files."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise ModelError(f"checkpoint {path.name} is larger than {MAX_CHECKPOINT_BYTES // 1024**3} GB")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights-only refusals all mean: not a usable checkpoint
        # from None: torch's own text advises weights_only=False, i.e. running code from the file; never repeat it.
        raise ModelError(f"{path.name} is not a usable checkpoint: {_load_failure(error)}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path.name} holds no state_dict (a dict of tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_failure(error: Exception) -> str:
    """Why torch.load refused a file, in one line, without torch's advice to load it unsafely."""
    text = str(error)
    unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsupported:
        return f"it holds Python objects ({unsupported.group(1)}), not only tensors; save model.state_dict() instead"
    if "central directory" in text or "zip archive" in text or isinstance(error, EOFError):
        return "the file is truncated or damaged (not a complete PyTorch zip archive)"
    if "Unsupported operand" in text or "invalid load key" in text or type(error).__name__ == "UnpicklingError":
        return "its contents are not a PyTorch checkpoint"
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.replace("\n", " ")) if s.strip()]
    kept = [s for s in sentences if "weights_only" not in s and "trust" not in s]
    return (kept[0] if kept else type(error).__name__)[:200]


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load ``state`` into ``model``; a mismatch raises ModelError listing what differs."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong_shape:
        details = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                details.append(f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
        raise ModelError(f"{source} does not match {type(model).__name__} ({'; '.join(details)})")
    model.load_state_dict(state)
    return model
