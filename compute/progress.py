"""How long work says how far it is: ``progress(fraction, text, partial=None)``.

``partial`` (optional) is a small dict of plain values and arrays the page may show before the work ends (a live
image of an optimisation, a layout as it converges). ``fraction`` None says the step now running makes no progress
that can be measured (numba compiling, a library fitting without callbacks, waiting for another job's model): the
page then shows a bar without a level, and the text says what it waits for, instead of a bar standing still. Algorithms take an optional callback of this shape; the jobs
layer passes one that reports to the page, hands the device to interactive work between steps, and raises
:class:`compute.errors.Cancelled` once nobody waits any more.
"""
from __future__ import annotations

from typing import Callable

Progress = Callable[..., None]  # progress(fraction: float | None, text: str, partial: dict | None = None)


def quiet(_fraction: float, _text: str, _partial: dict | None = None) -> None:
    """A progress callback that reports nowhere (for calling jobs directly)."""


def scaled(progress: Progress | None, start: float, end: float, prefix: str = "") -> Progress | None:
    """A progress callback that maps 0..1 into ``start..end`` of ``progress``: one bar for a chain of steps, each
    text after ``prefix`` ("epoch 3/10: "). None stays None (an algorithm called without progress)."""
    if progress is None:
        return None

    def report(fraction: float | None, text: str, partial: dict | None = None) -> None:
        value = None if fraction is None else start + (end - start) * max(0.0, min(1.0, fraction))
        # Two-argument callbacks (a notebook's print, say) keep working when no partial result is sent.
        progress(value, prefix + text) if partial is None else progress(value, prefix + text, partial)

    return report
