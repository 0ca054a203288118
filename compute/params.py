"""Parameter specs shared by the method tables, so a UI can build controls from them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
            return bool(value)
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
class Method:
    """A registered function with a human label and its parameter specs."""

    function: Any
    label: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    description: str = ""

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def coerce(self, values: dict[str, Any]) -> dict[str, Any]:
        """Keep only known parameters, each coerced to its spec; missing ones get defaults."""
        return {p.name: p.coerce(values.get(p.name)) for p in self.params}
