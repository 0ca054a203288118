"""Timing helpers and the result table shared by the benchmark rows."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch


def sync() -> None:
    """Wait for queued GPU work, so a timer around a CUDA call measures the work and not just its launch."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` over ``repeats`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


def timed_interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, their calls alternated (a b a b ...) so that drifts in the machine's
    speed (other load, heat, caches) hit the functions being compared alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds[name] += timed(fn, 1, warmup=0)
    return {name: median(values) for name, values in seconds.items()}


T = TypeVar("T")


def timed_each(fn: Callable[[T], Any], items: Iterable[T]) -> list[float]:
    """Seconds of ``fn(item)`` for each item, once each and without warm-up (warm up before calling this)."""
    return [timed(lambda item=item: fn(item), 1, warmup=0)[0] for item in items]


def timed_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of a single call of ``fn``, with no warm-up (for cold and first-call timings)."""
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - start, result


@contextmanager
def cpu_share() -> Iterator[list[float]]:
    """Yield a list that holds, after the block, this process's CPU seconds per wall second during it.

    For single-threaded Python work, well below 1 means the process waited for a core (other load).
    """
    result: list[float] = []
    wall, cpu = time.perf_counter(), time.process_time()
    yield result
    result.append((time.process_time() - cpu) / max(1e-9, time.perf_counter() - wall))


class OtherLoad:
    """CPU time the rest of the machine used while this run went on (from /proc/stat, Linux only).

    Our own share is this process plus the children it waited for (servers, the browser driver); what is left
    is other people's work competing for the same cores.
    """

    def __init__(self) -> None:
        self.start = (time.perf_counter(), self._busy(), self._own())

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(v) for v in stat.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def share(self) -> float | None:
        """Fraction of all cores' time used by other processes since construction (None if unknown)."""
        wall, busy, own = self.start
        now = self._busy()
        if busy is None or now is None:
            return None
        others = (now - busy) - (self._own() - own)
        return max(0.0, others) / ((time.perf_counter() - wall) * (os.cpu_count() or 1))


def median(seconds: list[float]) -> float:
    return float(np.median(seconds))


def percentile(seconds: list[float], q: float) -> float:
    return float(np.percentile(seconds, q))


def ms(seconds: float) -> str:
    """Seconds as milliseconds with a sensible number of digits."""
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def sec(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def auto(seconds: float) -> str:
    """Milliseconds below one second, seconds above."""
    return ms(seconds) if seconds < 1 else sec(seconds)


def ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 100 else f"{value:.0f}×"


def met(ok: bool | None) -> str:
    """yes / no, or a dash where a row has no target."""
    return "—" if ok is None else ("yes" if ok else "**no**")


@dataclass
class Row:
    """One line of the result table; every field is already formatted text."""

    key: str
    what: str
    measured: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: str = "—"


HEADER = ("#", "what", "measured", "baseline (same run)", "ratio", "target", "met")


def markdown_table(rows: list[Row]) -> str:
    """The rows as a GitHub-flavoured Markdown table (pipes inside cells escaped)."""

    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [cells(HEADER), cells(["---"] * len(HEADER))]
    lines += [cells((r.key, r.what, r.measured, r.baseline, r.ratio, r.target, r.met)) for r in rows]
    return "\n".join(lines)


def photo_like_folder(root, count: int, width: int, height: int, field: tuple[int, int] = (8, 8)):
    """``count`` JPEGs of ``width`` x ``height`` in two classes: smooth random colour fields (a ``field`` of random
    pixels upsampled), so they compress and decode like photos."""
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(0)
    for k in range(count):
        folder = root / f"class_{k % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (*field, 3), dtype=np.uint8)
        Image.fromarray(small).resize((width, height), Image.BICUBIC).save(folder / f"{k:06d}.jpg", quality=90)
    return root
