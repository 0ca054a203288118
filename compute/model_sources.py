"""Models from outside the project: a torchvision classifier by name (with weights from the local torch hub cache,
random weights, or a state-dict checkpoint), an importable ``module:function`` that builds one, a TorchScript file.

Nothing is ever downloaded: torchvision's weights are read from ``torch.hub.get_dir()/checkpoints/<file name of
weights.url>`` with ``torch.load(weights_only=True)``; when the file is absent the error names the file, the folder
and the address to fetch it from by hand. :func:`preprocessing` tells the data loader which sizes the weights were
trained at (``weights.transforms()``), without loading anything.
"""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from compute.data import Preprocessing
from compute.errors import ModelError
from compute.state_dicts import load_state, read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_INPUT_SHAPE = (3, 224, 224)
DEFAULT_SIZE = 224
TORCHSCRIPT_SUFFIXES = frozenset({".pt", ".pth", ".ts", ".jit", ".torchscript", ".ptl"})
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # package.module:function


def _error(message: str) -> Exception:

    return ModelError(message)


def is_factory(name: str) -> bool:
    """``package.module:function`` (and not a file on disk)."""
    return bool(_FACTORY.match(name)) and not Path(name).exists()


def is_torchscript(name: str) -> bool:
    path = Path(name).expanduser()
    return path.is_file() or (path.suffix.lower() in TORCHSCRIPT_SUFFIXES and ("/" in name or os.sep in name))


def is_torchvision(name: str) -> bool:
    import torchvision

    return name in torchvision.models.list_models(module=torchvision.models)


def weights_enum(name: str, weights: str | None):
    """The torchvision weights enum member that ``weights`` names for model ``name`` (None: random or a checkpoint).

    ``weights``: ``DEFAULT``, a member (``IMAGENET1K_V1``) or ``Class.member`` (``ResNet18_Weights.IMAGENET1K_V1``).
    """
    if weights in (None, "", "random", "none"):
        return None
    import torchvision

    enum = torchvision.models.get_model_weights(name)
    members = [member.name for member in enum]
    class_name, _, member = weights.rpartition(".")
    if class_name and class_name != enum.__name__:
        raise _error(f"weights {weights} are not for {name}: use DEFAULT or {', '.join(f'{enum.__name__}.{m}' for m in members)}")
    if member == "DEFAULT":
        return enum.DEFAULT
    if member not in members:
        raise _error(f"{name} has no weights {weights!r}; choose DEFAULT, random or one of: "
                     f"{', '.join(f'{enum.__name__}.{m}' for m in members)}")
    return enum[member]


def weights_file(weights) -> Path:
    """Where torch's hub cache keeps the file of a weights enum member (whether or not it is there)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def preprocessing(name: str, weights: str | None = None, size: int | None = None,
                  resize: int | None = None) -> Preprocessing | None:
    """The preprocessing for ``name``'s data: the options when given, else the sizes of the named weights'
    ``transforms()``, else of the architecture's DEFAULT weights (a torchvision model with random weights or a
    checkpoint was most likely trained at those), else None (other models: the data as they are).
    Reads metadata only: no weights file is needed."""
    size_from_weights = resize_from_weights = channels = None
    if not is_factory(name) and not is_torchscript(name) and is_torchvision(name):
        import torchvision

        channels = 3
        enum = weights_enum(name, weights) or torchvision.models.get_model_weights(name).DEFAULT
        transforms = enum.transforms()
        crop, resized = getattr(transforms, "crop_size", None), getattr(transforms, "resize_size", None)
        size_from_weights = int(crop[0]) if crop else None
        resize_from_weights = int(resized[0]) if resized else None
    chosen_size = size or size_from_weights
    chosen_resize = resize or (resize_from_weights if not size else None) or chosen_size
    if chosen_size is None and channels is None:
        return None
    return Preprocessing(size=chosen_size, resize=chosen_resize, channels=channels)


def _normalised(model: nn.Module, mean, std) -> nn.Module:
    mean_tensor = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_tensor = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    # The data stay in [0, 1]; normalisation is part of the model so attributions are in pixel space.
    model.register_forward_pre_hook(
        lambda _m, args: ((args[0] - mean_tensor.to(args[0].device)) / std_tensor.to(args[0].device),))
    return model


def _read_cached_weights(weights) -> dict[str, torch.Tensor]:
    """The state dict of a weights enum member from the hub cache, weights_only; never downloads."""

    path = weights_file(weights)
    if not path.is_file():
        raise _error(f"the weights {type(weights).__name__}.{weights.name} are not on this machine: put the file "
                     f"{path.name} in the folder {path.parent} (download it yourself from {weights.url}); "
                     f"nothing is downloaded, or use --weights random")
    return read_state_dict(path)


def torchvision_model(name: str, weights: str | None = None, checkpoint: str | None = None,
                      num_classes: int | None = None) -> nn.Module:
    """A torchvision classifier: ``weights`` (DEFAULT / an enum name) from the hub cache (``categories``: the
    weights' class names), ``"random"`` (initialised from seed 0, with ``num_classes`` outputs, default 1000:
    the data's class count, so predictions name its classes), or a state dict ``checkpoint`` (its last linear
    layer sets the class count)."""
    import torchvision
    from torchvision.models._api import WeightsEnum


    if checkpoint is not None and weights not in (None, "", "random", "none"):
        raise _error(f"give either --checkpoint or --weights {weights}, not both")
    if checkpoint is None and weights in (None, ""):
        enum_name = torchvision.models.get_model_weights(name).__name__
        raise _error(f"{name} needs --checkpoint FILE or --weights (DEFAULT, {enum_name}.<name> from the torch hub "
                     f"cache, or random): weights are never downloaded")
    enum = weights_enum(name, weights)
    if enum is not None:
        state = _read_cached_weights(enum)
        # torchvision's builder sets what the weights need (class count, inception's transform_input, densenet's
        # key names); its own loading would download a missing file and unpickle with weights_only=False, so it is
        # handed the state dict read above instead.
        original = WeightsEnum.get_state_dict
        WeightsEnum.get_state_dict = lambda self, *args, **kwargs: state if self is enum else original(self, *args, **kwargs)
        try:
            model = torchvision.models.get_model(name, weights=enum)
        except RuntimeError as error:
            raise _error(f"{weights_file(enum)} does not match {name}: {str(error).splitlines()[0][:200]}") from None
        finally:
            WeightsEnum.get_state_dict = original
        model.categories = list(enum.meta.get("categories") or [])
        transforms = enum.transforms()
        mean, std = getattr(transforms, "mean", IMAGENET_MEAN), getattr(transforms, "std", IMAGENET_STD)
        crop = getattr(transforms, "crop_size", None)
        model.input_shape = (3, int(crop[0]), int(crop[0])) if crop else TORCHVISION_INPUT_SHAPE
    elif checkpoint is None:  # --weights random: a quick look at the architecture
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes or 1000)
        mean, std, model.input_shape = IMAGENET_MEAN, IMAGENET_STD, TORCHVISION_INPUT_SHAPE
    else:
        state = read_state_dict(checkpoint)
        linear_weights = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
        num_classes = int(linear_weights[-1].shape[0]) if linear_weights else 1000
        try:
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        except (TypeError, ValueError) as error:
            raise _error(f"cannot build {name}: {error}") from error
        load_state(model, state, Path(checkpoint).name)
        mean, std, model.input_shape = IMAGENET_MEAN, IMAGENET_STD, TORCHVISION_INPUT_SHAPE
    model.torchvision_name = name  # what fresh_copy rebuilds
    return _normalised(model, mean, std)


def factory_model(spec: str, checkpoint: str | None = None) -> nn.Module:
    """``package.module:function``: the function called with no arguments must return an nn.Module; a state-dict
    ``checkpoint`` is then loaded into it. The model takes images in [0, 1] (normalising is its own business)."""

    module_name, function_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise _error(f"cannot import {module_name} for --model {spec}: {error}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise _error(f"{module_name} has no function {function_name!r} (--model {spec})")
    model = function()
    if not isinstance(model, nn.Module):
        raise _error(f"{spec}() returned a {type(model).__name__}, not a torch.nn.Module")
    if checkpoint is not None:
        load_state(model, read_state_dict(checkpoint), Path(checkpoint).name)
    return model


class TorchScriptModel(nn.Module):
    """A TorchScript model as a module the layer tools can hook.

    ScriptModules accept no hooks, so the scripted network is hidden from :meth:`named_modules` (the layer listing
    hooks every module it lists) and only its output is a layer, ``logits``: the scatter, predictions and input
    attributions work; inner layers of a TorchScript file cannot be read. Parameters and buffers stay visible, so
    the device, ``.to()`` and the cache fingerprint see the weights.
    """

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        self.scripted = scripted
        self.logits = nn.Identity()
        # Listing layers runs one zero input; the first conv weight (out, in, kh, kw) says how many channels.
        conv = next((p for p in scripted.parameters() if p.ndim == 4), None)
        if conv is not None:
            self.input_shape = (int(conv.shape[1]), 32, 32)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(self.scripted(images))

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        yield prefix, self
        yield (f"{prefix}." if prefix else "") + "logits", self.logits

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self.scripted.named_parameters(prefix=(f"{prefix}." if prefix else "") + "scripted", recurse=recurse)

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self.scripted.named_buffers(prefix=(f"{prefix}." if prefix else "") + "scripted", recurse=recurse)


def torchscript_model(path: str) -> nn.Module:
    """A TorchScript file (``torch.jit.save``), loaded on the CPU. TorchScript runs its own compiled code, not
    arbitrary Python: this is the format for a model whose source is not at hand."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise _error(f"TorchScript file {file} does not exist")
    try:
        scripted = torch.jit.load(str(file), map_location="cpu")
    except Exception as error:  # a state dict, a damaged zip, another format: all mean the same to the user
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise _error(f"{file.name} is not a TorchScript file (save one with torch.jit.save; for a state dict give "
                     f"--model ARCHITECTURE --checkpoint {file.name}): {reason}") from None
    return TorchScriptModel(scripted)
