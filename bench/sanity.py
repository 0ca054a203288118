"""The sanity check's benchmark: ``python -m bench.sanity [--quick]``.

Every attribution method at the page's defaults on the built-in digits CNN, trained and untrained (epoch 0), for
one image: the batched way the job runs it (``compute.passes.evaluate``: one gradient pass and one forward pass per
model for all five methods) against the unbatched way (each method on each model on its own, as before), measured
in the same run, calls alternated, on different images each round. Then the whole job (``attribution.maps`` with
``sanity``, as the page asks for it: image, both models, maps, correlations) on images it has not seen, cold.
With ``--browser``, the button itself in headless Chromium until the five untrained maps are drawn. Target: under
5 s on 2 cores. The CPU time other processes used meanwhile is printed: the machine is shared.
"""
from __future__ import annotations

import argparse
import time

import torch

from bench.common import OtherLoad, Row, markdown_table, met, ms, ratio, sec, timed_interleaved
from compute import attribution, data, models, passes
from compute.specs.attribution import METHODS, suggested_params
from compute.specs.params import resolve


def default_methods(dataset) -> dict[str, dict]:
    """Every method with the page's starting parameters for this data set (occlusion's fill: the data mean)."""
    methods = {name: suggested_params(name, tuple(dataset.image_shape)) for name in METHODS}
    methods["occlusion"]["data_mean"] = tuple(dataset.channel_mean)
    return methods


def batched(nets: list, image: torch.Tensor, target: int, methods: dict) -> list:
    plans = [resolve(METHODS[name].planner)(nets[0], image, target, **params) for name, params in methods.items()]
    return passes.evaluate(nets, plans, target)


def one_by_one(nets: list, image: torch.Tensor, target: int, methods: dict) -> list:
    return [[METHODS[name].explain(net, image, target, **params) for name, params in methods.items()] for net in nets]


def rows(quick: bool) -> list[Row]:
    models.flush_denormals()
    dataset = data.load("digits")
    nets = [models.load("digits-cnn"), models.load("digits-cnn", epoch=0)]
    methods = default_methods(dataset)
    repeats = 3 if quick else 7
    load = OtherLoad()
    images = iter(range(100, 10_000))

    def on_next_image(way):
        def call():
            index = next(images)
            return way(nets, dataset.image(index), int(dataset.labels[index]), methods)
        return call

    times = timed_interleaved({"batched": on_next_image(batched), "one by one": on_next_image(one_by_one)}, repeats)
    # The job as the page runs it, cold: the maps of each image are dropped from the cache before it runs.
    from compute.cache import get_cache
    from compute.jobs.attribution import _method_params
    from compute.jobs.table import run
    from compute.specs.source import Source

    source, job_seconds = Source(), []
    page_methods = {name: suggested_params(name, tuple(dataset.image_shape)) for name in METHODS}
    run(source, "attribution.maps", {"index": 0, "methods": page_methods, "sanity": True})  # models loaded, warm
    for index in range(1500, 1500 + repeats):
        image, label = dataset.image(index), int(dataset.labels[index])
        for net in nets:
            for name, params in page_methods.items():
                get_cache().delete(attribution.attribution_map.key(net, image, label, name,
                                                                   _method_params(name, params, dataset)))
        start = time.perf_counter()
        result = run(source, "attribution.maps", {"index": index, "methods": page_methods, "sanity": True})
        job_seconds.append(time.perf_counter() - start)
        assert len(result["correlation"]) == len(METHODS)
    job = sorted(job_seconds)[len(job_seconds) // 2]
    other = load.share()
    busy = f"; other processes used {other:.0%} of the {torch.get_num_threads()} cores meanwhile" if other is not None else ""
    what = (f"five methods at the page's defaults, trained + untrained digits CNN, one image, CPU "
            f"({torch.get_num_threads()} threads{busy})")
    return [
        Row("S1", f"Sanity-check maps, batched (one gradient and one forward pass per model): {what}",
            ms(times["batched"]), f"one method and model at a time: {ms(times['one by one'])}",
            ratio(times["batched"] / times["one by one"]), "< 1", met(times["batched"] < times["one by one"])),
        Row("S2", f"The `attribution.maps` job with the sanity check, cold (maps not cached), median of {repeats}",
            sec(job), "", "", "< 5 s on 2 cores", met(job < 5.0)),
    ]


UNTRAINED_DRAWN = """(count) => document.querySelectorAll(
    "[id*='attribution-graph'][id*='\\"variant\\":\\"untrained\\"'] .js-plotly-plot").length >= count"""
TRAINED_DRAWN = UNTRAINED_DRAWN.replace("untrained", "trained")


def page_row(clicks: int) -> Row:
    """In headless Chromium on a running server: an image with all five methods drawn, then the sanity button:
    seconds until the five untrained maps are drawn (their maps not cached: a new image each time)."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from bench.browser import ROOT, _stop, _wait_for_http, chromium, free_port
    from compute.cache import cache_dir

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = Path(tempfile.mkdtemp(prefix="bench-sanity-")) / "server.log"
    seconds, load = [], OtherLoad()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port), "--cache-dir",
                                    str(cache_dir()), "--no-precompute"], cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            _wait_for_http(url, process, log_path, time.perf_counter() + 240)
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                for index in range(1600, 1600 + clicks):
                    page.goto(f"{url}?sample={index}&methods={','.join(METHODS)}")
                    page.wait_for_function(TRAINED_DRAWN, arg=len(METHODS), timeout=240_000)
                    start = time.perf_counter()
                    page.click("#attribution-sanity")
                    page.wait_for_function(UNTRAINED_DRAWN, arg=len(METHODS), timeout=240_000)
                    seconds.append(time.perf_counter() - start)
        finally:
            _stop(process)
    typical = sorted(seconds)[len(seconds) // 2]
    other = load.share()
    busy = f"; other processes used {other:.0%} of the cores meanwhile" if other is not None else ""
    return Row("S3", f"In headless Chromium at 1280x720: the sanity button → the five untrained maps drawn (maps "
                     f"not cached), median of {clicks} images; server, compute process and browser on this machine"
                     f"{busy}",
               sec(typical), "", "", "< 5 s on 2 cores", met(typical < 5.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--browser", action="store_true", help="also the button in headless Chromium")
    args = parser.parse_args()
    found = rows(args.quick)
    if args.browser:
        found.append(page_row(3 if args.quick else 5))
    print(markdown_table(found))


if __name__ == "__main__":
    main()
