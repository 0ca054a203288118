"""Interactive work first: how long jobs share the model's device with a class's clicks in one compute process.

Every job runs in a *lane* (``compute.specs.jobs.LANES``). While any interactive job runs, a long job stops at its
next step and waits; it goes on when no interactive job is left. A click therefore waits at most about one step of
a long job (one optimisation step, one batch, one PGD step), never its whole length, on a CPU or a GPU alike.

Long work finds its steps in two places, so no algorithm needs to know about lanes: every forward pass of a
long-lane model (a forward pre-hook that :class:`~compute.jobs.workspace.Workspace` puts on the long lane's own
model copies), and every progress report. The long lane has model copies of its own because hooks and the
inversion's ReLU rule change a model while they run: two lanes must never share one.

A thread that waits for another's computation (the same cache key, a model being trained) is not running
interactive work meanwhile, or a long job computing that very thing would wait for it in turn: such waits go
through :meth:`DeviceGate.stepping_aside`. As a last safety net a long job never pauses more than
``MAX_PAUSE_S`` at one step.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from compute.specs.jobs import INTERACTIVE, LONG

MAX_PAUSE_S = 5.0
JOURNAL_LENGTH = 20_000  # the latest events kept for tests and the load bench

_thread = threading.local()


def current_lane() -> str:
    """The lane of the job this thread runs (interactive when it runs none: a notebook, a test)."""
    return getattr(_thread, "lane", INTERACTIVE)


@contextmanager
def in_lane(lane: str, job: str | None = None) -> Iterator[None]:
    """Run the body in ``lane`` (the models it asks the workspace for, and whether it pauses for interactive work);
    ``job`` names it in the gate's journal."""
    previous, previous_job = getattr(_thread, "lane", INTERACTIVE), getattr(_thread, "job", "")
    _thread.lane = lane
    if job is not None:
        _thread.job = job
    try:
        yield
    finally:
        _thread.lane, _thread.job = previous, previous_job


class DeviceGate:
    """Counts the interactive jobs running; long work waits at its steps while there is any."""

    def __init__(self, max_pause_s: float = MAX_PAUSE_S):
        self._condition = threading.Condition()
        self._interactive = 0
        self.max_pause_s = max_pause_s
        self.pauses = 0  # how often long work stepped aside
        # (time.monotonic(), event, job): "start"/"end" of interactive jobs, "step" of long work, "pause"/"resume".
        # Tests read the order of events from it (not seconds): a click's job runs between two steps of a long one.
        self.journal: deque = deque(maxlen=JOURNAL_LENGTH)

    def note(self, event: str, job: str = "") -> None:
        self.journal.append((time.monotonic(), event, job))

    @property
    def interactive_running(self) -> int:
        with self._condition:
            return self._interactive

    @contextmanager
    def interactive(self, job: str = "") -> Iterator[None]:
        """Run the body as interactive work: long work pauses at its next step until it ends."""
        with self._condition:
            self._interactive += 1
        self.note("start", job)
        depth = getattr(_thread, "interactive_depth", 0)
        _thread.interactive_depth = depth + 1
        try:
            yield
        finally:
            _thread.interactive_depth = depth
            self.note("end", job)
            with self._condition:
                self._interactive -= 1
                if self._interactive == 0:
                    self._condition.notify_all()

    @contextmanager
    def stepping_aside(self) -> Iterator[None]:
        """While this thread waits for something another thread computes, it does not count as interactive work."""
        counted = getattr(_thread, "interactive_depth", 0) > 0 and not getattr(_thread, "aside", False)
        if not counted:
            yield
            return
        _thread.aside = True
        with self._condition:
            self._interactive -= 1
            if self._interactive == 0:
                self._condition.notify_all()
        try:
            yield
        finally:
            with self._condition:
                self._interactive += 1
            _thread.aside = False

    def step(self) -> None:
        """A long job's step boundary: wait here while interactive work runs (no-op in the interactive lane)."""
        if current_lane() != LONG:
            return
        self.note("step", getattr(_thread, "job", ""))
        with self._condition:
            if self._interactive == 0:
                return
            self.pauses += 1
            self.note("pause", getattr(_thread, "job", ""))
            deadline = time.monotonic() + self.max_pause_s
            while self._interactive > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._condition.wait(left)
        self.note("resume", getattr(_thread, "job", ""))


@contextmanager
def long_phase(gate: DeviceGate) -> Iterator[None]:
    """The long tail of an interactive job (the scatter's t-SNE after its first picture): from here on it steps
    aside for clicks like a long job, and no click waits for it."""
    with gate.stepping_aside(), in_lane(LONG):
        yield


# One device per compute process, so one gate: every workspace's long work yields to every interactive job.
GATE = DeviceGate()

__all__ = ["GATE", "DeviceGate", "INTERACTIVE", "LONG", "current_lane", "in_lane", "long_phase", "MAX_PAUSE_S"]
