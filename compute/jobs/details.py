"""The clicked image's detail panels: its class probabilities and one layer's output with its sparsity."""
from __future__ import annotations

import torch

from compute import activations, channels
from compute.jobs import variants
from compute.jobs.workspace import Workspace


def details(workspace: Workspace, progress, index: int, layer: str, variant: dict | None = None,
            epoch: int | None = None) -> dict:
    """One image (``variant``: derived from it), its class probabilities and the output of ``layer`` for it, with the
    layer's sparsity; ``epoch``: by the model saved at that epoch of training instead of the final one."""
    dataset = workspace.dataset
    image = variants.image(workspace, index, variant, progress)
    with workspace.lock:
        outputs = activations.single(workspace.model(epoch, progress=progress), image, [layer])
    layer_output = outputs[layer]
    stats = channels.sparsity(layer_output)
    return {
        "index": int(index),
        "image": image.numpy(),
        "probabilities": torch.softmax(outputs["__logits__"].flatten(), 0).numpy(),
        "label": (label := variants.true_label(dataset, index, variant)),
        "test_split": None if label is None else bool(dataset.is_test[index]),
        "layer_output": layer_output.numpy(),
        "zero_fraction": stats.zero_fraction,
        "nonpositive_fraction": stats.nonpositive_fraction,
        "silent_channels": stats.silent_channels,
    }


JOBS = {"details.panels": details}
