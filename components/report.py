"""Exports of what the page shows: a one-file HTML report that opens offline, and a result's numbers as CSV or NPZ.

Plain functions from figures (Plotly JSON), image data URIs and numpy arrays to bytes; the view (dashboard/views/
export.py) gathers them from the page and the service. No torch, no compute.
"""
from __future__ import annotations

import csv
import html
import io
import json
from typing import Any, Iterable

import numpy as np

from components import theme


# ------------------------------------------------------------------------------------------------ numbers

def flatten(result: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Every number of a job result as named arrays: nested dicts give dotted names ("maps.occlusion.map"), numbers
    and lists of numbers become arrays, strings and lists of strings too; other values (row dicts) are skipped."""
    arrays: dict[str, np.ndarray] = {}
    if isinstance(result, dict):
        for key, value in result.items():
            arrays.update(flatten(value, f"{prefix}{key}."))
        return arrays
    name = prefix.rstrip(".")
    if isinstance(result, np.ndarray):
        arrays[name] = result
    elif isinstance(result, (bool, int, float, str, np.number, np.bool_)):
        arrays[name] = np.asarray(result)
    elif isinstance(result, (list, tuple)) and result and all(isinstance(v, (int, float, str, np.number))
                                                              for v in result):
        arrays[name] = np.asarray(result)
    elif isinstance(result, (list, tuple)) and result and all(isinstance(v, dict) for v in result):
        for k, row in enumerate(result):  # a table's rows ("channels.dead_table"): one column per field
            arrays.update(flatten(row, f"{prefix}{k}."))
    return arrays


def npz_bytes(result: Any) -> bytes:
    """The result's arrays (see :func:`flatten`) as a compressed .npz file: ``np.load(file)[name]``."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **flatten(result))
    return buffer.getvalue()


def table_columns(arrays: dict[str, np.ndarray]) -> tuple[list[str], list[np.ndarray]] | None:
    """A wide table when the result is one row per sample: the commonest first dimension N shared by 1-D and 2-D
    arrays (an embedding's coords (N, 2), labels (N,), predicted (N,)). None when there is no such N, or when an
    image-like array (3-D or more, or 2-D of another length) would be left out: those need the long form."""
    lengths = [a.shape[0] for a in arrays.values() if a.ndim in (1, 2) and a.shape[0] > 1]
    if not lengths or any(a.ndim >= 3 for a in arrays.values()):
        return None
    n = max(set(lengths), key=lambda length: (lengths.count(length), length))
    if any(a.ndim == 2 and a.shape[0] != n for a in arrays.values()):
        return None
    names, columns = [], []
    for name, array in arrays.items():
        if array.ndim == 1 and array.shape[0] == n:
            names.append(name)
            columns.append(array)
        elif array.ndim == 2:
            # coords (N, 2) -> coords.x, coords.y; wider arrays -> name.0, name.1, ...
            suffixes = ("x", "y") if array.shape[1] == 2 and name.endswith("coords") else range(array.shape[1])
            for suffix, column in zip(suffixes, array.T):
                names.append(f"{name}.{suffix}")
                columns.append(column)
    return names, columns


def csv_text(result: Any) -> str:
    """The result's numbers as CSV. One row per sample (``row`` = its position) when the result is such a table
    (an embedding with labels, per-channel statistics; its scalars and short lists are in the NPZ); otherwise long form, one value per row: ``array, i, j, ...,
    value`` (attribution maps (H, W), feature maps (C, H, W))."""
    arrays = {name: array for name, array in flatten(result).items() if array.size}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    wide = table_columns(arrays)
    if wide is not None:
        names, columns = wide
        writer.writerow(["row", *names])
        for k, values in enumerate(zip(*columns)):
            writer.writerow([k, *(_cell(v) for v in values)])
        return out.getvalue()
    depth = max((array.ndim for array in arrays.values()), default=0)
    writer.writerow(["array", *[f"i{axis}" for axis in range(depth)], "value"])
    for name, array in arrays.items():
        for position, value in np.ndenumerate(array):
            writer.writerow([name, *position, *[""] * (depth - len(position)), _cell(value)])
    return out.getvalue()


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value.item() if isinstance(value, np.generic) else value)


# ------------------------------------------------------------------------------------------------ HTML report

def _script_json(value: Any) -> str:
    # Inside <script>, "</" would end the script early; "<\/" is the same string to JavaScript.
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def html_report(title: str, sections: Iterable[dict], plotly_js: str, theme_name: str = "light",
                notes: Iterable[str] = ()) -> str:
    """One self-contained HTML page: ``plotly_js`` inlined, every image a data URI, so it opens offline.

    ``sections``: ``[{"title": str, "texts": [str], "figures": [{"data": [...], "layout": {...}}],
    "images": [data URI]}]`` in page order; figures keep the look they had on the page (``theme_name``'s colours).
    """
    colours = theme.THEMES.get(theme_name, theme.LIGHT)
    figures, parts = [], []
    for section in sections:
        body = [f"<h2>{html.escape(section.get('title') or '')}</h2>"]
        body += [f"<p class='note'>{html.escape(text)}</p>" for text in section.get("texts", []) if text]
        for figure in section.get("figures", []):
            body.append(f"<div class='figure' id='figure-{len(figures)}'></div>")
            figures.append({"data": figure.get("data", []), "layout": figure.get("layout", {})})
        images = [src for src in section.get("images", []) if isinstance(src, str) and src.startswith("data:")]
        if images:
            body.append("<div class='images'>" + "".join(f"<img src='{html.escape(src, quote=True)}' alt=''>"
                                                         for src in images) + "</div>")
        parts.append("<section>" + "\n".join(body) + "</section>")
    note_lines = "".join(f"<p class='note'>{html.escape(line)}</p>" for line in notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: {colours.FONT}; font-size: {colours.FONT_SIZE}px; color: {colours.TEXT};
       background: {colours.BACKGROUND}; max-width: 1400px; margin: 0 auto; padding: 16px 24px; }}
h1 {{ font-size: {colours.TITLE_SIZE + 8}px; }} h2 {{ font-size: {colours.TITLE_SIZE + 2}px; margin-top: 28px; }}
.note {{ color: {colours.MUTED}; }} .figure {{ margin: 8px 0; }}
.images img {{ height: 160px; image-rendering: pixelated; margin: 4px; border: 1px solid {colours.GRID}; }}
</style>
<script>{plotly_js}</script>
</head><body>
<h1>{html.escape(title)}</h1>
{note_lines}
{chr(10).join(parts)}
<script>
const FIGURES = {_script_json(figures)};
FIGURES.forEach((figure, k) => Plotly.newPlot('figure-' + k, figure.data, figure.layout,
    {{displaylogo: false, responsive: true}}));
</script>
</body></html>
"""
