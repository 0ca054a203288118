"""The kinds of value a link holds: each encodes a value as URL text, decodes and validates text (ValueError when
it does not fit), and draws random valid values (the round-trip test's domain).

A kind is bound to its component in the page (``bind``): a choice's options are the control's own options, a
number's bounds may come from the control's min/max, so a link is checked against the page as it is now.
"""
from __future__ import annotations

import dataclasses
import math
import random
import re
import string
from dataclasses import dataclass
from typing import Any

from dash import dcc


@dataclass(frozen=True)
class Kind:
    """The base: one URL key whose text is ``to_text(value)``."""

    def bind(self, component, meta, default) -> "Kind":
        return self

    def keys(self, key: str) -> tuple[str, ...]:
        return (key,)

    def encode(self, key: str, value) -> dict[str, str]:
        return {key: self.to_text(value)}

    def decode(self, key: str, query: dict[str, str]):
        return self.from_text(query[key])

    def to_text(self, value) -> str:
        raise NotImplementedError

    def from_text(self, text: str):
        raise NotImplementedError

    def sample(self, rng: random.Random):
        raise NotImplementedError


def _values(options) -> list:
    return [option["value"] if isinstance(option, dict) else option for option in options or []]


@dataclass(frozen=True)
class Option(Kind):
    """One of the control's options (a dropdown, radio items); "" is None where the control may be empty."""

    choices: tuple = ()
    optional: bool = False

    def bind(self, component, meta, default):
        clearable = isinstance(component, dcc.Dropdown) and getattr(component, "clearable", True) is not False
        return dataclasses.replace(self, choices=self.choices or tuple(_values(getattr(component, "options", []))),
                                   optional=self.optional or default is None or clearable)

    def to_text(self, value):
        return "" if value is None else str(value)

    def from_text(self, text):
        if text == "" and self.optional:
            return None
        for choice in self.choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"{text!r} is not an option")

    def sample(self, rng):
        return rng.choice(list(self.choices) + ([None] if self.optional else []))


@dataclass(frozen=True)
class Options(Kind):
    """Several of the control's options (a checklist), in the order they were chosen, comma separated."""

    choices: tuple = ()

    def bind(self, component, meta, default):
        return dataclasses.replace(self, choices=self.choices or tuple(_values(getattr(component, "options", []))))

    def to_text(self, value):
        return ",".join(str(v) for v in value or [])

    def from_text(self, text):
        names = [name for name in text.split(",") if name]
        by_text = {str(choice): choice for choice in self.choices}
        if any(name not in by_text for name in names):
            raise ValueError(f"unknown among {names}")
        return list(dict.fromkeys(by_text[name] for name in names))

    def sample(self, rng):
        return rng.sample(list(self.choices), rng.randint(0, len(self.choices)))


@dataclass(frozen=True)
class Flag(Kind):
    """A one-option checklist used as a switch: ``1`` on, ``0`` off."""

    on: Any = None

    def bind(self, component, meta, default):
        return dataclasses.replace(self, on=_values(getattr(component, "options", []))[0])

    def to_text(self, value):
        return "1" if value else "0"

    def from_text(self, text):
        if text not in ("0", "1"):
            raise ValueError(text)
        return [self.on] if text == "1" else []

    def sample(self, rng):
        return rng.choice([[], [self.on]])


@dataclass(frozen=True)
class Parity(Kind):
    """A toggle button's click count: only odd (on) or even (off) matters."""

    def to_text(self, value):
        return str((value or 0) % 2)

    def from_text(self, text):
        if text not in ("0", "1"):
            raise ValueError(text)
        return int(text)

    def sample(self, rng):
        return rng.randint(0, 1)


@dataclass(frozen=True)
class Pressed(Parity):
    """A run button: ``1`` once it has been pressed, so the link computes what the page showed (read and sampled
    as a toggle's ``0``/``1``)."""

    def to_text(self, value):
        return "1" if value else "0"


def number_text(value) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def parse_number(text: str) -> int | float:
    """An int for integer text, else a finite float (``repr`` of a float reads back exactly)."""
    if re.fullmatch(r"-?\d{1,18}", text):
        return int(text)
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is not a finite number")
    return number


@dataclass(frozen=True)
class Number(Kind):
    """A number within ``low..high`` (None: unbounded, or the control's min/max); "" is an empty box if optional."""

    low: float | None = None
    high: float | None = None
    optional: bool = False
    integer: bool = False

    def bind(self, component, meta, default):
        if isinstance(component, (dcc.Dropdown, dcc.RadioItems)):  # a number spec shown as a choice (classes by name)
            return Option().bind(component, meta, default)
        low = self.low if self.low is not None else getattr(component, "min", None)
        high = self.high if self.high is not None else getattr(component, "max", None)
        integer = self.integer or getattr(component, "step", None) == 1
        return dataclasses.replace(self, low=low, high=high, integer=integer,
                                   optional=self.optional or default is None)

    def to_text(self, value):
        return "" if value is None else number_text(value)

    def from_text(self, text):
        if text == "" and self.optional:
            return None
        number = parse_number(text)
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise ValueError(f"{number} is outside {self.low}..{self.high}")
        if self.integer and not isinstance(number, int):
            raise ValueError(f"{number} is not a whole number")
        return number

    def sample(self, rng):
        if self.optional and rng.random() < 0.1:
            return None
        low = self.low if self.low is not None else -100
        high = self.high if self.high is not None else low + 100
        if self.integer or rng.random() < 0.4:
            return rng.randint(math.ceil(low), math.floor(high))
        return rng.uniform(low, high)


@dataclass(frozen=True)
class Text(Kind):
    """A short name (a training run's): letters, digits and ``._-``; "" is None where allowed."""

    optional: bool = True
    pattern: str = r"[A-Za-z0-9._-]{1,80}"

    def to_text(self, value):
        return value or ""

    def from_text(self, text):
        if text == "" and self.optional:
            return None
        if not re.fullmatch(self.pattern, text):
            raise ValueError(text)
        return text

    def sample(self, rng):
        if self.optional and rng.random() < 0.2:
            return None
        return "".join(rng.choice(string.ascii_letters + string.digits + "._-") for _ in range(rng.randint(1, 12)))


@dataclass(frozen=True)
class LayerChannel(Kind):
    """A store holding ``{"layer": name, "channel": k}`` (a channel someone clicked), as ``layer:k``."""

    layers: tuple = ()

    def bind(self, component, meta, default):
        return dataclasses.replace(self, layers=tuple(meta.layers))

    def to_text(self, value):
        return "" if not value else f"{value['layer']}:{value['channel']}"

    def from_text(self, text):
        if text == "":
            return None
        layer, _, channel = text.rpartition(":")
        if layer not in self.layers or not re.fullmatch(r"\d{1,6}", channel):
            raise ValueError(text)
        return {"layer": layer, "channel": int(channel)}

    def sample(self, rng):
        return rng.choice([None, {"layer": rng.choice(self.layers), "channel": rng.randint(0, 255)}])


def kind_for(component) -> Kind:
    """The kind a control's value has, from its type: choices, a checklist, a number box, a slider, a text box."""
    if isinstance(component, (dcc.Dropdown, dcc.RadioItems)):
        return Option()
    if isinstance(component, dcc.Checklist):
        return Options()
    if isinstance(component, dcc.Slider):
        return Number()
    if isinstance(component, dcc.Input):
        return Number(optional=True) if getattr(component, "type", None) == "number" else Text()
    raise TypeError(f"no URL kind for a {type(component).__name__}: give the entry a kind")
