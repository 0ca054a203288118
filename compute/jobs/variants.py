"""Images derived from a data-set image, by name: a selection may name one (``{"kind": name, **params}``), and every
panel then opens for it as for the image itself (an adversarial example, an upload).

``VARIANTS[name](workspace, index, progress=None, **params) -> (C, H, W)``; :func:`image` picks the one a selection
names. The table is complete on import; a second entry under one name is refused.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from compute.errors import UserError
from compute.jobs import adversarial, uploads
from compute.jobs.workspace import Workspace
from compute.progress import Progress

Variant = Callable[..., torch.Tensor]


def _table(*entries: tuple[str, Variant]) -> dict[str, Variant]:
    table: dict[str, Variant] = {}
    for name, function in entries:
        if name in table:
            raise ValueError(f"image variant {name!r} is registered twice")
        table[name] = function
    return table


VARIANTS: dict[str, Variant] = _table(
    ("adversarial", adversarial.adversarial_image),
    ("upload", uploads.upload_image),
)


def image(workspace: Workspace, index: Any, variant: dict | None = None,
          progress: Progress | None = None) -> torch.Tensor:
    """Data-set image ``index`` (C, H, W), or with ``variant`` that image transformed by the variant it names."""
    if not variant:
        return workspace.image(index)
    params = dict(variant)
    kind = params.pop("kind", None)
    if kind not in VARIANTS:
        raise UserError(f"unknown image variant {kind!r}; known: {', '.join(sorted(VARIANTS))}")
    return VARIANTS[kind](workspace, int(index), progress=progress, **params)


def true_label(dataset, index: int, variant: dict | None) -> int | None:
    """The image's true class: the data set's for its images and images derived from them (an adversarial image
    keeps its original's class); None for an uploaded image, which has none."""
    if (variant or {}).get("kind") == "upload" or not 0 <= index < len(dataset):
        return None
    return int(dataset.labels[index])


def plain(value: Any) -> Any:
    """Tensors (in dicts and lists too) as numpy arrays for the trip to the server; the rest as it is."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    return value
