"""The entry point that runs inside the compute process (a Dask worker): one named job, with progress and cancel.

The web server submits :func:`execute` through Dask (``dashboard/service.py``); this module is the only compute
code that knows about Dask. Progress and partial results travel back as worker events on :data:`PROGRESS_TOPIC`;
cancellation comes as a Dask ``Event`` named after the submission, read at most every :data:`CANCEL_CHECK_S`
seconds so that frequent progress reports stay cheap.
"""
from __future__ import annotations

import time
from typing import Any

from compute.workspace import USER_ERRORS, Cancelled, Source, run

PROGRESS_TOPIC = "featurescope-progress"
CANCELLED = "__cancelled__"
USER_ERROR = "__user_error__"
CANCEL_CHECK_S = 0.2


def cancel_event_name(submission: str) -> str:
    return f"featurescope-cancel-{submission}"


def execute(source: Source, name: str, params: dict, submission: str) -> Any:
    """Run job ``name`` for ``source`` in this worker; report progress; stop early once cancelled.

    Returns the job's result, or ``{CANCELLED: True}`` when it was cancelled before it finished (a cancelled job is
    not an error), or ``{USER_ERROR: error}`` for a mistake in the request that its message explains (a wrong layer,
    a sample out of range): those are answers, not failures, so the worker log stays quiet about them. Anything
    else raises and is logged where it happened.
    """
    from distributed import Event, get_worker

    worker = get_worker()
    cancel = Event(cancel_event_name(submission))
    last_check = [0.0]
    worker.log_event(PROGRESS_TOPIC, {"submission": submission, "started": time.time()})

    def progress(fraction: float, text: str, partial: dict | None = None) -> None:
        message = {"submission": submission, "fraction": float(fraction), "text": str(text)}
        if partial is not None:
            message["partial"] = encode(partial)
        worker.log_event(PROGRESS_TOPIC, message)
        now = time.monotonic()
        if now - last_check[0] >= CANCEL_CHECK_S:
            last_check[0] = now
            if cancel.is_set():
                raise Cancelled(name)

    try:
        return run(source, name, params, progress)
    except Cancelled:
        return {CANCELLED: True}
    except USER_ERRORS as error:
        return {USER_ERROR: error}


def encode(value: Any) -> Any:
    """Numpy arrays (and numbers) inside dicts and lists, made msgpack-safe for a worker event: an array becomes
    {"__ndarray__": bytes, "dtype", "shape"}. :func:`decode` undoes it."""
    import numpy as np

    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if hasattr(value, "detach"):  # a tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return {"__ndarray__": array.tobytes(), "dtype": array.dtype.str, "shape": list(array.shape)}
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`."""
    import numpy as np

    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.frombuffer(value["__ndarray__"], dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


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
