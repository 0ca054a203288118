"""Jobs that only count or fail: they measure the hand-over to the compute process (bench), and show that a
superseded job stops early, that long jobs take turns and step aside, that a job survives its compute process
dying, and that a bug is reported as one (tests). No model is involved."""
from __future__ import annotations

import os
import time

import numpy as np

from compute.jobs.workspace import Workspace

# Steps each tagged count has run in this process; read back with the "diagnostics.steps_done" job.
_steps_done: dict[str, int] = {}
# When each tagged count started and ended (time.time()), for tests of the order in which jobs ran.
_times: dict[str, tuple[float, float]] = {}


def count(workspace: Workspace, progress, tag: str = "", steps: int = 10, step_s: float = 0.0,
          preview: bool = False, unmeasured_s: float = 0.0) -> dict:
    """Count to ``steps``, sleeping ``step_s`` per step and reporting progress at each (with ``preview``, the step
    as a partial result, an int64 array); returns the worker's pid and when the count started and ended. With
    ``unmeasured_s``, first a step of that many seconds without measurable progress (fraction None)."""
    started = time.time()
    if unmeasured_s:
        progress(None, "a step without measurable progress")
        time.sleep(unmeasured_s)
    for step in range(steps):
        _steps_done[tag] = step
        partial = {"step": np.array([step], dtype=np.int64)} if preview else None
        progress(step / steps, f"step {step}/{steps}", partial)
        time.sleep(step_s)
    _steps_done[tag] = steps
    _times[tag] = (started, time.time())
    return {"steps": steps, "pid": os.getpid(), "started": started, "ended": time.time()}


def steps_done(workspace: Workspace, progress, tag: str, nonce: str = "") -> dict:
    """How many steps the count called ``tag`` has run in this process (``nonce`` makes each ask a new job)."""
    return {"steps": _steps_done.get(tag, 0), "times": _times.get(tag)}


def fail(workspace: Workspace, progress, kind: str = "KeyError", nonce: str = "") -> dict:
    """A job with a bug: raises ``kind`` (a built-in exception), as a real bug would (tests of how bugs are shown)."""
    raise {"KeyError": KeyError, "IndexError": IndexError, "ValueError": ValueError}.get(kind, RuntimeError)(
        f"injected {kind} for a test")


JOBS = {"diagnostics.count": count, "diagnostics.steps_done": steps_done, "diagnostics.fail": fail}
