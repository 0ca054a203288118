"""Helpers shared by the view modules: progress reporting and turning errors into messages."""
from __future__ import annotations

import logging
from typing import Callable

from components import controls
from dashboard import state

log = logging.getLogger("featurescope")


def progress_reporter(set_progress: Callable, start: float = 0.0, end: float = 1.0) -> Callable[[float, str], None]:
    """A compute-style ``progress(fraction, message)`` that drives a background callback's progress outputs,
    mapped into the ``start``..``end`` part of the bar."""

    def report(fraction: float, text: str) -> None:
        set_progress((str(round(100 * (start + (end - start) * max(0.0, min(1.0, fraction))))), text))

    return report


def error_message(error: Exception):
    """A readable message for the UI: the text of a user error, or a short note for a bug (logged in full)."""
    if isinstance(error, state.USER_ERRORS):
        return controls.message(str(error).strip("'\""))
    log.exception("unexpected error in a callback")
    return controls.message(f"Something went wrong ({type(error).__name__}: {error}). The server log has details.")


def selected_index(selection) -> int | None:
    """The sample index held by the selection store, or None."""
    if isinstance(selection, dict) and isinstance(selection.get("index"), int):
        return selection["index"]
    return None
