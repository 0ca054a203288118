"""The entry point that runs inside the compute process (a Dask worker): one named job, with progress and cancel.

The web server submits :func:`execute` through Dask (``dashboard/service.py``); this module is the only compute
code that knows about Dask, and it imports no torch until a job runs, so the web server can name it.
Progress and partial results travel back as worker events on :data:`PROGRESS_TOPIC` (a partial result pickled:
numpy arrays and plain values); cancellation comes as a Dask ``Event`` named after the submission, read at most
every :data:`CANCEL_CHECK_S` seconds so that frequent progress reports stay cheap. Reports without a partial
result are sent at most every :data:`REPORT_EVERY_S` seconds: long work reports at every step (its steps are where
clicks go first), far more often than a progress bar needs.
"""
from __future__ import annotations

import logging
import pickle
import time
import traceback
from typing import Any

from compute.errors import Cancelled, JobFailed, UserError

PROGRESS_TOPIC = "featurescope-progress"
CANCELLED = "__cancelled__"
USER_ERROR = "__user_error__"
FAILED = "__failed__"
CANCEL_CHECK_S = 0.2
REPORT_EVERY_S = 0.1

log = logging.getLogger("featurescope.jobs")


def cancel_event_name(submission: str) -> str:
    return f"featurescope-cancel-{submission}"


def execute(source, name: str, params: dict, submission: str) -> Any:
    """Run job ``name`` for ``source`` in this worker; report progress; stop early once cancelled.

    Returns the job's result, or ``{CANCELLED: True}`` when it was cancelled before it finished (a cancelled job is
    not an error), ``{USER_ERROR: error}`` for a :class:`UserError` (an answer, not a failure: the log stays quiet),
    or ``{FAILED: JobFailed}`` for anything else: a bug, logged here with its traceback, and sent as a type the web
    server can read whatever library raised it.
    """
    from distributed import Event, get_worker

    from compute.jobs.table import run
    from compute.jobs.variants import plain

    worker = get_worker()
    cancel = Event(cancel_event_name(submission))
    last_check, last_report = [0.0], [0.0]
    worker.log_event(PROGRESS_TOPIC, {"submission": submission, "started": time.time()})

    def progress(fraction: float | None, text: str, partial: dict | None = None) -> None:
        now = time.monotonic()
        # A step without measurable progress (None) is said at once: the page stops showing a level.
        if partial is not None or fraction is None or fraction >= 1.0 or now - last_report[0] >= REPORT_EVERY_S:
            last_report[0] = now
            message = {"submission": submission, "fraction": None if fraction is None else float(fraction),
                       "text": str(text)}
            if partial is not None:
                message["partial"] = pickle.dumps(plain(partial), protocol=pickle.HIGHEST_PROTOCOL)
            worker.log_event(PROGRESS_TOPIC, message)
        if now - last_check[0] >= CANCEL_CHECK_S:
            last_check[0] = now
            if cancel.is_set():
                raise Cancelled(name)

    try:
        return plain(run(source, name, params, progress))
    except Cancelled:
        return {CANCELLED: True}
    except UserError as error:
        return {USER_ERROR: error}
    except Exception as error:  # a bug: its traceback belongs in this process's log, the page says it went wrong
        log.error("job %s failed (parameters %r)", name, params, exc_info=True)
        return {FAILED: JobFailed(name, type(error).__name__, str(error), traceback.format_exc())}


def decode_partial(payload: bytes) -> Any:
    """The partial result a progress event carries (see :func:`execute`)."""
    return pickle.loads(payload)


def process_facts() -> dict:
    """What the compute process is: its pid, torch's device view and threads (for the status line and tests)."""
    import os

    import torch

    facts = {"pid": os.getpid(), "cuda_available": torch.cuda.is_available(),
             "cuda_initialized": torch.cuda.is_initialized(), "threads": torch.get_num_threads(),
             "malloc_trim_threshold": os.environ.get("MALLOC_TRIM_THRESHOLD_")}
    if torch.cuda.is_initialized():  # asking only after the jobs did: a check must not initialise CUDA itself
        facts["cuda_device"] = torch.cuda.get_device_name()
        facts["cuda_memory_mb"] = round(torch.cuda.memory_allocated() / 2**20, 1)
    return facts
