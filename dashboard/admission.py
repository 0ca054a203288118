"""Long jobs in turns: which waiting long job of which session the compute process takes next, and what a waiting
panel can say about its place ("2nd in line, about 20 s").

Plain bookkeeping, no Dask and no threads (``dashboard/service.py`` holds the lock and starts what this picks):
- a few long jobs run at once (``slots``, one per compute process by default: on one device two long jobs only
  share it, so running them one after another finishes the first sooner and the last no later);
- the next one comes from the session served longest ago, so no session queues ahead of everyone; a session's own
  jobs keep their order;
- a job's expected length is the median of the last runs of the same job name (or a default until one has run).
"""
from __future__ import annotations

import statistics
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Hashable, Iterable

DEFAULT_SECONDS = 15.0  # the expected length of a long job nobody has run yet
KEPT_DURATIONS = 9  # runs per job name the expectation is taken from


@dataclass
class Waiting:
    """A long job waiting for a slot: its key, job name, the session that asked first, and when."""

    key: str
    name: str
    session: Hashable
    since: float = field(default_factory=time.monotonic)


@dataclass
class Running:
    key: str
    name: str
    started: float
    fraction: float = 0.0


class FairQueue:
    """The long jobs waiting and running, and the order in which waiting ones start."""

    def __init__(self, slots: int = 1):
        self.slots = max(1, int(slots))
        self._waiting: dict[str, Waiting] = {}
        self._running: dict[str, Running] = {}
        self._served: dict[Hashable, float] = {}  # session -> when its last job started
        self._durations: dict[str, deque] = defaultdict(lambda: deque(maxlen=KEPT_DURATIONS))

    # ------------------------------------------------------------------------------------------ changes

    def add(self, key: str, name: str, session: Hashable) -> None:
        if key not in self._waiting and key not in self._running:
            self._waiting[key] = Waiting(key, name, session)

    def remove(self, key: str) -> None:
        """A waiting job nobody wants any more (it never started)."""
        self._waiting.pop(key, None)

    def started(self, key: str) -> None:
        waiting = self._waiting.pop(key)
        self._running[key] = Running(key, waiting.name, time.monotonic())
        self._served[waiting.session] = time.monotonic()

    def progressed(self, key: str, fraction: float) -> None:
        if key in self._running:
            self._running[key].fraction = max(0.0, min(1.0, float(fraction)))

    def ended(self, key: str, completed: bool) -> None:
        """A running job ended; a completed one teaches how long its kind takes."""
        running = self._running.pop(key, None)
        if running is not None and completed:
            self._durations[running.name].append(time.monotonic() - running.started)

    # ------------------------------------------------------------------------------------------ questions

    def free_slots(self) -> int:
        return self.slots - len(self._running)

    def order(self) -> list[Waiting]:
        """The waiting jobs in the order they will start: sessions in turns (the one served longest ago first, a
        session never served before the others), each session's own jobs first come, first served."""
        by_session: dict[Hashable, deque] = defaultdict(deque)
        for waiting in sorted(self._waiting.values(), key=lambda w: w.since):
            by_session[waiting.session].append(waiting)
        # Rounds: each round takes one job of every session that has any, the session served longest ago first.
        sessions = sorted(by_session, key=lambda s: (self._served.get(s, float("-inf")), by_session[s][0].since))
        order: list[Waiting] = []
        while sessions:
            for session in list(sessions):
                order.append(by_session[session].popleft())
                if not by_session[session]:
                    sessions.remove(session)
        return order

    def next_to_start(self) -> list[str]:
        """Keys of the waiting jobs that may start now (as many as free slots)."""
        return [waiting.key for waiting in self.order()[:max(0, self.free_slots())]]

    def expected_seconds(self, name: str) -> float:
        durations = self._durations.get(name)
        return statistics.median(durations) if durations else DEFAULT_SECONDS

    def _left(self, running: Running, now: float) -> float:
        elapsed = now - running.started
        expected = self.expected_seconds(running.name)
        if running.fraction > 0.05:
            expected = elapsed / running.fraction
        return max(1.0, expected - elapsed)

    def place(self, key: str) -> tuple[int, float] | None:
        """(1-based place in line, seconds until it starts, roughly) of a waiting job; None when it is not waiting."""
        if key not in self._waiting:
            return None
        now = time.monotonic()
        finishing = sorted(self._left(running, now) for running in self._running.values())
        # Slots free up as running jobs end; each waiting job ahead takes the earliest free slot.
        slots = (finishing + [0.0] * self.slots)[:self.slots]
        for position, waiting in enumerate(self.order(), start=1):
            start = min(slots)
            if waiting.key == key:
                return position, start
            slots[slots.index(start)] = start + self.expected_seconds(waiting.name)
        return None

    def waiting_keys(self) -> Iterable[str]:
        return list(self._waiting)

    def running_keys(self) -> Iterable[str]:
        return list(self._running)


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def place_text(place: int, seconds: float) -> str:
    """What a waiting panel says: "2nd in line, about 20 s" (minutes past two)."""
    if seconds < 90:
        when = f"about {max(1, round(seconds / 5) * 5 if seconds >= 10 else round(seconds))} s"
    else:
        when = f"about {round(seconds / 60)} min"
    return f"{ordinal(place)} in line, {when}"
