"""The one memoize decorator over diskcache, and fingerprints of models, tensors and data.

A cache key is: CACHE_VERSION + the function's qualified name + a fingerprint of every argument
(model weights, tensors by content, data sets by their own fingerprint, plain values by repr).
The same request twice computes once; a changed weight changes the model fingerprint and misses.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import os
import weakref
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch

CACHE_VERSION = "1"
CACHE_DIR_ENV = "FEATURESCOPE_CACHE_DIR"
CACHE_SIZE_LIMIT = 4 * 1024**3
# Arguments that change how a result is computed but not the result itself (tests show it).
IGNORED_ARGUMENTS = frozenset({"progress", "batch_size"})

_MISSING = object()
_model_fingerprints: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, str]]" = weakref.WeakKeyDictionary()
_open_caches: dict[tuple[int, str], Any] = {}

F = TypeVar("F", bound=Callable[..., Any])


def cache_dir() -> Path:
    """The cache directory: $FEATURESCOPE_CACHE_DIR, else ~/.cache/featurescope."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "featurescope"


def set_cache_dir(directory: str | os.PathLike) -> Path:
    """Point this process and the processes it starts at ``directory`` (created if missing)."""
    path = Path(directory).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_DIR_ENV] = str(path)
    return path


def get_cache():
    """The diskcache.Cache of the configured directory, one per process (sqlite connections must not cross a fork)."""
    import diskcache

    directory = cache_dir() / "results"
    key = (os.getpid(), str(directory))
    cache = _open_caches.get(key)
    if cache is None:
        directory.mkdir(parents=True, exist_ok=True)
        cache = diskcache.Cache(str(directory), size_limit=CACHE_SIZE_LIMIT)
        _open_caches[key] = cache
    return cache


def _digest(*chunks: bytes) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


def tensor_fingerprint(tensor: torch.Tensor) -> str:
    """Content hash of a tensor (shape, dtype and values)."""
    data = tensor.detach().to("cpu").contiguous()
    header = f"{tuple(data.shape)}|{data.dtype}".encode()
    # reshape: a 0-dim tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes directly.
    return _digest(header, data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")


def array_fingerprint(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return _digest(f"{array.shape}|{array.dtype}".encode(), array.tobytes())


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hash of the model's architecture (its printed module tree), its train/eval mode and every parameter and buffer.

    Remembered per model object while no tensor has been written to: in-place writes (an optimizer
    step, load_state_dict, ``with torch.no_grad(): p.add_(1)``) bump a tensor's version counter and so
    invalidate the remembered value. Writes through ``p.data`` bypass that counter: call
    ``forget_model(model)`` after them.
    """
    state = model.state_dict(keep_vars=True)
    versions = (model.training, tuple((name, t.data_ptr(), t._version) for name, t in state.items()))
    remembered = _model_fingerprints.get(model)
    if remembered is not None and remembered[0] == versions:
        return remembered[1]
    chunks = [type(model).__qualname__.encode(), repr(model).encode(), str(model.training).encode()]
    for name, tensor in state.items():
        chunks.append(name.encode())
        chunks.append(tensor_fingerprint(tensor).encode())
    value = _digest(*chunks)
    _model_fingerprints[model] = (versions, value)
    return value


def forget_model(model: torch.nn.Module) -> None:
    """Drop the remembered fingerprint of ``model`` (after writes the version counter cannot see)."""
    _model_fingerprints.pop(model, None)


def fingerprint(value: Any) -> str:
    """A stable string standing for ``value`` in a cache key."""
    if isinstance(value, torch.nn.Module):
        return "model:" + model_fingerprint(value)
    if isinstance(value, torch.Tensor):
        return "tensor:" + tensor_fingerprint(value)
    if isinstance(value, np.ndarray):
        return "array:" + array_fingerprint(value)
    own = getattr(value, "fingerprint", None)
    if isinstance(own, str) and own:
        return "data:" + own
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(fingerprint(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{fingerprint(v)}" for k, v in sorted(value.items())) + "}"
    if value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)
    raise TypeError(f"cannot fingerprint a {type(value).__name__} for the cache key")


def cache_key(function: Callable, arguments: dict[str, Any]) -> str:
    parts = [CACHE_VERSION, function.__module__, function.__qualname__]
    parts += [f"{name}={fingerprint(value)}" for name, value in arguments.items() if name not in IGNORED_ARGUMENTS]
    return _digest("\n".join(parts).encode())


def memoize(function: F) -> F:
    """Cache ``function``'s results on disk, keyed by fingerprints of all its arguments (defaults applied).

    ``wrapper.uncached`` is the plain function; ``wrapper.key(...)`` the key a call would use.
    Results should be CPU tensors, numpy arrays or plain values.
    """
    signature = inspect.signature(function)

    def bound_arguments(args, kwargs) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        key = cache_key(function, bound_arguments(args, kwargs))
        cache = get_cache()
        value = cache.get(key, default=_MISSING)
        if value is not _MISSING:
            return value
        value = function(*args, **kwargs)
        cache.set(key, value)
        return value

    wrapper.uncached = function  # type: ignore[attr-defined]
    wrapper.key = lambda *args, **kwargs: cache_key(function, bound_arguments(args, kwargs))  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
