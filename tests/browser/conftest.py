"""A real server and a real headless Chromium for whole-journey tests."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FEATURESCOPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            process.log.seek(0)
            raise RuntimeError(f"server exited with {process.returncode}:\n{process.log.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"server at {url} did not answer within {timeout} s")


def start_server(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``python -m dashboard`` on a free port, counting the models it builds (its /_featurescope/audit route).
    A port found free can be taken before the server binds it (a Dask worker's or scheduler's own port, picked
    at random the same way): then the server says so and exits, and is started again on another port."""
    for attempt in range(3):
        try:
            return _start_server_once(*args, env=env)
        except PortTaken:
            if attempt == 2:
                raise


class PortTaken(RuntimeError):
    """The free port found for the server was taken before it bound it."""


def _start_server_once(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    # A file, not a pipe: nobody reads a pipe while the tests run, and a full pipe blocks the server.
    log = open(Path(os.environ["FEATURESCOPE_CACHE_DIR"]) / f"server-{port}.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "dashboard", "--port", str(port), *args],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "FEATURESCOPE_AUDIT": "1", **(env or {})},
    )
    process.log = log
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, process)
    except RuntimeError as error:
        if "Address already in use" in str(error) or "is in use by another program" in str(error):
            raise PortTaken(str(error)) from error
        raise
    return process, url


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def server_url(trained_model):
    """The dashboard on the built-in default (its model already trained by the session fixture)."""
    process, url = start_server()
    yield url
    stop_server(process)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install the Debian packages chromium and chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    yield page
    context.close()
