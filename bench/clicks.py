"""Rows as a person sees them: headless Chromium clicks a point and waits for the last attribution figure drawn.

One session clicking many points (warm), and eight sessions clicking at once.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.browser import ROOT, _stop, _wait_for_http, _wait_for_scatter, free_port
from bench.common import Row, met, ms, percentile, ratio
from tests.browser.helpers import click_scatter_point

ATTRIBUTION_DRAWN = """(index) => { const panels = document.querySelectorAll("[id*='attribution-graph'] .js-plotly-plot");
    return panels.length >= 3 && [...panels].every(gd => ((gd.layout.title || {}).text || '').includes('image #' + index)); }"""
DETAIL_DRAWN = "(i) => (document.querySelector('#detail-title') || {innerText: ''}).innerText.includes('#' + i + ' ')"


def _click_and_wait(page, rank: int) -> float:
    start = time.perf_counter()
    point = click_scatter_point(page, rank=rank)
    page.wait_for_function(DETAIL_DRAWN, arg=point["index"], timeout=120_000)
    page.wait_for_function(ATTRIBUTION_DRAWN, arg=point["index"], timeout=120_000)
    return time.perf_counter() - start


def click_rows(browser, cache_dir: Path, log_dir: Path, clicks: int) -> list[Row]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?embedding=pca"
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port), "--cache-dir",
                                    str(cache_dir)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            _wait_for_http(url, process, log_path, time.perf_counter() + 240)
            one = one_session(browser, url, process, log_path, clicks)
            eight = many_sessions(browser, url, process, log_path, 8)
        finally:
            _stop(process)
    cold, warm = one[:clicks], one[clicks:]
    p95_eight = percentile(eight, 95)
    return [
        Row("10a", f"Click → last attribution figure drawn, in headless Chromium, **warm**, one session ({len(warm)} "
                   "clicks, each on a point computed before; occlusion, saliency, SmoothGrad)",
            f"p50 {ms(percentile(warm, 50))}, p95 {ms(percentile(warm, 95))}", f"cold p50: {ms(percentile(cold, 50))}",
            ratio(percentile(warm, 50) / percentile(cold, 50)), "p95 < 1 s", met(percentile(warm, 95) < 1.0)),
        Row("10b", f"The same, **cold**: {len(cold)} clicks on points never computed (the jobs run)",
            f"p50 {ms(percentile(cold, 50))}, p95 {ms(percentile(cold, 95))}"),
        Row("11", "Eight sessions open the page together and each clicks a different point: click → its detail "
                  "and attribution figures",
            f"p50 {ms(percentile(eight, 50))}, p95 {ms(p95_eight)}; every session got its own figures", "", "",
            "p95 < 10 s", met(p95_eight < 10.0)),
    ]


def one_session(browser, url: str, process, log_path: Path, clicks: int) -> list[float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(url)
        _wait_for_scatter(page, process, log_path, time.perf_counter() + 240)
        # Each point twice, in two rounds: the second round finds its results computed (warm). Consecutive clicks are
        # on different points, so every click changes the selection.
        return [_click_and_wait(page, rank) for rank in (*range(clicks), *range(clicks))]
    finally:
        context.close()


def many_sessions(browser, url: str, process, log_path: Path, sessions: int) -> list[float]:
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(sessions)]
    try:
        pages = [context.new_page() for context in contexts]
        for page in pages:
            page.goto(url, wait_until="commit")
        for page in pages:
            _wait_for_scatter(page, process, log_path, time.perf_counter() + 240)
        starts, points = [], []
        for rank, page in enumerate(pages):
            starts.append(time.perf_counter())
            points.append(click_scatter_point(page, rank=rank))
        took = []
        for page, point, start in zip(pages, points, starts):
            page.wait_for_function(DETAIL_DRAWN, arg=point["index"], timeout=120_000)
            page.wait_for_function(ATTRIBUTION_DRAWN, arg=point["index"], timeout=120_000)
            took.append(time.perf_counter() - start)
        return took
    finally:
        for context in contexts:
            context.close()
