"""Rows on the compute process: click -> panels through the service (server side), and the hand-over cost.

Each panel is timed as its callback runs it: the view's ``request``, ``service.submit`` + ``wait`` (the job in the
compute process, a spawned worker), and the view's ``render`` of the figures.
"""
from __future__ import annotations

import uuid

import numpy as np

from bench.common import Row, median, met, ms, percentile, ratio, timed_each
from compute import activations
from dashboard.config import AppConfig
from dashboard.service import ComputeService
from dashboard.views import VIEWS
from dashboard.views import attribution as attribution_view
from dashboard.views import details
from dashboard.views.context import Meta, ViewContext

DETAIL_LAYER = "relu2"
ATTRIBUTION_METHODS = ["occlusion", "saliency", "smoothgrad"]


def panel_click(service: ComputeService, request, render) -> None:
    """What a panel's callback does for one click, with no fast-path shortcut: submit, wait, render."""
    status = service.wait(service.submit(request.job, request.params), 120)
    if status.state != "done":
        raise RuntimeError(f"{request.job}: {status.state} {status.error}")
    render(status.result, request.context)


def service_rows(cache_dir: str, model, dataset, settings) -> list[Row]:
    config = AppConfig(cache_dir=cache_dir)
    service = ComputeService.start(config.source())
    try:
        meta = Meta.from_description(service.run("describe", {}, timeout=300))
        context = ViewContext(config, service, meta, VIEWS)
        rows = detail_rows(context, model, dataset, settings)
        rows += attribution_rows(context, dataset, settings)
        rows += handover_rows(service)
        rows += extraction_rows(service, settings)
    finally:
        service.close()
    return rows


def detail_rows(context: ViewContext, model, dataset, settings) -> list[Row]:
    rng = np.random.default_rng(0)
    indices = [int(i) for i in rng.choice(len(dataset), settings.detail_indices + 1, replace=False)]
    render = details.details_render(context)

    def click(index: int) -> None:
        panel_click(context.service, details.details_request({"index": index}, DETAIL_LAYER, "shared"), render)

    click(indices[0])  # warm-up: model load in the compute process, plotly templates here
    seconds = timed_each(click, indices[1:])
    compute = timed_each(lambda i: activations.single(model, dataset.image(i), [DETAIL_LAYER]), indices[1:])
    p50, p95 = percentile(seconds, 50), percentile(seconds, 95)
    return [Row("2", f"Click → detail panels, server side through the compute process (request, job, render; "
                     f"layer {DETAIL_LAYER}, {len(seconds)} different samples)",
                f"p50 {ms(p50)}, p95 {ms(p95)}", f"its forward alone (`activations.single`): p50 {ms(median(compute))}",
                ratio(p50 / median(compute)), "p50 and p95 < 200 ms", met(p95 < 0.2 and p50 < 0.2))]


def attribution_rows(context: ViewContext, dataset, settings) -> list[Row]:
    request_for = attribution_view.attribution_request(context)
    render = attribution_view.attribution_render(context)

    def click(index: int) -> None:
        request = request_for({"index": index}, ATTRIBUTION_METHODS, [], None, [], "overlay", 0.6, 0, [])
        panel_click(context.service, request, render)

    rng = np.random.default_rng(1)
    indices = [int(i) for i in rng.choice(len(dataset), settings.attribution_indices + 1, replace=False)]
    click(indices[0])
    cold = timed_each(click, indices[1:])
    warm = timed_each(click, indices[1:] * settings.attribution_warm_passes)
    cold50, warm50, warm95 = percentile(cold, 50), percentile(warm, 50), percentile(warm, 95)
    return [
        Row("3a", f"Click → all attribution panels ({', '.join(ATTRIBUTION_METHODS)}), **warm**, server side: "
                  f"{len(warm)} clicks over {len(indices) - 1} samples already computed",
            f"p50 {ms(warm50)}, p95 {ms(warm95)}", f"cold p50: {ms(cold50)}", ratio(warm50 / cold50),
            "p50 and p95 < 300 ms", met(warm50 < 0.3 and warm95 < 0.3)),
        Row("3b", f"Click → all attribution panels, **cold** (first computation of {len(cold)} new samples)",
            f"p50 {ms(cold50)}, p95 {ms(percentile(cold, 95))}"),
    ]


def handover_rows(service: ComputeService, jobs: int = 40) -> list[Row]:
    """Submission to start in the compute process, for jobs that do nothing else (``diagnostics.count``)."""
    before = len(service.handover_times())
    for _ in range(jobs):
        service.run("diagnostics.count", {"tag": uuid.uuid4().hex, "steps": 1}, timeout=60)
    times = service.handover_times()[before:]
    p50 = percentile(times, 50)
    return [Row("9", f"Hand-over: a click's job submitted → running in the compute process ({len(times)} jobs, "
                     "Dask LocalCluster, one spawned worker)",
                f"p50 {ms(p50)}, p95 {ms(percentile(times, 95))}", "", "", "p50 < 20 ms", met(p50 < 0.02))]


EXTRACTION_LAYER = "conv3"


def extraction_seconds(layer: str, repeats: int) -> float:
    """Median seconds of one layer's batched extraction over the built-in digits, wherever this runs (it is sent to
    compute processes as a task)."""
    from bench.common import timed
    from compute import models
    from compute.data import load
    from compute.extraction import dataset_features

    model, dataset = models.load("digits-cnn"), load("digits")
    return median(timed(lambda: dataset_features(model, dataset, layer, "flat"), repeats))


def _dask_default_worker_seconds(layer: str, repeats: int) -> float:
    """The same in a compute process started with Dask's own environment (MALLOC_TRIM_THRESHOLD_=65536), as the
    app started it before: the baseline."""
    import dask
    from distributed import Client, LocalCluster

    from dashboard.service import compute_process_environ

    environ = {**compute_process_environ({}), "MALLOC_TRIM_THRESHOLD_": 65536}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        with LocalCluster(n_workers=1, threads_per_worker=4, dashboard_address="127.0.0.1:0") as cluster, \
                Client(cluster) as client:
            return client.submit(extraction_seconds, layer, repeats, pure=False).result()


def extraction_rows(service: ComputeService, settings) -> list[Row]:
    """A layer's extraction (the step before a new layer's first scatter) in the compute process, against the same
    in a compute process with Dask's default allocator settings; in this process for reference."""
    repeats = settings.fast_repeats
    ours = service.client.submit(extraction_seconds, EXTRACTION_LAYER, repeats, pure=False).result()
    dask_default = _dask_default_worker_seconds(EXTRACTION_LAYER, repeats)
    here = extraction_seconds(EXTRACTION_LAYER, repeats)
    return [Row("9b", f"Extraction of {EXTRACTION_LAYER} over the digits in the compute process (baseline: a worker "
                      f"with Dask's MALLOC_TRIM_THRESHOLD_; in this process: {ms(here)})",
                ms(ours), ms(dask_default), ratio(ours / dask_default), "≤ 1.2× in this process",
                met(ours <= 1.2 * here))]
