"""A job that only counts: it measures the hand-over to the compute process (bench) and shows that a superseded
job stops early and that a job survives its compute process dying (tests). No model is involved."""
from __future__ import annotations

import os
import time

from compute.workspace import Workspace, job

# Steps each tagged count has run in this process; read back with the "diagnostics.steps_done" job.
_steps_done: dict[str, int] = {}


@job("diagnostics.count")
def count(workspace: Workspace, progress, tag: str = "", steps: int = 10, step_s: float = 0.0,
          preview: bool = False) -> dict:
    """Count to ``steps``, sleeping ``step_s`` per step and reporting progress at each (with ``preview``, the step
    as a partial result, an int64 array); returns the worker's pid."""
    import numpy as np

    started = time.time()
    for step in range(steps):
        _steps_done[tag] = step
        partial = {"step": np.array([step], dtype=np.int64)} if preview else None
        progress(step / steps, f"step {step}/{steps}", partial)
        time.sleep(step_s)
    _steps_done[tag] = steps
    return {"steps": steps, "pid": os.getpid(), "started": started}


@job("diagnostics.steps_done")
def steps_done(workspace: Workspace, progress, tag: str, nonce: str = "") -> dict:
    """How many steps the count called ``tag`` has run in this process (``nonce`` makes each ask a new job)."""
    return {"steps": _steps_done.get(tag, 0)}
