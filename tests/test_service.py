"""The compute process behind the web server: shared jobs, cancellation, a dying process, progress and hand-over.

These run a real local cluster: one spawned worker process, as the app starts it.
"""
from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from compute.specs.source import Source
from dashboard.service import ComputeProcessDied, ComputeService, job_key


@pytest.fixture(scope="module")
def service(cache_root):
    started = ComputeService.start(Source())
    yield started
    started.close()


def worker_pid(service) -> int:
    (facts,) = service.worker_facts().values()
    return facts["pid"]


def steps_done(service, tag: str) -> int:
    return service.run("diagnostics.steps_done", {"tag": tag, "nonce": uuid.uuid4().hex}, timeout=30)["steps"]


def test_the_job_runs_in_another_process_that_has_not_touched_cuda(service):
    result = service.run("diagnostics.count", {"tag": uuid.uuid4().hex, "steps": 2}, timeout=60)
    assert result["pid"] != os.getpid() and result["pid"] == worker_pid(service)
    (facts,) = service.worker_facts().values()
    assert facts["cuda_initialized"] is False or facts["cuda_available"]


def test_the_compute_process_uses_every_core_and_glibcs_adaptive_allocator(service):
    (facts,) = service.worker_facts().values()
    # Dask's default MALLOC_TRIM_THRESHOLD_ made every tensor over 128 KiB a fresh mmap: extraction ran 2x slower.
    assert facts["malloc_trim_threshold"] is None
    assert facts["threads"] == os.cpu_count()  # torch's pool: every core (Dask would give it one)


def test_identical_requests_share_one_computation_and_both_get_the_result(service):
    params = {"tag": uuid.uuid4().hex, "steps": 5, "step_s": 0.05}
    first = service.submit("diagnostics.count", params, holder=("session-a", "panel"))
    second = service.submit("diagnostics.count", params, holder=("session-b", "panel"))
    assert first == second == job_key(service.source, "diagnostics.count", params)
    a, b = service.wait(first, 30), service.wait(second, 30)
    assert a.state == b.state == "done"
    assert a.result == b.result and a.result["steps"] == 5
    # One computation: the job started once (one start time for both).
    assert a.result["started"] == b.result["started"]


def test_a_superseded_job_stops_early(service):
    tag = uuid.uuid4().hex
    slow = service.submit("diagnostics.count", {"tag": tag, "steps": 400, "step_s": 0.02}, holder=("s", "panel"))
    deadline = time.time() + 30
    while service.status(slow).fraction < 0.05 and time.time() < deadline:
        time.sleep(0.05)
    assert service.status(slow).state == "running"
    service.submit("diagnostics.count", {"tag": uuid.uuid4().hex, "steps": 1}, holder=("s", "panel"))
    assert service.status(slow).state == "cancelled"
    time.sleep(1.0)  # the cancel reaches the worker within a progress report or two
    stopped_at = steps_done(service, tag)
    time.sleep(0.6)
    assert steps_done(service, tag) == stopped_at < 400 * 0.5


def test_a_job_shared_with_another_session_is_not_cancelled_by_one_of_them(service):
    params = {"tag": uuid.uuid4().hex, "steps": 20, "step_s": 0.02}
    key = service.submit("diagnostics.count", params, holder=("one", "panel"))
    service.submit("diagnostics.count", params, holder=("two", "panel"))
    service.submit("diagnostics.count", {"tag": uuid.uuid4().hex, "steps": 1}, holder=("one", "panel"))
    status = service.wait(key, 30)
    assert status.state == "done" and status.result["steps"] == 20


def test_progress_advances_and_never_runs_backwards(service):
    key = service.submit("diagnostics.count", {"tag": uuid.uuid4().hex, "steps": 30, "step_s": 0.03})
    seen = []
    while (status := service.status(key)).state == "running":
        seen.append(status.fraction)
        time.sleep(0.02)
    assert status.state == "done"
    assert seen == sorted(seen) and max(seen) > 0.3


def test_a_dying_compute_process_is_reported_and_a_retry_succeeds(service):
    pid = worker_pid(service)
    params = {"tag": uuid.uuid4().hex, "steps": 200, "step_s": 0.05}
    key = service.submit("diagnostics.count", params, holder=("s", "kill"))
    deadline = time.time() + 30
    while service.status(key).fraction <= 0 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    status = service.wait(key, 60)
    assert status.state == "error" and isinstance(status.error, ComputeProcessDied)
    assert "compute process stopped" in str(status.error)
    retried = service.submit("diagnostics.count", {**params, "steps": 3}, holder=("s", "kill"), retry=True)
    assert service.wait(retried, 120).state == "done"
    assert worker_pid(service) != pid


def test_a_user_error_comes_back_as_itself(service):
    from compute.errors import UserError

    with pytest.raises(UserError, match="out of range"):
        service.run("details.panels", {"index": 10**6, "layer": "relu2"}, timeout=120)


def test_partial_results_with_arrays_reach_the_server(service):
    """A job's partial result (numpy arrays, as a live preview sends them) travels as a worker event and arrives
    as arrays (msgpack alone cannot carry them)."""
    import pickle

    import numpy as np
    import torch

    from compute.jobs.variants import plain
    from compute.worker import decode_partial

    preview = {"images": np.arange(12, dtype=np.uint8).reshape(1, 3, 2, 2), "history": [0.5, np.float32(1.5)],
               "tensor": torch.ones(2)}
    back = decode_partial(pickle.dumps(plain(preview)))
    assert isinstance(back["tensor"], np.ndarray)  # tensors travel as arrays: the server has no torch
    assert np.array_equal(back["images"], preview["images"]) and back["images"].dtype == np.uint8
    assert back["history"] == [0.5, 1.5]
    key = service.submit("diagnostics.count", {"tag": uuid.uuid4().hex, "steps": 40, "step_s": 0.05,
                                               "preview": True})
    deadline = time.time() + 60
    while service.status(key).partial is None and time.time() < deadline:
        time.sleep(0.05)
    partial = service.status(key).partial
    assert partial is not None and partial["step"].shape == (1,) and partial["step"].dtype == np.int64
    assert service.wait(key, 60).state == "done"


def test_a_wait_for_news_returns_with_each_newer_partial_result_not_at_its_timeout(service):
    """A page's poll waits for the job to end or to send a partial result newer than the one it shows: a t-SNE
    layout streams to the page as it comes, not at the poll's timeout."""
    key = service.submit("diagnostics.count", {"tag": uuid.uuid4().hex, "steps": 40, "step_s": 0.25,
                                               "preview": True})
    first = service.wait(key, 60, newer_than=0)
    assert first.state == "running" and first.revision >= 1 and first.partial is not None
    second = service.wait(key, 60, newer_than=first.revision)
    # The wait ended with the next step's partial, while the 10 s job still ran: not at its timeout, nor at the end.
    assert second.state == "running"
    assert second.revision > first.revision and int(second.partial["step"][0]) > int(first.partial["step"][0])
    # Without ``newer_than`` partials do not end a wait: only the timeout (or the end of the job) does.
    start = time.perf_counter()
    assert service.wait(key, 0.6).state == "running"
    assert time.perf_counter() - start >= 0.55
    assert service.wait(key, 60).state == "done"
