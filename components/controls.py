"""Layout fragments: cards, labelled controls, progress blocks, and controls built from parameter specs."""
from __future__ import annotations

from typing import Any

from dash import dcc, html


def card(title: str, *children, card_id: str | None = None, class_name: str = "") -> html.Section:
    """A titled panel."""
    kwargs = {"id": card_id} if card_id else {}
    return html.Section([html.H2(title, className="card-title"), *children], className=f"card {class_name}".strip(), **kwargs)


def labelled(label: str, control, hint: str = "", class_name: str = "") -> html.Div:
    """A control with its label above it (and an optional hint as a tooltip); ``class_name`` adds classes
    (``control-inline``: the label beside the control)."""
    return html.Div([html.Label(label, title=hint), control], className=f"control {class_name}".strip())


def message(text: str, kind: str = "error") -> html.Div:
    """An inline message: error, warning or info."""
    return html.Div(text, className=f"message message-{kind}", role="alert" if kind == "error" else "status")


def param_control(spec: Any, control_id: dict, layer_options: list[str] | None = None, value: Any = None):
    """A Dash control for one parameter spec (duck-typed: name, kind, default, label, low, high, step, choices, help),
    starting at ``value`` (None: the spec's default)."""
    label = spec.label or spec.name
    initial = spec.default if value is None else value
    if spec.kind in ("int", "float"):
        # A number box that applies on Enter (debounce). No browser-side min/max: an out-of-range number reaches the
        # spec, which clamps it, and the panel says so instead of the box silently refusing it.
        bounds = " – ".join(f"{int(bound):,}" if float(bound).is_integer() else f"{bound:g}"
                            for bound in (spec.low, spec.high) if bound is not None)
        label = f"{label} ({bounds})" if bounds else label
        control = dcc.Input(id=control_id, type="number", value=initial, debounce=True, step="any",
                            className="number-input")
    elif spec.kind == "choice":
        control = dcc.Dropdown(id=control_id, options=[{"label": str(c), "value": c} for c in spec.choices],
                               value=initial, clearable=False)
    elif spec.kind == "bool":
        control = dcc.Checklist(id=control_id, options=[{"label": " on", "value": "on"}],
                                value=["on"] if initial else [], inline=True)
    elif spec.kind == "layer":
        options = [{"label": "(default)", "value": ""}] + [{"label": name, "value": name} for name in layer_options or []]
        control = dcc.Dropdown(id=control_id, options=options, value=initial, clearable=False)
    else:
        control = dcc.Input(id=control_id, value=initial, debounce=True)
    return labelled(label, control, spec.help)


def control_value(spec: Any, value: Any) -> Any:
    """Undo the control's encoding (a checklist's list for a bool) before the spec coerces the value."""
    if spec.kind == "bool" and isinstance(value, list):
        return bool(value)
    return value
