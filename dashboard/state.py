"""The read-only, per-process registry of loaded models and data sets, keyed by the start-up config.

Loading happens on first use (never at import), so the server starts at once and a background callback
can show the training progress of the built-in model.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch

from compute import activations, data, models
from compute.device import pick_device
from dashboard.config import AppConfig

Progress = Callable[[float, str], None]
USER_ERRORS = (data.DataError, models.ModelError, activations.LayerError, ValueError, IndexError, KeyError)


@functools.lru_cache(maxsize=4)
def dataset(config: AppConfig) -> data.Dataset:
    return data.load(config.data)


@functools.lru_cache(maxsize=4)
def device(config: AppConfig) -> torch.device:
    return pick_device(config.device)


def _load(config: AppConfig, epoch: int | None, progress: Progress | None) -> torch.nn.Module:
    return models.load(config.model, epoch=epoch, checkpoint=config.checkpoint, device=device(config), progress=progress)


_loaded: dict[tuple, torch.nn.Module] = {}


def model(config: AppConfig, epoch: int | None = None, progress: Progress | None = None) -> torch.nn.Module:
    """The model (trained on first use for the built-in one); one instance per config and epoch per process."""
    key = (config, epoch)
    if key not in _loaded:
        _loaded[key] = _load(config, epoch, progress)
    return _loaded[key]


def untrained_model(config: AppConfig) -> torch.nn.Module:
    """The model before training: epoch 0 for built-in models, else the same architecture freshly initialised."""
    if config.model in models.MODELS and config.checkpoint is None:
        return model(config, epoch=0)
    key = (config, "random")
    if key not in _loaded:
        torch.manual_seed(0)
        trained = model(config)
        fresh = type(trained)() if config.model in models.MODELS else _fresh_torchvision(config.model, trained)
        _loaded[key] = fresh.to(device(config)).eval()
    return _loaded[key]


def _fresh_torchvision(name: str, trained: torch.nn.Module) -> torch.nn.Module:
    import torchvision

    num_classes = [m for m in trained.modules() if isinstance(m, torch.nn.Linear)][-1].out_features
    fresh = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    for hook in trained._forward_pre_hooks.values():
        fresh.register_forward_pre_hook(hook)
    return fresh


@functools.lru_cache(maxsize=4)
def architecture(config: AppConfig) -> torch.nn.Module:
    """The model's architecture without training (for the built-in one) — enough to list layers and check shapes."""
    if config.model in models.MODELS and config.checkpoint is None:
        return models.build(config.model)
    return model(config)  # loading checks the checkpoint against the architecture


@functools.lru_cache(maxsize=4)
def layer_names(config: AppConfig) -> tuple[str, ...]:
    return tuple(activations.layers(architecture(config)))


def default_layer(config: AppConfig) -> str:
    if config.layer:
        return config.layer
    spec = models.MODELS.get(config.model)
    if spec and spec.default_layer:
        return spec.default_layer
    names = layer_names(config)
    return "avgpool" if "avgpool" in names else names[-2]


@functools.lru_cache(maxsize=4)
def conv_layers(config: AppConfig) -> tuple[str, ...]:
    return tuple(name for name, m in architecture(config).named_modules() if isinstance(m, torch.nn.Conv2d))


def validate(config: AppConfig) -> None:
    """Fail fast, before the server starts, on a wrong data set, model, checkpoint or layer name.

    Raises one of USER_ERRORS with a one-line message that names the valid choices.
    """
    device(config)
    dataset_ = dataset(config)
    net = architecture(config)
    if config.layer:
        activations.module(net, config.layer)
    sample = dataset_.images[:1].to(next(net.parameters()).device)
    try:
        with torch.no_grad():
            logits = net(sample)
    except RuntimeError as error:
        raise models.ModelError(
            f"model {config.model} cannot read the images of {config.data} (shape {tuple(sample.shape[1:])}): "
            f"{str(error).splitlines()[0]}"
        ) from error
    if logits.shape[-1] < len(dataset_.classes):
        raise models.ModelError(
            f"model {config.model} predicts {logits.shape[-1]} classes but {config.data} has {len(dataset_.classes)}"
        )


@functools.lru_cache(maxsize=64)
def layer_output_shape(config: AppConfig, layer: str) -> tuple[int, ...]:
    """Shape of ``layer``'s output for one image (batch dimension dropped)."""
    net = architecture(config)
    sample = dataset(config).images[:1].to(next(net.parameters()).device)
    with torch.no_grad():
        return tuple(activations.run_until(net, sample, layer).shape[1:])
