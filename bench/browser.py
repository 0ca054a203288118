"""Start the dashboard as a real server and time how long a headless Chromium waits for the scatter's points."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.browser.helpers import SCATTER_READY

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FEATURESCOPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# The flags tests/browser/conftest.py uses (headless Chromium as root, no network side traffic).
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PAGE_TIMEOUT_S = 240.0


@dataclass
class PageTiming:
    """Seconds from the server process's start until it answered HTTP, and until the scatter had points.

    ``restarts``: attempts thrown away because the server was killed by a signal this code did not send.
    """

    http_s: float
    scatter_s: float
    restarts: int = 0


class ServerKilled(RuntimeError):
    """The server died from a signal nobody here sent (on a shared machine, someone else's clean-up)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_alive(process: subprocess.Popen, log_path: Path) -> None:
    if process.poll() is None:
        return
    kind = ServerKilled if process.returncode < 0 else RuntimeError
    raise kind(f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")


def _wait_for_http(url: str, process: subprocess.Popen, log_path: Path, deadline: float) -> None:
    while time.perf_counter() < deadline:
        _check_alive(process, log_path)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server at {url} did not answer in time; log:\n{log_path.read_text()[-3000:]}")


def _wait_for_scatter(page, process: subprocess.Popen, log_path: Path, deadline: float) -> None:
    """Wait for SCATTER_READY in one-second slices, so a dead server is noticed at once."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    while True:
        _check_alive(process, log_path)
        try:
            page.wait_for_function(SCATTER_READY, timeout=1000, polling=20)
            return
        except PlaywrightTimeout:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no scatter within {PAGE_TIMEOUT_S:.0f} s; log:\n{log_path.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Terminate the server and then any background-job processes it forked (by their ids)."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    for child in children:
        try:
            child.terminate()
            child.wait(timeout=5)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            child.kill()


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright browser object), closed on exit."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def time_to_scatter(browser, cache_dir: Path, log_dir: Path, empty_cache: bool = False,
                    attempts: int = 3) -> PageTiming:
    """Start ``python -m dashboard`` on ``cache_dir`` and time it until a fresh browser context shows the scatter.

    The clock starts just before the process is spawned, so it includes imports, (for an empty cache) training
    the built-in model and the default t-SNE, and the page's own loading. The server is stopped afterwards.
    A server killed from outside is started again (with ``empty_cache``, on an emptied cache dir).
    """
    for attempt in range(attempts):
        if empty_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
            cache_dir.mkdir(parents=True)
        try:
            http_s, scatter_s = _one_page_load(browser, cache_dir, log_dir)
            return PageTiming(http_s, scatter_s, restarts=attempt)
        except ServerKilled:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _one_page_load(browser, cache_dir: Path, log_dir: Path) -> tuple[float, float]:
    """(seconds to HTTP 200, seconds to scatter points) of one server start; the server is stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "w") as log:  # a file, not a pipe: nobody reads a pipe meanwhile and a full one blocks
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--port", str(port), "--cache-dir", str(cache_dir)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            _wait_for_http(url, process, log_path, start + PAGE_TIMEOUT_S)
            http_s = time.perf_counter() - start
            context = browser.new_context(viewport={"width": 1400, "height": 1000})  # empty browser cache
            try:
                page = context.new_page()
                page.goto(url)
                _wait_for_scatter(page, process, log_path, start + PAGE_TIMEOUT_S)
                scatter_s = time.perf_counter() - start
            finally:
                context.close()
        finally:
            _stop(process)
    return http_s, scatter_s
