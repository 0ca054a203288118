"""Parameter specs shared by the method tables, so a UI can build controls from them.

Plain data, without torch: the web server builds its menus and controls from these tables, and a table names each
method's implementation by its import path (``"compute.gradients:saliency"``), imported on the first call in the
compute process (or a notebook), the way entry points name a function.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

_FALSE_WORDS = frozenset({"false", "0", "no", "off", ""})


def resolve(reference: str | Callable | None) -> Callable | None:
    """A callable from ``"package.module:attribute"`` (imported now), or the callable itself."""
    if reference is None or callable(reference):
        return reference
    module, _, attribute = reference.partition(":")
    value: Any = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


@dataclass(frozen=True)
class Param:
    """One tunable argument of a registered method.

    ``kind`` is one of ``int``, ``float``, ``choice``, ``layer`` (a layer name of the model) or ``bool``.
    ``low``/``high``/``step`` bound numbers; ``choices`` lists the options of a choice.
    """

    name: str
    kind: str
    default: Any
    label: str = ""
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()
    help: str = ""

    def coerce(self, value: Any) -> Any:
        """Turn a value from a form (string, None, out of range) into a valid value of this parameter."""
        if value is None or value == "":
            return self.default
        if self.kind == "int":
            value = int(round(float(value)))
        elif self.kind == "float":
            value = float(value)
        elif self.kind == "bool":
            # From a URL or a form a boolean arrives as text: "false" and "0" mean False, not a non-empty string.
            return value.strip().lower() not in _FALSE_WORDS if isinstance(value, str) else bool(value)
        elif self.kind == "choice":
            return value if value in self.choices else self.default
        else:
            return value
        if self.low is not None:
            value = max(value, type(value)(self.low))
        if self.high is not None:
            value = min(value, type(value)(self.high))
        return value


@dataclass(frozen=True)
class MapSpec:
    """One map an attribution method's ``explain`` returns: its key, a title, and how to scale its colours.

    scale: ``auto`` (the figure decides from the values), ``signed`` (diverging, centred on zero) or
    ``probability`` (0..1).
    """

    key: str
    title: str
    scale: str = "auto"

    def __post_init__(self) -> None:
        if self.scale not in ("auto", "signed", "probability"):
            raise ValueError(f"scale must be 'auto', 'signed' or 'probability', got {self.scale!r}")


@dataclass(frozen=True)
class Method:
    """A registered function with a human label and its parameter specs; calling it calls ``function``.

    ``implementation`` is the function or its import path (``"compute.gradients:saliency"``): the table stays plain
    data for the web server, and the function is imported on first use. ``suggest(image_shape)`` gives
    image-size-aware starting values for some parameters (None: the defaults suit any size; it must not need torch).
    ``explainer(model, image, target, **params)`` (a function or import path) returns the dict of maps and numbers
    that :meth:`explain` gives (None: ``{"map": function(...)}``); ``maps`` describes the tensors in that dict.
    ``planner(model, image, target, **params)`` (optional) gives the method as a ``compute.passes.Plan``, so several
    methods and models share batched passes (the sanity check); its result is what ``function`` returns (or, with
    an ``explainer``, what that returns).
    """

    implementation: str | Callable
    label: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    description: str = ""
    suggest: Callable[[tuple], dict] | None = None
    explainer: str | Callable[..., dict] | None = None
    maps: tuple[MapSpec, ...] = ()
    planner: str | Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not self.maps:
            object.__setattr__(self, "maps", (MapSpec("map", self.label),))

    @property
    def function(self) -> Callable:
        return resolve(self.implementation)

    def code_references(self) -> tuple[Callable, ...]:
        """The functions behind this entry, for the cache's code version (a changed method must miss)."""
        return tuple(f for f in (self.function, resolve(self.explainer), self.suggest, resolve(self.planner))
                     if f is not None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def explain(self, model: Any, image: Any, target: int, **params: Any) -> dict[str, Any]:
        """The method's maps (``torch.Tensor``) and numbers (float) for one image, keyed as :attr:`maps` says."""
        if self.explainer is not None:
            return resolve(self.explainer)(model, image, target, **params)
        return {"map": self.function(model, image, target, **params)}

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def coerce(self, values: dict[str, Any]) -> dict[str, Any]:
        """Keep only known parameters, each coerced to its spec; missing ones get defaults."""
        return {p.name: p.coerce(values.get(p.name)) for p in self.params}
