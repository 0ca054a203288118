"""The one memoize decorator over diskcache, and fingerprints of models, tensors and data.

A cache key is: CACHE_VERSION + the function's qualified name + the version of its code + a fingerprint of every
argument (model weights, tensors by content, data sets by their own fingerprint, plain values by repr).
The code version hashes the source of the function and of every function, class and constant it reaches inside
the ``compute`` package (as joblib.Memory hashes a function's source), so a changed algorithm misses without
anyone bumping a number. The same request twice computes once; a changed weight or a changed algorithm misses.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import os
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from compute.paths import CACHE_DIR_ENV, cache_dir, set_cache_dir  # noqa: F401  (part of this module's API)

CACHE_VERSION = "1"
CACHE_SIZE_LIMIT = 4 * 1024**3
# Arguments that change how a result is computed but not the result itself (tests show it).
IGNORED_ARGUMENTS = frozenset({"progress", "batch_size"})

_MISSING = object()
_model_fingerprints: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, str]]" = weakref.WeakKeyDictionary()
_open_caches: dict[tuple[int, str], Any] = {}


class _Flight:
    """The lock of one key being computed (weakly held: it goes when no thread computes or waits for the key)."""

    __slots__ = ("lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()


_flights: "weakref.WeakValueDictionary[str, _Flight]" = weakref.WeakValueDictionary()
_flights_guard = threading.Lock()
# Entered while this thread waits for a key another thread is computing. The compute process's jobs layer sets it
# (compute.jobs.lanes): a click waiting for a result must not count as running, or the long job computing that
# very result would pause for the click, which waits for it.
waiting_for_another: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

F = TypeVar("F", bound=Callable[..., Any])


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


# ---------------------------------------------------------------------------------------------- code versions

_PLAIN = (str, int, float, bool, type(None))


def _in_scope(value: Any, home: str) -> bool:
    """Code of the compute package, or of the memoized function's own module (a notebook's or a test's)."""
    module = getattr(value, "__module__", None) or ""
    return module == home or module == "compute" or module.startswith("compute.")


def _code_names(code) -> set[str]:
    """Every global and attribute name a code object and its nested functions (lambdas, closures) use."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if inspect.iscode(constant):
            names |= _code_names(constant)
    return names


def _referenced(function) -> list[tuple[str, Any]]:
    """(name, value) of the globals, module attributes, closure cells and defaults ``function`` uses."""
    names = _code_names(function.__code__)
    namespace = function.__globals__
    found = [(name, namespace[name]) for name in sorted(names) if name in namespace]
    for _name, value in list(found):
        if inspect.ismodule(value) and _in_scope(value, ""):
            found += [(f"{value.__name__}.{n}", getattr(value, n)) for n in sorted(names) if hasattr(value, n)]
    for name, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
        try:
            found.append((name, cell.cell_contents))
        except ValueError:  # a cell not filled yet
            pass
    found += [("default", value) for value in (function.__defaults__ or ())]
    found += [("default", value) for value in (function.__kwdefaults__ or {}).values()]
    return found


def _source(value: Any) -> str:
    try:
        return inspect.getsource(value)
    except (OSError, TypeError):  # built in a REPL, say: the compiled code stands in for the text
        code = getattr(value, "__code__", None)
        return repr(code.co_code) + repr(code.co_names) if code is not None else repr(value)


def _class_outline(cls: type) -> str:
    """A class without its source text: its bases, its dataclass fields and its attribute names.

    inspect.getsource of a class runs ast.parse, which is not thread-safe on Python 3.11 (seen in the compute
    process, whose jobs run on threads: "SystemError: AST constructor recursion depth mismatch"). A function's
    source is read without the ast module, and every method and constant of the class is hashed on its own.
    """
    bases = ", ".join(f"{base.__module__}.{base.__qualname__}" for base in cls.__bases__)
    fields = [(f.name, str(f.type), _field_default(f)) for f in dataclasses.fields(cls)] \
        if dataclasses.is_dataclass(cls) else []
    # Dunder names are left out: Python adds some at run time (pickling an instance adds ``__slotnames__``), which
    # changed the version once a result had been stored. Dunder methods written in the class are hashed anyway.
    attributes = sorted(name for name in vars(cls) if not (name.startswith("__") and name.endswith("__")))
    return f"({bases}) fields={fields} attributes={attributes}"


def _field_default(field: dataclasses.Field) -> str:
    """A dataclass field's default as text that is the same in every process: ``repr(dataclasses.MISSING)`` holds a
    memory address, which made every key through such a class new in each process (no cache hit after a restart,
    and the compute process never found what another process had stored)."""
    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    if field.default_factory is not dataclasses.MISSING:
        factory = field.default_factory
        return f"factory {getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', repr(factory))}"
    return "required"


# One walk at a time: the walk reads sources and caches them; parallel jobs would only repeat the work.
_source_lock = threading.Lock()


def code_version(function: Callable) -> str:
    with _source_lock:
        return _code_version(function)


def _code_version(function: Callable) -> str:
    """Hash of the source of ``function`` and of the functions, classes and plain constants it reaches, directly
    or through others, in the compute package or its own module: globals, ``module.attribute`` uses, closures,
    defaults, and the entries of tables (dicts, tuples, dataclasses such as ``METHODS``'s Method specs)."""
    home = getattr(function, "__module__", "") or ""
    pieces: set[str] = set()
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", function)]
    while stack:
        name, value = stack.pop()
        value = getattr(value, "uncached", value)  # another memoized function: its plain body
        if isinstance(value, functools.partial):
            value = value.func
        if isinstance(value, (staticmethod, classmethod)) or inspect.ismethod(value):
            value = value.__func__
        if isinstance(value, _PLAIN):
            if name:
                pieces.add(f"constant {name} = {value!r}")
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        if inspect.isfunction(value):
            # Dataclass-made methods (compiled from "<string>") are covered by their class's source.
            generated = value.__code__.co_filename.startswith("<") and value is not function
            if _in_scope(value, home) and not generated:
                pieces.add(f"function {value.__module__}.{value.__qualname__}\n{_source(value)}")
                stack += _referenced(value)
        elif inspect.isclass(value):
            if _in_scope(value, home):
                pieces.add(f"class {value.__module__}.{value.__qualname__}{_class_outline(value)}")
                stack += list(vars(value).items())
        elif isinstance(value, dict):
            stack += [(f"{name}[{key!r}]", item) for key, item in value.items() if isinstance(key, _PLAIN)]
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack += [(f"{name}[]", item) for item in value]
        elif dataclasses.is_dataclass(value) and _in_scope(type(value), home):
            stack.append(("", type(value)))
            stack += [(f"{name}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value)]
            # A table entry that names its function by import path (compute.specs): follow it to the function.
            references = getattr(value, "code_references", None)
            if callable(references):
                stack += [("", function) for function in references()]
    return _digest("\n".join(sorted(pieces)).encode())


def cache_key(function: Callable, arguments: dict[str, Any], version: str = "") -> str:
    parts = [CACHE_VERSION, function.__module__, function.__qualname__, version or code_version(function)]
    parts += [f"{name}={fingerprint(value)}" for name, value in arguments.items() if name not in IGNORED_ARGUMENTS]
    return _digest("\n".join(parts).encode())


def memoize(function: F) -> F:
    """Cache ``function``'s results on disk, keyed by fingerprints of all its arguments (defaults applied) and by
    :func:`code_version` (computed once per process, on the first call).

    One computation per key at a time in a process: a second job that needs the same result while it is being
    computed (the scatter and the neighbours both need a new layer's features) waits for it instead of computing
    it again beside it; if the first one fails or is cancelled, the waiting one computes it itself.

    ``wrapper.uncached`` is the plain function; ``wrapper.key(...)`` the key a call would use.
    Results should be CPU tensors, numpy arrays or plain values.
    """
    signature = inspect.signature(function)
    versions: list[str] = []  # the code version, computed on the first call (importing stays cheap)

    def key_of(args, kwargs) -> str:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if not versions:
            versions.append(code_version(function))
        return cache_key(function, dict(bound.arguments), versions[0])

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        key = key_of(args, kwargs)
        cache = get_cache()
        value = cache.get(key, default=_MISSING)
        if value is not _MISSING:
            return value
        with _flights_guard:
            flight = _flights.get(key)
            if flight is None:
                flight = _flights[key] = _Flight()
        if not flight.lock.acquire(blocking=False):
            with waiting_for_another():
                flight.lock.acquire()
        try:
            value = cache.get(key, default=_MISSING)  # computed meanwhile by the job this one waited for
            if value is _MISSING:
                value = function(*args, **kwargs)
                cache.set(key, value)
        finally:
            flight.lock.release()
        return value

    wrapper.uncached = function  # type: ignore[attr-defined]
    wrapper.key = lambda *args, **kwargs: key_of(args, kwargs)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
