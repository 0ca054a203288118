"""Featurescope benchmark: ``python -m bench.run [--quick] [--out bench/results/latest.md]``.

Measures, in one run on one device with one model and one set of images, the page load (cold and warm, real
server and headless Chromium), the detail and attribution callbacks, activation extraction, occlusion,
SmoothGrad, integrated gradients and the embeddings, each against a baseline measured in the same run. Prints
a Markdown table and writes it to ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench import references as ref
from bench.common import (OtherLoad, Row, auto, cpu_share, markdown_table, median, met, ms, percentile, ratio, sec,
                          timed, timed_each, timed_interleaved, timed_once)
from compute import activations, attribution, embedding, models
from compute.cache import set_cache_dir
from compute.data import Dataset
from compute import data
from compute.device import activation_floats, batch_size_for, pick_device
from compute.gradients import gradient_batch_size

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.md"
ATTRIBUTION_METHODS = ["occlusion", "saliency", "smoothgrad"]
DETAIL_LAYER = "relu2"
SMOOTHGRAD_SAMPLES, SMOOTHGRAD_SIGMA = 50, 0.15
IG_STEPS = 32
OCCLUSION_BOX = 8
# A second batch size tried next to the default (on this CPU the default 1024 is slower than 256).
OTHER_BATCH = 256


@dataclass(frozen=True)
class Settings:
    """How many repeats each measurement gets (``--quick`` uses fewer)."""

    quick: bool
    page_warm_runs: int
    detail_indices: int
    attribution_indices: int
    attribution_warm_passes: int
    extract_repeats: int
    extract_other_batch: int | None
    occlusion_repeats: int
    fast_repeats: int
    slow_repeats: int
    pca_repeats: int
    tsne_repeats: int
    umap_repeats: int

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        if quick:
            return cls(True, page_warm_runs=1, detail_indices=20, attribution_indices=10,
                       attribution_warm_passes=1, extract_repeats=2, extract_other_batch=None,
                       occlusion_repeats=2, fast_repeats=5, slow_repeats=1, pca_repeats=3, tsne_repeats=1,
                       umap_repeats=0)
        return cls(False, page_warm_runs=3, detail_indices=50, attribution_indices=20, attribution_warm_passes=2,
                   extract_repeats=5, extract_other_batch=OTHER_BATCH, occlusion_repeats=7, fast_repeats=21,
                   slow_repeats=3, pca_repeats=5, tsne_repeats=2, umap_repeats=2)


@dataclass
class Context:
    """What every in-process row shares: the app config, model, data, device and the image explained."""

    model: torch.nn.Module
    dataset: Dataset
    device: torch.device
    index: int
    image: torch.Tensor
    target: int


# ---------------------------------------------------------------------------------------------- 1. page load

def bench_page(cache: Path, logs: Path, settings: Settings) -> list[Row]:
    """Row 1: process start -> scatter has points, with an empty cache dir (trains) and then with it filled."""
    from bench.browser import chromium, time_to_scatter

    with chromium() as browser:
        cold = time_to_scatter(browser, cache, logs, empty_cache=True)
        warm = [time_to_scatter(browser, cache, logs) for _ in range(settings.page_warm_runs)]
    warm_s = median([w.scatter_s for w in warm])
    warm_http = median([w.http_s for w in warm])
    restarts = cold.restarts + sum(w.restarts for w in warm)
    note = f"; {restarts} server start(s) killed from outside and redone" if restarts else ""
    return [
        Row("1a", "First interactive page, **cold** (empty cache dir: server start, training the model, default "
                  "t-SNE, page load; clock starts at process spawn)",
            f"{sec(cold.scatter_s)} (HTTP up at {sec(cold.http_s)}{note})",
            f"server answering HTTP: {sec(cold.http_s)}", ratio(cold.scatter_s / cold.http_s)),
        Row("1b", f"First interactive page, **warm** (same cache dir, new server, new browser context; "
                  f"median of {len(warm)})",
            f"{sec(warm_s)} (HTTP up at {sec(warm_http)}; runs {', '.join(sec(w.scatter_s) for w in warm)})",
            f"cold: {sec(cold.scatter_s)}", ratio(warm_s / cold.scatter_s), "< 10 s", met(warm_s < 10)),
    ]


def bench_page_or_train(cache: Path, logs: Path, settings: Settings) -> list[Row]:
    """Row 1, or (no Chromium, a server that fails) a row saying why, with the model trained in-process instead
    so that the other rows still run."""
    try:
        return bench_page(cache, logs, settings)
    except Exception as error:  # a benchmark should still report the rest
        traceback.print_exc()
        models.load("digits-cnn", device=pick_device("auto"))
        reason = str(error).strip().splitlines()[0][:200]
        return [Row("1", "First interactive page (cold and warm)", f"**not measured**: {reason}")]


# ---------------------------------------------------------------------------------------------- 4. extraction

def plain_forwards(model: torch.nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> None:
    """The baseline of extraction: the same batches through the whole model, no hooks, nothing kept."""
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size].to(device, non_blocking=True))


def bench_extract(ctx: Context, settings: Settings) -> list[Row]:
    """Row 4: hook-based extraction vs plain forwards of the same batches, whole data set."""
    images = ctx.dataset.images
    default_batch = batch_size_for(ctx.device, activation_floats(ctx.model, tuple(images.shape[1:])))
    rows = []
    for batch in sorted({default_batch, settings.extract_other_batch or default_batch}, reverse=True):
        times = timed_interleaved({
            "plain": lambda: plain_forwards(ctx.model, images, batch, ctx.device),
            "logits": lambda: activations.extract(ctx.model, images, "logits", batch_size=batch),
            "relu2": lambda: activations.extract(ctx.model, images, "relu2", batch_size=batch),
        }, settings.extract_repeats)
        plain = times["plain"]
        for layer in ("logits", "relu2"):
            hooked = times[layer]
            note = " (stops after relu2)" if layer == "relu2" else ""
            rows.append(Row(f"4{'ab'[layer == 'relu2']}", f"Activation extraction via hooks, layer `{layer}`{note}, "
                                                         f"{len(images):,} images, batch {batch}",
                            f"hooks (`extract`): {ms(hooked)}", f"plain forward loop: {ms(plain)}",
                            f"{ratio(plain / hooked)} (plain/hooks)", "≥ 0.9", met(plain / hooked >= 0.9)))
    return sorted(rows, key=lambda r: r.key)


# ---------------------------------------------------------------------------------------------- 5. occlusion

def bench_occlusion(ctx: Context, settings: Settings) -> tuple[list[Row], str]:
    """Row 5: occlusion at stride 1 and 2 vs the limit, another batch size, a naive loop and captum."""
    rows: list[Row] = []
    for stride, letter in ((1, "5a"), (2, "5b")):
        rows += occlusion_rows(ctx, settings, stride, letter)
    ours_map = attribution.occlusion(ctx.model, ctx.image, ctx.target, OCCLUSION_BOX, 1)
    naive_map = ref.occlusion_naive(ctx.model, ctx.image, ctx.target, OCCLUSION_BOX, 1)
    check = f"naive occlusion = ours at stride 1 (max |Δ| {float((ours_map - naive_map).abs().max()):.1e})"
    return rows, check


def occlusion_rows(ctx: Context, settings: Settings, stride: int, letter: str) -> list[Row]:
    """The occlusion rows for one stride."""
    model, image, target = ctx.model, ctx.image, ctx.target
    batch = batch_size_for(ctx.device, activation_floats(model, tuple(image.shape)))  # what ours uses by default
    copies = ref.occlusion_copies(image, stride, ctx.device)
    count, windows = len(copies), ref.captum_occlusion_windows(image.shape[-1], OCCLUSION_BOX, stride)

    def ours_with(batch_size: int | None = None) -> Callable[[], torch.Tensor]:
        return lambda: attribution.occlusion(model, image, target, OCCLUSION_BOX, stride, batch_size=batch_size)

    def captum_with(per_eval: int, repeats: int) -> float:
        return median(timed(lambda: ref.occlusion_captum(model, image, target, OCCLUSION_BOX, stride, per_eval),
                            repeats))

    compared = {"ours": ours_with(), "limit": lambda: ref.forward_limit(model, copies, batch)}
    if count > OTHER_BATCH and batch != OTHER_BATCH:
        compared["other"] = ours_with(OTHER_BATCH)
    times = timed_interleaved(compared, settings.occlusion_repeats)
    ours, limit = times["ours"], times["limit"]
    naive = median(timed(lambda: ref.occlusion_naive(model, image, target, OCCLUSION_BOX, stride),
                         settings.slow_repeats))
    captum1, captum256 = captum_with(1, settings.slow_repeats), captum_with(256, settings.occlusion_repeats)
    what = f"Occlusion, box {OCCLUSION_BOX}, stride {stride} ({count:,} occluded copies)"
    per_window = count / windows  # captum does `windows` evaluations where we do `count`

    def vs_captum(seconds: float) -> str:
        return f"{ratio(seconds / ours)} raw, {ratio(seconds / ours * per_window)} per window (captum/ours)"

    rows = [Row(letter, f"{what}: ours vs the limit", f"ours: {ms(ours)}",
                f"one plain no_grad forward of {count:,} copies (batch {batch}): {ms(limit)}",
                f"{ratio(ours / limit)} (ours/limit)", "≤ 1.3", met(ours / limit <= 1.3))]
    if "other" in times:
        other = times["other"]
        rows.append(Row(letter, f"{what}: ours with batch_size={OTHER_BATCH} instead of the default {batch}",
                        f"ours, batch {OTHER_BATCH}: {ms(other)}", f"ours, batch {batch}: {ms(ours)}",
                        f"{ratio(other / ours)} (batch {OTHER_BATCH}/default)"))
    return rows + [
        Row(letter, f"{what}: naive loop, one model call per box",
            f"naive: {auto(naive)}", f"ours: {ms(ours)}", f"{ratio(naive / ours)} (naive/ours)"),
        Row(letter, f"{what}: captum `Occlusion`, perturbations_per_eval=1 (default; {windows} uncentred "
                    f"windows, not {count:,})", f"captum: {auto(captum1)}", f"ours: {ms(ours)}", vs_captum(captum1)),
        Row(letter, f"{what}: captum `Occlusion`, perturbations_per_eval=256 ({windows} windows)",
            f"captum: {auto(captum256)}", f"ours: {ms(ours)}", vs_captum(captum256)),
    ]


# ---------------------------------------------------------------------------------------------- 6, 7. gradients

def bench_smoothgrad(ctx: Context, settings: Settings) -> tuple[list[Row], str]:
    """Row 6: SmoothGrad (50 samples, sigma 0.15) vs the limit, a naive loop and captum's NoiseTunnel."""
    model, image, target = ctx.model, ctx.image, ctx.target
    noisy = (image + ref.smoothgrad_noise(image, SMOOTHGRAD_SAMPLES, SMOOTHGRAD_SIGMA)).to(ctx.device)

    def ours_fn():
        return attribution.smoothgrad(model, image, target, samples=SMOOTHGRAD_SAMPLES, sigma=SMOOTHGRAD_SIGMA)

    times = timed_interleaved({"ours": ours_fn, "limit": lambda: ref.backward_limit(model, noisy, target)},
                              settings.fast_repeats)
    ours, limit = times["ours"], times["limit"]
    naive = median(timed(lambda: ref.smoothgrad_naive(model, image, target, SMOOTHGRAD_SAMPLES, SMOOTHGRAD_SIGMA),
                         settings.slow_repeats))
    captum = median(timed(lambda: ref.smoothgrad_captum(model, image, target, SMOOTHGRAD_SAMPLES, SMOOTHGRAD_SIGMA),
                          settings.fast_repeats))
    what = f"SmoothGrad, {SMOOTHGRAD_SAMPLES} samples, sigma {SMOOTHGRAD_SIGMA}"
    batch = gradient_batch_size(model, tuple(image.shape))
    rows = [
        Row("6", f"{what}: ours (gradient batch {batch}) vs the limit", f"ours: {ms(ours)}",
            f"one forward+backward of {SMOOTHGRAD_SAMPLES} images: {ms(limit)}", f"{ratio(ours / limit)} (ours/limit)",
            "≤ 1.3", met(ours / limit <= 1.3)),
        Row("6", f"{what}: naive loop, one forward+backward per sample", f"naive: {auto(naive)}", f"ours: {ms(ours)}",
            f"{ratio(naive / ours)} (naive/ours)"),
        Row("6", f"{what}: captum `NoiseTunnel(Saliency)`, default nt_samples_batch_size (None = all at once)",
            f"captum: {auto(captum)}", f"ours: {ms(ours)}", f"{ratio(captum / ours)} (captum/ours)"),
    ]
    difference = float((ours_fn() - ref.smoothgrad_naive(model, image, target, SMOOTHGRAD_SAMPLES,
                                                          SMOOTHGRAD_SIGMA)).abs().max())
    return rows, f"naive SmoothGrad = ours (max |Δ| {difference:.1e})"


def bench_integrated_gradients(ctx: Context, settings: Settings) -> tuple[list[Row], str]:
    """Row 7: integrated gradients (32 steps) vs the limit and captum's IntegratedGradients."""
    model, image, target = ctx.model, ctx.image, ctx.target
    path = (torch.linspace(0, 1, IG_STEPS)[:, None, None, None] * image).to(ctx.device)

    def ours_fn():
        return attribution.integrated_gradients(model, image, target, steps=IG_STEPS)

    times = timed_interleaved({"ours": ours_fn, "limit": lambda: ref.backward_limit(model, path, target)},
                              settings.fast_repeats)
    ours, limit = times["ours"], times["limit"]
    captum = median(timed(lambda: ref.integrated_gradients_captum(model, image, target, IG_STEPS),
                          settings.fast_repeats))
    what = f"Integrated gradients, {IG_STEPS} steps, zero baseline"
    rows = [
        Row("7", f"{what}: ours vs the limit", f"ours: {ms(ours)}",
            f"one forward+backward of {IG_STEPS} images: {ms(limit)}", f"{ratio(ours / limit)} (ours/limit)",
            "≤ 1.3 (not set in the brief; same rule as rows 5–6)", met(ours / limit <= 1.3)),
        Row("7", f"{what}: captum `IntegratedGradients`, default internal_batch_size (None = one batch)",
            f"captum: {ms(captum)}", f"ours: {ms(ours)}", f"{ratio(captum / ours)} (captum/ours)"),
    ]
    captum_map = ref.integrated_gradients_captum(model, image, target, IG_STEPS).sum(1)[0].cpu()
    difference = float((ours_fn() - captum_map).abs().max() / captum_map.abs().max())
    return rows, f"captum IG = ours (max |Δ| {difference:.1e} of the map's largest value)"


# ---------------------------------------------------------------------------------------------- 8. embeddings

def bench_embedding(ctx: Context, settings: Settings) -> list[Row]:
    """Row 8: PCA, t-SNE and UMAP of the cached relu2 features (PCA-reduced to 50 dims) of all images."""
    features = embedding.layer_features(ctx.model, ctx.dataset, DETAIL_LAYER, "flat")  # cached by the server
    what = f"Embedding of `{DETAIL_LAYER}` features ({features.shape[0]:,} × {features.shape[1]}, cached)"
    pca = median(timed(lambda: embedding.embed(features, "pca"), settings.pca_repeats))
    embedding.embed(features[:300], "tsne")  # warm-up on a subset: imports, thread pools
    tsne = median(timed(lambda: embedding.embed(features, "tsne"), settings.tsne_repeats, warmup=0))
    umap_first, _ = timed_once(lambda: embedding.embed(features, "umap"))
    rows = [
        Row("8", f"{what}: PCA", ms(pca)),
        Row("8", f"{what}: t-SNE (openTSNE, Barnes-Hut, 750 iterations; after a warm-up on 300 points)",
            sec(tsne), f"PCA: {ms(pca)}",
            ratio(tsne / pca)),
        Row("8", f"{what}: UMAP, first call in the process (import + numba compile or load of numba's on-disk "
                 f"cache + fit)", sec(umap_first), f"PCA: {ms(pca)}", ratio(umap_first / pca)),
    ]
    if settings.umap_repeats:
        umap = median(timed(lambda: embedding.embed(features, "umap"), settings.umap_repeats, warmup=0))
        rows.append(Row("8", f"{what}: UMAP, later calls (median of {settings.umap_repeats})", sec(umap),
                        f"PCA: {ms(pca)}", ratio(umap / pca)))
    else:
        rows.append(Row("8", f"{what}: UMAP, later calls", "not measured with --quick (run without it)"))
    return rows


# ---------------------------------------------------------------------------------------------- report

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = "unknown CPU"
    return f"cpu ({cpu})"


def other_load_line(share: float | None) -> str:
    """What else used the machine's cores during the run (it competes with every timing here)."""
    if share is None:
        return "- other processes' CPU use during the run: unknown (no /proc/stat)"
    line = f"- other processes used about **{share:.0%}** of the machine's CPU time during the run"
    if share > 0.1:
        line += " — **timings are inflated and noisy; rerun on a quiet machine before comparing**"
    return line


def report(rows: list[Row], checks: list[str], ctx: Context, settings: Settings, wall_s: float,
           other_load: float | None) -> str:
    import captum

    lines = [
        f"# Featurescope benchmark — {datetime.datetime.now():%Y-%m-%d %H:%M}"
        f"{' (--quick)' if settings.quick else ''}",
        "",
        f"- device: **{device_name(ctx.device)}** ({os.cpu_count()} CPU cores), torch threads: "
        f"**{torch.get_num_threads()}** "
        f"(the compute process uses the same); "
        f"torch {torch.__version__}, captum {captum.__version__}, python {sys.version.split()[0]}; "
        f"denormals flushed to zero",
        other_load_line(other_load),
        f"- model: digits-cnn (trained in row 1), data: digits ({len(ctx.dataset):,} images, 1×32×32); "
        f"rows 5–7 explain sample #{ctx.index} (class {ctx.target}); times are medians unless p50/p95 is given",
        "",
        markdown_table(rows),
        "",
        f"Checks: {'; '.join(checks)}.",
        "",
        "How to read: *ratio* compares the measured value with the baseline measured in this same run "
        "(ours/limit ≤ 1.3 means at most 30% over a plain batched forward(+backward) of the same images; "
        "plain/hooks ≥ 0.9 means hooks cost at most ~10%; X/ours > 1 means X is slower than ours); *met* checks the "
        "target, and a dash means the row has no target. CPU/wall well below 1 means the process waited for a core "
        "(other load on the machine), so its times are inflated.",
        "",
        f"Wall time of the whole run: {sec(wall_s)}.",
    ]
    return "\n".join(lines) + "\n"


def load_context(cache: Path) -> Context:
    """The trained model and its data, plus the sample the attribution rows explain (the first test image)."""
    device = pick_device("auto")
    model = models.load("digits-cnn", device=device)
    dataset = data.load("digits")
    index = int(torch.nonzero(dataset.is_test)[0])
    return Context(model, dataset, device, index, dataset.image(index), int(dataset.labels[index]))


def bench_clicks(cache: Path, logs: Path, settings: Settings) -> list[Row]:
    """Rows 10-11 in a real browser, or a row saying why they could not run."""
    from bench.browser import chromium
    from bench.clicks import click_rows

    try:
        with chromium() as browser:
            return click_rows(browser, cache, logs, clicks=6 if settings.quick else 21)
    except Exception as error:  # a benchmark should still report the rest
        traceback.print_exc()
        return [Row("10", "Click → figures in Chromium", f"**not measured**: {str(error).splitlines()[0][:200]}")]


FAMILY_BENCHES = ("bench.compute_rows", "bench.channels", "bench.maximize", "bench.adversarial", "bench.evolution")


def bench_families(settings: Settings) -> list[Row]:
    """The rows each view family measures in its own module (``rows(quick)``)."""
    import importlib

    rows: list[Row] = []
    for name in FAMILY_BENCHES:
        try:
            rows += importlib.import_module(name).rows(settings.quick)
        except Exception as error:  # one family failing must not hide the others
            traceback.print_exc()
            rows.append(Row(name, "family benchmark", f"**not measured**: {str(error).splitlines()[0][:200]}"))
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about 2 minutes instead of 6)")
    parser.add_argument("--families", action="store_true",
                        help="also run each view family's own rows (bench/channels.py, maximize.py, ...; minutes more)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"Markdown file to write (default {DEFAULT_OUT})")
    return parser.parse_args(argv)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so servers are stopped and the temporary cache dirs removed on the way out."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    settings = Settings.make(args.quick)
    start = time.perf_counter()
    other_load = OtherLoad()
    warnings.filterwarnings("ignore", message="n_jobs value")  # umap: a fixed seed means one thread
    models.flush_denormals()
    device = pick_device("auto")
    with tempfile.TemporaryDirectory(prefix="featurescope-bench-") as tmp:
        root = Path(tmp)
        cache = set_cache_dir(root / "cache")  # empty now: cold for row 1, then the warm dir for everything else
        logs = root / "logs"
        logs.mkdir()
        print(f"benchmarking on {device_name(device)} with {torch.get_num_threads()} threads ...", file=sys.stderr)
        rows = bench_page_or_train(cache, logs, settings)
        ctx = load_context(cache)
        from bench.service import service_rows

        rows += service_rows(str(cache), ctx.model, ctx.dataset, settings)
        rows += bench_clicks(cache, logs, settings)
        rows += bench_extract(ctx, settings)
        checks = []
        for bench in (bench_occlusion, bench_smoothgrad, bench_integrated_gradients):
            more, check = bench(ctx, settings)
            rows += more
            checks.append(check)
        rows += bench_embedding(ctx, settings)
        if args.families:
            rows += bench_families(settings)
    text = report(rows, checks, ctx, settings, time.perf_counter() - start, other_load.share())
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
