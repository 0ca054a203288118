"""The method panel: a registry's parameter specs become controls, the controls' values become coerced parameters.

Any table of ``compute.specs.params.Method`` entries (attribution methods today) gets a checklist of its methods and one
block of controls per method, built from each entry's specs; ``parameters`` turns what the controls hold back into
valid arguments, and says which values were clamped. Nothing here knows a method by name: method-specific starting
values come from the entry's own ``suggest``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dash import ALL, Input, Output, State, dcc, html, no_update

from components import controls
from compute.specs.params import Method


@dataclass(frozen=True)
class MethodPanel:
    name: str
    registry: dict[str, Method]
    default_methods: tuple[str, ...]

    @property
    def picker_id(self) -> str:
        return f"{self.name}-methods"

    def control_id(self, method: str, parameter: str) -> dict:
        """Pattern-matching id of one method's parameter control."""
        return {"type": f"{self.name}-param", "method": method, "name": parameter}

    @property
    def any_control(self) -> dict:
        return {"type": f"{self.name}-param", "method": ALL, "name": ALL}

    def picker(self, label: str = "Methods") -> html.Div:
        return controls.labelled(label, dcc.Checklist(
            id=self.picker_id, value=list(self.default_methods), inline=True,
            options=[{"label": entry.label, "value": name} for name, entry in self.registry.items()],
        ))

    def starting_values(self, method: str, image_shape: tuple[int, ...]) -> dict[str, Any]:
        entry = self.registry[method]
        suggest = getattr(entry, "suggest", None)
        return {**entry.defaults(), **(suggest(tuple(image_shape)) if suggest else {})}

    def blocks(self, image_shape: tuple[int, ...], layer_options: list[str]) -> html.Div:
        """One collapsible block of controls per method, starting at the method's suggestion for this image size."""
        blocks = []
        for name, entry in self.registry.items():
            start = self.starting_values(name, image_shape)
            blocks.append(html.Details([
                html.Summary(entry.label, title=entry.description),
                html.P(entry.description, className="hint"),
                *[controls.param_control(spec, self.control_id(name, spec.name), layer_options, start[spec.name])
                  for spec in entry.params],
            ], className="method-controls", open=name == self.default_methods[0]))
        return html.Div(blocks, className="method-blocks")

    def inputs(self) -> list:
        return [Input(self.picker_id, "value"), Input(self.any_control, "value")]

    def states(self) -> list:
        return [State(self.any_control, "id")]

    def clamped_values(self, values: list, control_ids: list[dict]) -> list:
        """For each control, the value its spec clamps a number to when that differs from what the box holds (box
        100 -> 64), else ``no_update``: the box then shows the value in use."""
        shown = []
        for value, control in zip(values or [], control_ids or []):
            entry = self.registry.get(control.get("method"))
            spec = next((p for p in entry.params if p.name == control.get("name")), None) if entry else None
            number = _number(value) if spec is not None and spec.kind in ("int", "float") else None
            if number is None or not math.isfinite(number):
                shown.append(no_update)
                continue
            used = spec.coerce(number)
            shown.append(used if used != number else no_update)
        return shown

    def register_clamping(self, app) -> None:
        """Write a clamped number back into its box as soon as it is entered."""
        app.callback(Output(self.any_control, "value", allow_duplicate=True), Input(self.any_control, "value"),
                     State(self.any_control, "id"), prevent_initial_call=True)(self.clamped_values)

    def parameters(self, method: str, values: list, control_ids: list[dict], image_shape) -> tuple[dict, list[str]]:
        """The coerced parameters of ``method`` from the controls' values, and a note per clamped value."""
        entry = self.registry[method]
        given = {cid["name"]: value for cid, value in zip(control_ids or [], values or []) if cid["method"] == method}
        start = self.starting_values(method, image_shape)
        params, notes = {}, []
        for spec in entry.params:
            raw = controls.control_value(spec, given.get(spec.name, start[spec.name]))
            value = spec.coerce(raw if raw not in (None, "") else start[spec.name])
            number = _number(raw) if spec.kind in ("int", "float") else None
            if number is not None and ((spec.low is not None and number < spec.low)
                                       or (spec.high is not None and number > spec.high)):
                notes.append(f"{entry.label}: {spec.label or spec.name} {raw} is outside {spec.low:g}..{spec.high:g}; "
                             f"using {value:g}")
            params[spec.name] = value
        return params, notes


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
