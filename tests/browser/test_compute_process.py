"""The web server runs no model; a class opens the page at once; the compute process may die; a lab's cluster."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.browser.conftest import ROOT, _free_port, start_server, stop_server
from tests.browser.helpers import (click_scatter_point, scatter_point, wait_for_detail, wait_for_scatter,
                                   wait_until_taken)

pytestmark = pytest.mark.browser

ATTRIBUTION_DRAWN = """(index) => { const panels = document.querySelectorAll("[id*='attribution-graph'] .js-plotly-plot");
    return panels.length >= 3 && [...panels].every(gd => ((gd.layout.title || {}).text || '').includes('image #' + index)); }"""


def audit(url: str) -> dict:
    with urllib.request.urlopen(url + "_featurescope/audit", timeout=10) as response:
        return json.load(response)


def test_the_server_never_imports_torch_so_it_loads_no_model_and_never_touches_cuda(page, server_url):
    """The whole click journey (scatter, details, attribution, inversion), then a look inside the server process."""
    page.goto(server_url + "?views=attribution,inversion")
    wait_for_scatter(page)
    clicked = click_scatter_point(page, rank=4)
    wait_for_detail(page, clicked["index"])
    page.wait_for_function(ATTRIBUTION_DRAWN, arg=clicked["index"], timeout=60_000)
    page.wait_for_function("(i) => ((document.querySelector('#inversion-figure .js-plotly-plot').layout.title || {})"
                           ".text || '').includes('image #' + i)", arg=clicked["index"], timeout=60_000)
    facts = audit(server_url)
    assert facts["torch_imported"] is False, "the web server imported torch"
    assert facts["modules_built"] == 0 and facts["cuda_initialized"] is False
    assert facts["workers"] and all(pid != facts["pid"] for pid in facts["workers"])
    assert not page.errors


# Each page times itself: from its last click on the scatter to its attribution maps drawn for that image, so the
# test's own stepping from page to page is not counted.
TIME_CLICK_TO_FIGURES = """(index) => {
    window.featurescopeClicked = null; window.featurescopeDrawn = null;
    document.addEventListener('pointerdown', () => { window.featurescopeClicked = performance.now(); }, true);
    const drawn = %s;
    const watch = setInterval(() => {
        if (window.featurescopeClicked !== null && drawn(index)) {
            window.featurescopeDrawn = performance.now(); clearInterval(watch);
        }
    }, 25);
}""" % ATTRIBUTION_DRAWN


# Eight pages in one headless Chromium render on the same two cores as the server and the compute process: with all
# eight clicks in the same instant p95 was 6.9-10.6 s on the 2-core CI machine; a class clicks within seconds.
CLICK_SPACING_S = 0.5


def test_eight_sessions_at_once_each_get_their_own_figures(browser, server_url):
    sessions = 8
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(sessions)]
    pages = [context.new_page() for context in contexts]
    errors: list[str] = []
    for page in pages:
        page.on("pageerror", lambda error: errors.append(str(error)))
    for page in pages:  # all opened together; each then waits for its own scatter
        page.goto(server_url, wait_until="commit")
    for page in pages:
        wait_for_scatter(page)
    targets = [scatter_point(page, rank=rank) for rank, page in enumerate(pages)]
    for page, target in zip(pages, targets):
        page.evaluate(TIME_CLICK_TO_FIGURES, target["index"])
    for page, target in zip(pages, targets):  # a class clicking together: eight clicks within 3.5 s
        page.mouse.click(target["x"], target["y"])
        time.sleep(CLICK_SPACING_S)
    took = []
    for page, target in zip(pages, targets):
        wait_until_taken(page, target)
        wait_for_detail(page, target["index"], timeout=60_000)
        page.wait_for_function(ATTRIBUTION_DRAWN, arg=target["index"], timeout=60_000)
        page.wait_for_function("() => window.featurescopeDrawn !== null", timeout=10_000)
        took.append(page.evaluate("() => (window.featurescopeDrawn - window.featurescopeClicked) / 1000"))
    assert len({target["index"] for target in targets}) == sessions
    for context in contexts:
        context.close()
    assert not errors
    assert all(t > 0 for t in took)  # each page timed its own click to its own figures
    # How fast is the bench's business (python -m bench.run, row 11; and bench.classroom for thirty sessions).
    print(f"click to figures, eight sessions at once: {[round(t, 2) for t in sorted(took)]} s")


def test_a_killed_compute_process_shows_retry_and_the_retry_succeeds(page, server_url):
    # Channel means of conv3: a job no other test asks for, so it is computed here, not found in the cache.
    page.goto(server_url + "?layer=conv3&embedding=tsne&features=pooled")
    page.wait_for_function("() => { const b = document.querySelector('#scatter-progress-block');"
                           " return b && b.style.display !== 'none'; }", timeout=60_000)
    (worker,) = audit(server_url)["workers"]
    os.kill(worker, signal.SIGKILL)
    page.wait_for_function("() => document.querySelector('#scatter-message').innerText.includes('compute process')",
                           timeout=60_000)
    page.wait_for_selector("#scatter-retry", state="visible")
    page.click("#scatter-retry")
    page.wait_for_function("() => ((document.querySelector('#scatter .js-plotly-plot').layout.title || {}).text || '')"
                           ".includes('conv3')", timeout=180_000)
    assert audit(server_url)["workers"] != [worker]
    assert not page.errors


@pytest.fixture
def lab_cluster(tmp_path):
    """A Dask scheduler and one worker started by hand, as a lab would start them on its GPU machines."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(_free_port()), "--dashboard-address", "127.0.0.1:0",
                                  "--scheduler-file", str(scheduler_file)], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not scheduler_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "4",
                               "--nworkers", "1", "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield address
    for process in (worker, scheduler):
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_app_works_on_a_separately_started_cluster(page, lab_cluster, trained_model):
    process, url = start_server("--cluster", lab_cluster, "--embedding", "pca")
    try:
        page.goto(url)
        wait_for_scatter(page)
        clicked = click_scatter_point(page, rank=0)
        wait_for_detail(page, clicked["index"])
        page.wait_for_function(ATTRIBUTION_DRAWN, arg=clicked["index"], timeout=60_000)
        facts = audit(url)
        assert facts["modules_built"] == 0 and facts["workers"]
        assert not page.errors
    finally:
        stop_server(process)
