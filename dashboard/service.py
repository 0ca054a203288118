"""The only door to the compute process: submit a named job, follow its progress, get its result.

The web server holds no model and never touches CUDA. Model work runs in a long-lived compute process, a Dask
worker (one per device), which loads each model and data set once (``compute/workspace.py``). Dask starts it with
the ``spawn`` method, so nothing that touched CUDA or an OpenMP team is ever forked; its nanny starts a new one when
it dies. ``ComputeService.start(source, address=...)`` uses a cluster that already runs instead (a lab's GPUs).

Jobs behave:
- identical requests share one computation (the job key is the request's content), and every waiter gets it;
- a session's new request for the same panel (its *slot*) releases the previous one; a job nobody waits for any
  more is cancelled (its next progress report raises ``Cancelled`` in the compute process);
- a job whose compute process died reports it, and a retry starts it again on the new process.
"""
from __future__ import annotations

import copy

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from compute.worker import CANCELLED, PROGRESS_TOPIC, USER_ERROR, cancel_event_name, decode, execute, process_facts
from compute.workspace import Source

log = logging.getLogger("featurescope.service")
RESULTS_KEPT = 512  # finished results kept in the server for re-rendering (display options) without a round trip
QUIET_S = 5.0  # background work waits this long after the last user request
REQUESTS_KEPT = 4_096  # (name, params) of the latest keys asked for: small dicts, bounded all the same
BACKGROUND = ("background", "precompute")  # the holder of background work: every user request comes first


class ComputeProcessDied(RuntimeError):
    """The compute process stopped while running a job (out of memory, a crash); a new one has been started."""


@dataclass
class JobState:
    """What the server knows of one job (shared by every session that asked for it)."""

    key: str
    name: str
    submission: str
    future: Any = None
    holders: set = field(default_factory=set)
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    fraction: float = 0.0
    text: str = "waiting for the compute process"
    partial: dict | None = None
    revision: int = 0  # counts the partial results sent: a poll waits for a newer one than its page shows
    state: str = "running"  # running | done | error | cancelled
    result: Any = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def handover_s(self) -> float | None:
        """Seconds from submission to the job starting in the compute process."""
        return None if self.started is None else self.started - self.submitted


@dataclass(frozen=True)
class Status:
    """A job as a panel sees it."""

    key: str
    state: str
    fraction: float = 0.0
    text: str = ""
    partial: dict | None = None
    result: Any = None
    error: BaseException | None = None
    revision: int = 0  # of ``partial``


def compute_process_environ(dask_environ: dict) -> dict:
    """The environment a spawned compute process starts with: Dask's (``distributed.nanny.pre-spawn-environ``),
    changed where it does not suit one long-lived process that runs torch."""
    # Dask starts workers with OMP_NUM_THREADS=1 (it expects one task per core); the compute process runs torch
    # and t-SNE, whose own thread pools should use every core rather than one.
    cores = str(os.cpu_count() or 1)
    environ = {**dask_environ, "OMP_NUM_THREADS": cores, "MKL_NUM_THREADS": cores, "OPENBLAS_NUM_THREADS": cores}
    # Dask also sets MALLOC_TRIM_THRESHOLD_=65536 so that idle workers hand memory back to the OS. Setting it
    # switches off glibc's adaptive mmap threshold: every tensor over 128 KiB is then a fresh mmap, zero-filled
    # page by page, and a layer's batched extraction ran 2 to 2.7x slower in the compute process than in a plain
    # one (bench.service, row 9b). One long-lived process needs no such trimming.
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def job_key(source: Source, name: str, params: dict) -> str:
    """The content key of a request: the same source, job and parameters give the same key."""
    text = json.dumps([source.__dict__, name, params], sort_keys=True, default=str)
    return name + "-" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class ComputeService:
    """A client of the compute cluster for one :class:`Source`, shared by every request thread of the server."""

    def __init__(self, client, source: Source, cluster=None):
        self.client = client
        self.source = source
        self.cluster = cluster
        self._lock = threading.RLock()
        self._news = threading.Condition(self._lock)  # notified when a job ends or sends a partial result
        self._jobs: dict[str, JobState] = {}
        self._by_submission: dict[str, JobState] = {}
        self._finished: "OrderedDict[str, JobState]" = OrderedDict()
        self._slots: dict[tuple, str] = {}
        # What each key asked for, kept longer than results: the export and "show code" name the job and its
        # parameters, and ask again (a cache read in the compute process) for a result no longer held here.
        self._requests: "OrderedDict[str, tuple[str, dict]]" = OrderedDict()
        self._last_user_request = 0.0  # time.time() of the last request not from background work
        client.subscribe_topic(PROGRESS_TOPIC, self._on_progress)

    # ------------------------------------------------------------------------------------------ start and stop

    @classmethod
    def start(cls, source: Source, address: str | None = None, processes: bool = True,
              threads_per_worker: int = 4) -> "ComputeService":
        """Connect to the cluster at ``address``, or start a local one: one worker process, ``spawn``-ed.

        ``processes=False`` runs the worker as threads of this process (tests of callbacks only: the server must
        then hold models, which the real app never does).
        """
        import dask
        from distributed import Client, LocalCluster

        dask.config.set({
            "distributed.nanny.pre-spawn-environ":
                compute_process_environ(dask.config.get("distributed.nanny.pre-spawn-environ", {})),
            # A job that kills its worker (out of memory) must fail once, not be retried on three fresh workers.
            "distributed.scheduler.allowed-failures": 0,
            "distributed.worker.multiprocessing-method": "spawn",
            "distributed.admin.low-level-log-length": 200,  # progress events kept by the scheduler
            "distributed.worker.daemon": False,  # lets a job start its own worker processes (image decoding)
        })
        if address:
            return cls(Client(address, timeout="20s"), source)
        cluster = LocalCluster(n_workers=1, threads_per_worker=threads_per_worker, processes=processes,
                               host="127.0.0.1",
                               # Dask's scheduler always serves HTTP (health, metrics): a free local port, not 8787.
                               dashboard_address="127.0.0.1:0", silence_logs=logging.WARNING)
        return cls(Client(cluster), source, cluster)

    def close(self, quietly: bool = False) -> None:
        """Stop the client and the local cluster; ``quietly`` keeps Dask's shutdown notes out of a one-line error."""
        if quietly:
            logging.getLogger("distributed").setLevel(logging.CRITICAL)
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def worker_facts(self) -> dict:
        """pid, CUDA state and threads of each compute process (address -> facts)."""
        return self.client.run(process_facts)

    # ------------------------------------------------------------------------------------------ jobs

    def submit(self, name: str, params: dict, holder: tuple | None = None, retry: bool = False) -> str:
        """Ask for job ``name`` with ``params``; returns its key. ``holder`` (session, slot) releases its previous job.

        A request equal to one running or finished shares it; ``retry`` starts a failed one again.
        """
        key = job_key(self.source, name, params)
        with self._lock:
            if holder != BACKGROUND:
                self._last_user_request = time.time()
            self._requests[key] = (name, copy.deepcopy(params))
            self._requests.move_to_end(key)
            while len(self._requests) > REQUESTS_KEPT:
                self._requests.popitem(last=False)
            if holder != BACKGROUND and self._slots.get(BACKGROUND) not in (None, key):
                self._release(self._slots.pop(BACKGROUND), BACKGROUND)  # a user's request stops background work
            if holder is not None:
                previous = self._slots.get(holder)
                if previous is not None and previous != key:
                    self._release(previous, holder)
                self._slots[holder] = key
            job = self._jobs.get(key) or self._finished.get(key)
            if job is not None and (job.state in ("error", "cancelled") and (retry or job.state == "cancelled")):
                self._forget(job)
                job = None
            if job is None:
                job = self._start(key, name, params)
            elif key in self._finished:
                self._finished.move_to_end(key)  # most recently used last: the oldest results go first
            if holder is not None and job.state == "running":
                job.holders.add(holder)
        return key

    def release(self, holder: tuple) -> None:
        """The holder (a session's panel) no longer waits for its job: it is cancelled if nobody else does."""
        with self._lock:
            key = self._slots.pop(holder, None)
            if key is not None:
                self._release(key, holder)

    def request(self, key: str) -> tuple[str, dict] | None:
        """(job name, parameters) that ``key`` stands for, or None when this server was never asked for it."""
        with self._lock:
            return self._requests.get(key)

    def current(self, holder: tuple) -> str | None:
        """The key of the job ``holder`` asked for last (None when it holds none)."""
        with self._lock:
            return self._slots.get(holder)

    def status(self, key: str) -> Status:
        with self._lock:
            job = self._jobs.get(key) or self._finished.get(key)
        if job is None:
            return Status(key, "missing", text="this result is no longer held; it will be computed again")
        if job.finished.is_set() and job.state == "running":
            self._collect(job)
        return Status(job.key, job.state, job.fraction, job.text, job.partial, job.result, job.error, job.revision)

    def wait(self, key: str, timeout: float, newer_than: int | None = None) -> Status:
        """The job's status once it has finished, or after ``timeout`` seconds, whichever comes first; with
        ``newer_than`` (a partial result's revision) also as soon as it sends a newer partial result."""
        with self._news:
            job = self._jobs.get(key) or self._finished.get(key)
            if job is not None:
                self._news.wait_for(lambda: job.finished.is_set()
                                    or (newer_than is not None and job.revision > newer_than), timeout)
        return self.status(key)

    def run(self, name: str, params: dict, timeout: float | None = None) -> Any:
        """Submit and wait for the result (raises the job's own error): for start-up checks and scripts."""
        key = self.submit(name, params)
        status = self.wait(key, timeout if timeout is not None else 1e9)
        if status.state == "running":
            raise TimeoutError(f"job {name} did not finish within {timeout} s")
        if status.error is not None:
            raise status.error
        return status.result

    def precompute(self, jobs: list[tuple[str, dict]], delay_s: float = 5.0) -> threading.Event:
        """Run ``jobs`` [(name, params)] in the background, lowest priority, one at a time: each starts only while no
        user job runs, and a user's request cancels it (it runs again later; its finished steps are cached, and a
        user asking for the very same job shares it instead). Returns an event set when all are done."""
        finished = threading.Event()

        def users_busy() -> bool:
            """A user job runs, or one was asked for in the last QUIET_S seconds: a class clicking through the
            page sends bursts of requests, and background work started in a gap only slows the next burst."""
            with self._lock:
                if time.time() - self._last_user_request < QUIET_S:
                    return True
                return any(job.holders != {BACKGROUND} for job in self._jobs.values() if job.state == "running")

        def work() -> None:
            time.sleep(delay_s)  # the first page's own requests go first
            queue = list(jobs)
            try:
                while queue:
                    if users_busy():
                        time.sleep(0.5)
                        continue
                    name, params = queue[0]
                    status = self.wait(self.submit(name, params, holder=BACKGROUND), 1e9)
                    if status.state != "cancelled":
                        queue.pop(0)
                    with self._lock:
                        if self._slots.get(BACKGROUND) == status.key:
                            del self._slots[BACKGROUND]
            except Exception:  # the cluster closed under it: background work simply stops
                log.debug("background precomputation stopped", exc_info=True)
            finished.set()

        threading.Thread(target=work, name="featurescope-precompute", daemon=True).start()
        return finished

    def handover_times(self) -> list[float]:
        """Seconds from submission to start in the compute process, for the jobs this server still holds."""
        with self._lock:
            jobs = list(self._jobs.values()) + list(self._finished.values())
        return [job.handover_s for job in jobs if job.handover_s is not None]

    # ------------------------------------------------------------------------------------------ internals

    def _start(self, key: str, name: str, params: dict) -> JobState:
        submission = f"{key}-{uuid.uuid4().hex[:8]}"
        job = JobState(key=key, name=name, submission=submission)
        self._jobs[key] = job
        self._by_submission[submission] = job
        # A unique Dask key per submission: a cancelled task that is still unwinding is never reused for a new one.
        job.future = self.client.submit(execute, self.source, name, params, submission, key=submission, pure=False)
        job.future.add_done_callback(lambda _future: self._finish(job))
        return job

    def _finish(self, job: JobState) -> None:
        job.finished.set()
        with self._news:
            self._news.notify_all()

    def _collect(self, job: JobState) -> None:
        """Fetch a finished future's result or error into the job (once, from a request thread)."""
        with self._lock:
            if job.state != "running":
                return
            future = job.future
        try:
            result = future.result(timeout=30)
            state, error = "done", None
            if isinstance(result, dict) and result.get(CANCELLED):
                state = "cancelled"
            elif isinstance(result, dict) and USER_ERROR in result:
                state, error, result = "error", result[USER_ERROR], None
        except Exception as exc:  # the job's own error, or the compute process dying under it
            result, state, error = None, "error", self._explain(exc)
        with self._lock:
            if job.state != "running":
                return
            job.result, job.state, job.error = (None if state == "cancelled" else result), state, error
            if state == "done":
                job.fraction, job.text, job.partial = 1.0, "done", None
            job.future = None  # frees the result in the cluster; the server keeps its own copy
            self._jobs.pop(job.key, None)
            self._by_submission.pop(job.submission, None)
            self._finished[job.key] = job
            while len(self._finished) > RESULTS_KEPT:
                self._finished.popitem(last=False)

    @staticmethod
    def _explain(exc: BaseException) -> BaseException:
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        # Our own cancellations never reach here (a cancelled job is collected as such), so a cancelled future
        # means the cluster dropped it: like a killed worker, that is the compute process failing, not the job.
        if isinstance(exc, (KilledWorker, FutureCancelledError)) or type(exc).__name__ == "CommClosedError":
            return ComputeProcessDied("the compute process stopped while working on this (out of memory or a "
                                      "crash); a new one has been started")
        return exc

    def _release(self, key: str, holder: tuple) -> None:
        job = self._jobs.get(key)
        if job is None:
            return
        job.holders.discard(holder)
        if not job.holders and job.state == "running":
            self._cancel(job)

    def _cancel(self, job: JobState) -> None:
        from distributed import Event

        job.state, job.text = "cancelled", "cancelled"
        self._forget(job)
        self._finished[job.key] = job  # a late poll reads "cancelled"; a new request for it starts it again
        future = job.future
        job.future = None
        job.finished.set()
        self._news.notify_all()  # the caller holds the lock

        def signal() -> None:  # off the request thread: two scheduler round trips
            try:
                Event(cancel_event_name(job.submission), client=self.client).set()
                if future is not None:
                    future.cancel()
            except Exception:  # the cluster is closing; nothing is left to cancel
                log.debug("cancel of %s failed", job.submission, exc_info=True)

        threading.Thread(target=signal, daemon=True).start()

    def _forget(self, job: JobState) -> None:
        if self._jobs.get(job.key) is job:
            del self._jobs[job.key]
        if self._finished.get(job.key) is job:
            del self._finished[job.key]
        self._by_submission.pop(job.submission, None)

    def _on_progress(self, event) -> None:
        """Worker events (runs on the client's event loop: only bookkeeping here)."""
        _timestamp, message = event
        with self._lock:
            job = self._by_submission.get(message.get("submission"))
            if job is None or job.state != "running":
                return
            if "started" in message:
                job.started = float(message["started"])
                job.text = "started"
                return
            # One bar per job, never backwards (a chain of steps inside a job maps into one scale).
            job.fraction = max(job.fraction, float(message.get("fraction", 0.0)))
            job.text = message.get("text", job.text)
            if "partial" in message:
                job.partial = decode(message["partial"])
                job.revision += 1
                self._news.notify_all()
