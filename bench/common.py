"""Timing helpers and the result table shared by the benchmark rows."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch


def sync() -> None:
    """Wait for queued GPU work, so a timer around a CUDA call measures the work and not just its launch."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` over ``repeats`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


def timed_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of a single call of ``fn``, with no warm-up (for cold and first-call timings)."""
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - start, result


def median(seconds: list[float]) -> float:
    return float(np.median(seconds))


def percentile(seconds: list[float], q: float) -> float:
    return float(np.percentile(seconds, q))


def ms(seconds: float) -> str:
    """Seconds as milliseconds with a sensible number of digits."""
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def sec(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def auto(seconds: float) -> str:
    """Milliseconds below one second, seconds above."""
    return ms(seconds) if seconds < 1 else sec(seconds)


def ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 100 else f"{value:.0f}×"


def met(ok: bool | None) -> str:
    """yes / no, or a dash where a row has no target."""
    return "—" if ok is None else ("yes" if ok else "**no**")


@dataclass
class Row:
    """One line of the result table; every field is already formatted text."""

    key: str
    what: str
    measured: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: str = "—"


HEADER = ("#", "what", "measured", "baseline (same run)", "ratio", "target", "met")


def markdown_table(rows: list[Row]) -> str:
    """The rows as a GitHub-flavoured Markdown table (pipes inside cells escaped)."""

    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [cells(HEADER), cells(["---"] * len(HEADER))]
    lines += [cells((r.key, r.what, r.measured, r.baseline, r.ratio, r.target, r.met)) for r in rows]
    return "\n".join(lines)
