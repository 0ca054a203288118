"""The only door to the compute process: submit a named job, follow its progress, get its result.

The web server holds no model, never touches CUDA and does not import torch. Model work runs in a long-lived compute
process, a Dask worker (one per device), which loads each model and data set once (``compute/jobs/workspace.py``).
Dask starts it with the ``spawn`` method, so nothing that touched CUDA or an OpenMP team is ever forked; its nanny
starts a new one when it dies. ``ComputeService.start(source, address=...)`` uses a cluster that already runs
instead (a lab's GPUs).

Jobs behave, for a class of thirty as for one person:
- identical requests share one computation (the job key is the request's content), and every waiter gets it;
- a session's new request for the same panel (its *slot*) releases the previous one; a job nobody waits for any
  more is cancelled (its next progress report raises ``Cancelled`` in the compute process);
- interactive jobs start at once; long jobs (``compute.specs.jobs.LANES``) take turns (``dashboard/admission.py``):
  a few run at once, the next from the session served longest ago, and a waiting panel says its place in line; a
  session holds at most ``LONG_PER_SESSION`` long jobs, a new one releasing its oldest. In the compute process a
  long job hands the device to interactive work between its steps (``compute/jobs/lanes.py``);
- a page that stops asking (closed, or its computer asleep) is forgotten after ``SESSION_TTL_S``: its jobs are
  released; finished results are kept up to ``RESULTS_BYTES``, the least recently used going first;
- a job whose compute process died reports it, and a retry starts it again on the new process; a job that failed
  for a bug reports it as such (``compute.errors.JobFailed``, the traceback in the compute process's log).
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

from compute.specs.jobs import LONG, lane_of
from compute.specs.source import Source
from compute.worker import (CANCELLED, FAILED, PROGRESS_TOPIC, USER_ERROR, cancel_event_name, decode_partial,
                            execute, process_facts)
from dashboard.admission import FairQueue, place_text

log = logging.getLogger("featurescope.service")
RESULTS_BYTES = 256 * 1024**2  # finished results kept in the server for re-rendering without a round trip
RESULTS_KEPT = 2_048  # and at most this many (many tiny results cost bookkeeping, not bytes)
QUIET_S = 5.0  # background work waits this long after the last user request
REQUESTS_KEPT = 4_096  # (name, params) of the latest keys asked for: small dicts, bounded all the same
BACKGROUND = ("background", "precompute")  # the holder of background work: every user request comes first
# Long jobs one session may hold at once; a new one releases its oldest. Above the long panels one page shows (six
# with every view open: a maximization, the smallest epsilon, the robustness curve, channel statistics, the dead
# channels' table, the evolution's embeddings), so a shared link that opens them all draws them all.
LONG_PER_SESSION = 8
SESSION_TTL_S = 60.0  # a session that asked nothing for this long (its page closed) has its jobs released
JANITOR_S = 5.0  # how often forgotten sessions are looked for


def result_bytes(value: Any) -> int:
    """Roughly how much memory a result holds: its arrays' and byte strings' sizes, a little for the rest."""
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, (bytes, str)):
        return len(value)
    if isinstance(value, dict):
        return 64 + sum(result_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return 64 + sum(result_bytes(item) for item in value)
    return 32


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
    measured: bool = True  # False while the running step reports no measurable progress (fraction None)
    text: str = "waiting for the compute process"
    partial: dict | None = None
    revision: int = 0  # counts the partial results sent: a poll waits for a newer one than its page shows
    state: str = "running"  # running | done | error | cancelled
    result: Any = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    params: dict = field(default_factory=dict)
    long: bool = False  # a long job: it waits for its turn (``queued``) before it is submitted
    queued: bool = False
    size: int = 0  # result_bytes of the result, once finished

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
    queued: bool = False  # a long job waiting for its turn (``text`` says its place in line)
    measured: bool = True  # False while the step running has no measurable progress: the bar shows no level


def restore_environ(values: dict[str, str | None]) -> None:
    """Set each variable of ``values`` in this process's os.environ back to its value (None: unset)."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def compute_process_environ(dask_environ: dict, workers: int = 1) -> dict:
    """The environment a spawned compute process starts with: Dask's (``distributed.nanny.pre-spawn-environ``),
    changed where it does not suit a long-lived process that runs torch, one of ``workers`` on this machine."""
    # Dask starts workers with OMP_NUM_THREADS=1 (it expects one task per core); the compute process runs torch
    # and t-SNE, whose own thread pools should use every core rather than one (their share, with several).
    cores = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
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

    def __init__(self, client, source: Source, cluster=None, long_slots: int | None = None,
                 session_ttl_s: float = SESSION_TTL_S, results_bytes: int = RESULTS_BYTES,
                 janitor_s: float = JANITOR_S):
        self.client = client
        self.source = source
        self.cluster = cluster
        self._environ_before: dict[str, str | None] = {}  # start(): this process's values of the workers' variables
        self.session_ttl_s = session_ttl_s
        self.results_bytes = results_bytes
        self._lock = threading.RLock()
        self._news = threading.Condition(self._lock)  # notified when a job ends or sends a partial result
        self._jobs: dict[str, JobState] = {}
        self._by_submission: dict[str, JobState] = {}
        self._finished: "OrderedDict[str, JobState]" = OrderedDict()
        self._finished_bytes = 0
        self._slots: dict[tuple, str] = {}
        self._sessions: dict[Any, float] = {}  # session -> time.monotonic() it last asked anything
        self._long_holders: dict[Any, "OrderedDict[tuple, str]"] = {}  # session -> its holders of long jobs, oldest first
        if long_slots is None:
            try:
                long_slots = max(1, len(client.scheduler_info().get("workers", {})))
            except Exception:  # a client without a scheduler (tests of callbacks): one slot
                long_slots = 1
        self._queue = FairQueue(long_slots)
        # What each key asked for, kept longer than results: the export and "show code" name the job and its
        # parameters, and ask again (a cache read in the compute process) for a result no longer held here.
        self._requests: "OrderedDict[str, tuple[str, dict]]" = OrderedDict()
        self._last_user_request = 0.0  # time.time() of the last request not from background work
        self._closed = threading.Event()
        client.subscribe_topic(PROGRESS_TOPIC, self._on_progress)
        threading.Thread(target=self._janitor, args=(janitor_s,), name="featurescope-janitor", daemon=True).start()

    # ------------------------------------------------------------------------------------------ start and stop

    @classmethod
    def start(cls, source: Source, address: str | None = None, processes: bool = True,
              threads_per_worker: int = 8, workers: int = 1, **options) -> "ComputeService":
        """Connect to the cluster at ``address``, or start a local one: ``workers`` worker processes, ``spawn``-ed
        (an image folder's features are then extracted by all of them, ``compute/jobs/extraction.py``).

        ``processes=False`` runs the worker as threads of this process (tests of callbacks only: the server must
        then hold models, which the real app never does). ``options`` go to the service (``long_slots``, ...).
        """
        import dask
        from distributed import Client, LocalCluster

        dask.config.set({
            "distributed.nanny.pre-spawn-environ":
                compute_process_environ(dask.config.get("distributed.nanny.pre-spawn-environ", {}), workers),
            # A job that kills its worker (out of memory) must fail once, not be retried on three fresh workers.
            "distributed.scheduler.allowed-failures": 0,
            "distributed.worker.multiprocessing-method": "spawn",
            "distributed.admin.low-level-log-length": 200,  # progress events kept by the scheduler
            "distributed.worker.daemon": False,  # lets a job start its own worker processes (image decoding)
        })
        if address:
            return cls(Client(address, timeout="20s"), source, **options)
        # Threads: the interactive jobs of a class at once, plus the long ones admitted (they step aside for the
        # interactive ones at every step, in the compute process).
        # Dask's nanny writes the compute processes' environment into this process's os.environ (when it starts
        # them, and again when it restarts one), and a later nanny reads os.environ before its config: a second
        # service in this process (tests) would inherit this one's thread count. This process's own values are
        # given back once the workers are started, and again when the service closes.
        environ_before = {name: os.environ.get(name)
                          for name in dask.config.get("distributed.nanny.pre-spawn-environ", {})}
        try:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=processes,
                                   host="127.0.0.1",
                                   # Dask's scheduler always serves HTTP (health, metrics): a free local port.
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.WARNING)
        finally:
            restore_environ(environ_before)
        service = cls(Client(cluster), source, cluster, **options)
        service._environ_before = environ_before
        return service

    def close(self, quietly: bool = False) -> None:
        """Stop the client and the local cluster; ``quietly`` keeps Dask's shutdown notes out of a one-line error."""
        self._closed.set()
        if quietly:
            logging.getLogger("distributed").setLevel(logging.CRITICAL)
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
            restore_environ(self._environ_before)

    def worker_facts(self) -> dict:
        """pid, CUDA state and threads of each compute process (address -> facts)."""
        return self.client.run(process_facts)

    # ------------------------------------------------------------------------------------------ sessions

    def touch(self, session) -> None:
        """The page of ``session`` is still open (every request of it says so; the page's heartbeat too)."""
        if session is None or session == BACKGROUND[0]:
            return
        with self._lock:
            self._sessions[session] = time.monotonic()

    def forget_session(self, session) -> None:
        """Release every job of ``session`` (its page closed): those nobody else waits for are cancelled."""
        with self._lock:
            for holder in [holder for holder in self._slots if holder[0] == session]:
                self._release(self._slots.pop(holder), holder)
            self._sessions.pop(session, None)
            self._long_holders.pop(session, None)

    def census(self) -> dict:
        """What the server holds now: sessions, slots, jobs running and waiting, finished results and their bytes."""
        with self._lock:
            return {"sessions": len(self._sessions), "slots": len(self._slots),
                    "running": sum(1 for job in self._jobs.values() if not job.queued),
                    "queued": sum(1 for job in self._jobs.values() if job.queued),
                    "results": len(self._finished), "result_bytes": self._finished_bytes,
                    "requests": len(self._requests)}

    def _janitor(self, every_s: float) -> None:
        while not self._closed.wait(every_s):
            deadline = time.monotonic() - self.session_ttl_s
            with self._lock:
                gone = [session for session, seen in self._sessions.items() if seen < deadline]
            for session in gone:
                log.info("session %s asked nothing for %.0f s: its jobs are released", session, self.session_ttl_s)
                self.forget_session(session)

    # ------------------------------------------------------------------------------------------ jobs

    def submit(self, name: str, params: dict, holder: tuple | None = None, retry: bool = False) -> str:
        """Ask for job ``name`` with ``params``; returns its key. ``holder`` (session, slot) releases its previous job.

        A request equal to one running or finished shares it; ``retry`` starts a failed one again.
        """
        key = job_key(self.source, name, params)
        with self._lock:
            if holder is not None:
                self.touch(holder[0])
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
                job = self._create(key, name, params, holder)
            elif key in self._finished:
                self._finished.move_to_end(key)  # most recently used last: the oldest results go first
            if holder is not None and job.state == "running":
                job.holders.add(holder)
                if job.long and holder != BACKGROUND:
                    self._limit_long_jobs(holder, key)
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
            self.touch(holder[0])
            return self._slots.get(holder)

    def status(self, key: str) -> Status:
        with self._lock:
            job = self._jobs.get(key) or self._finished.get(key)
            if job is not None and job.queued:
                place = self._queue.place(job.submission)
                text = f"waiting for its turn: {place_text(*place)}" if place else "waiting for its turn"
                return Status(job.key, "running", 0.0, text, None, None, None, job.revision, queued=True)
        if job is None:
            return Status(key, "missing", text="this result is no longer held; it will be computed again")
        if job.finished.is_set() and job.state == "running":
            self._collect(job)
        return Status(job.key, job.state, job.fraction, job.text, job.partial, job.result, job.error, job.revision,
                      measured=job.measured)

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

    def _create(self, key: str, name: str, params: dict, holder: tuple | None) -> JobState:
        """A new job: submitted at once if interactive, else in line for its turn."""
        job = JobState(key=key, name=name, submission=f"{key}-{uuid.uuid4().hex[:8]}", params=params,
                       long=lane_of(name) == LONG)
        self._jobs[key] = job
        if not job.long:
            self._submit(job)
            return job
        job.queued, job.text = True, "waiting for its turn"
        self._by_submission[job.submission] = job
        # The queue knows a job by its submission: a cancelled run of a key ending late must not end a new one's turn.
        self._queue.add(job.submission, name, holder[0] if holder else None)
        self._admit()
        return job

    def _submit(self, job: JobState) -> None:
        job.submitted = time.time()  # for a long job: when its turn came
        self._by_submission[job.submission] = job
        # A unique Dask key per submission: a cancelled task that is still unwinding is never reused for a new one.
        job.future = self.client.submit(execute, self.source, job.name, job.params, job.submission,
                                        key=job.submission, pure=False)
        job.future.add_done_callback(lambda _future: self._finish(job))

    def _admit(self) -> None:
        """Start the waiting long jobs whose turn it is (the caller holds the lock)."""
        for submission in self._queue.next_to_start():
            job = self._by_submission.get(submission)
            self._queue.started(submission)
            if job is None or not job.queued:  # released while waiting
                self._queue.ended(submission, completed=False)
                continue
            job.queued, job.text = False, "waiting for the compute process"
            self._submit(job)

    def _limit_long_jobs(self, holder: tuple, key: str) -> None:
        """Remember ``holder``'s long job; past LONG_PER_SESSION in its session, release the session's oldest."""
        held = self._long_holders.setdefault(holder[0], OrderedDict())
        held.pop(holder, None)
        held[holder] = key
        for other, other_key in list(held.items()):
            if self._slots.get(other) != other_key or self._jobs.get(other_key) is None:
                del held[other]  # that panel moved on, or its job ended
        while len(held) > LONG_PER_SESSION:
            oldest, oldest_key = held.popitem(last=False)
            log.info("session %s holds more than %d long jobs: its oldest (%s) is released", holder[0],
                     LONG_PER_SESSION, oldest_key)
            if self._slots.get(oldest) == oldest_key:
                del self._slots[oldest]
            self._release(oldest_key, oldest)

    def _finish(self, job: JobState) -> None:
        job.finished.set()
        with self._news:
            if job.long:
                self._queue.ended(job.submission, completed=job.state == "running")
                self._admit()
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
            elif isinstance(result, dict) and FAILED in result:
                state, error, result = "error", result[FAILED], None
        except Exception as exc:  # the compute process dying under it, or the cluster failing the task
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
            self._keep(job)

    def _keep(self, job: JobState) -> None:
        """Keep a finished job's result, within RESULTS_BYTES and RESULTS_KEPT (least recently used out first)."""
        self._discard_finished(job.key)
        job.size = result_bytes(job.result)
        self._finished[job.key] = job
        self._finished_bytes += job.size
        while self._finished and (self._finished_bytes > self.results_bytes or len(self._finished) > RESULTS_KEPT):
            _key, oldest = self._finished.popitem(last=False)
            self._finished_bytes -= oldest.size

    def _discard_finished(self, key: str) -> None:
        old = self._finished.pop(key, None)
        if old is not None:
            self._finished_bytes -= old.size

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
        was_queued, job.queued = job.queued, False
        self._forget(job)
        self._keep(job)  # a late poll reads "cancelled"; a new request for it starts it again
        future = job.future
        job.future = None
        job.finished.set()
        self._news.notify_all()  # the caller holds the lock
        if was_queued:  # it never reached the compute process
            self._queue.remove(job.submission)
            return

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
            self._discard_finished(job.key)
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
            # One bar per job, never backwards (a chain of steps inside a job maps into one scale); a step without
            # measurable progress (fraction None) keeps the bar's level but says the level means nothing meanwhile.
            fraction = message.get("fraction", 0.0)
            job.measured = fraction is not None
            if fraction is not None:
                job.fraction = max(job.fraction, float(fraction))
            job.text = message.get("text", job.text)
            if job.long:
                self._queue.progressed(job.submission, job.fraction)
            if "partial" in message:
                job.partial = decode_partial(message["partial"])
                job.revision += 1
                self._news.notify_all()
