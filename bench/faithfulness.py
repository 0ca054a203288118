"""Benchmark of the faithfulness curves: ``python -m bench.faithfulness [--quick] [--threads N] [--device D]``.

Rows, each against a baseline measured in the same run:

- F1: deletion and insertion curves of the five attribution maps of one test image, 20 steps, with the random floor
  (3 orders), on the built-in digits CNN, against one plain batched forward of the very same perturbed images
  (built beforehand, batch size as ours). Targets: at most 1.3x that forward, and under 1 s.
- F2: the same with ROAD's two curves (noisy linear imputation), against the same plain forward of all images.
- F3: F1's curves by a naive loop (one image built and classified per step).
- F4: ROAD of the five maps with pytorch-grad-cam's reference (the authors' imputer, a sparse direct solve per image,
  one forward per threshold), against ours.
- F5: the ranking job over test images, uncached (per image: ten maps, curves with ROAD, sanity correlation).
- F6: F1 on resnet18 at 224x224 (random weights): on the GPU when there is one, else on the CPU with 5 steps.
"""
from __future__ import annotations

import argparse
import time

import torch

from bench.common import OtherLoad, Row, auto, markdown_table, met, ratio, sec, timed, timed_once
from compute import attribution, faithfulness
from compute.specs.faithfulness import BASIC_KINDS, ROAD_KINDS

TARGET_RATIO = 1.3
TARGET_SECONDS = 1.0
STEPS = 20
RANDOM_ORDERS = 3


def orders_of(maps: dict, pixels: int) -> torch.Tensor:
    return torch.cat([torch.stack([faithfulness.perturbation_order(maps[name]) for name in sorted(maps)]),
                      faithfulness.random_orders(RANDOM_ORDERS, pixels)])


def all_images(image: torch.Tensor, orders: torch.Tensor, kinds, steps: int, device) -> torch.Tensor:
    """Every perturbed image of the curves, built up front (the baseline's input)."""
    refs = faithfulness.references(image.to(device))
    ranks = faithfulness.order_ranks(orders).to(device)
    pixels = orders.shape[1]
    parts = []
    for kind in kinds:
        counts = faithfulness.step_counts(faithfulness.curve_fractions(kind, steps), pixels)
        for m in range(len(orders)):
            parts.append(faithfulness.perturbed_images(kind, refs, ranks[m].expand(len(counts), -1), counts,
                                                       torch.full((len(counts),), m), torch.arange(len(counts))))
    return torch.cat(parts)


def plain_forward(model, images: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(images[start:start + batch]).softmax(1) for start in range(0, len(images), batch)])


def naive_curves(model, image: torch.Tensor, orders: torch.Tensor, target: int, steps: int, device) -> None:
    refs = faithfulness.references(image.to(device))
    pixels = orders.shape[1]
    with torch.no_grad():
        for order in orders:
            for k in range(steps + 1):
                removed = order[:round(k / steps * pixels)].to(device)
                deleted = refs.image.clone().view(refs.image.shape[0], -1)
                deleted[:, removed] = refs.fill.view(refs.image.shape[0], -1)[:, removed]
                inserted = refs.blurred.clone().view(refs.image.shape[0], -1)
                inserted[:, removed] = refs.image.view(refs.image.shape[0], -1)[:, removed]
                for picture in (deleted, inserted):
                    model(picture.view_as(refs.image)[None]).softmax(1)[0, target].item()


def maps_of(model, image: torch.Tensor, target: int, mean) -> dict:
    maps = {}
    for name in attribution.METHODS:
        params = attribution.suggested_params(name, tuple(image.shape))
        if name == "occlusion" and mean:
            params["data_mean"] = tuple(mean)
        maps[name] = attribution.attribution_map.uncached(model, image, target, name, params)["map"]
    return maps


def curve_rows(key: str, what: str, model, image, target, maps, steps: int, device, repeats: int,
               targets: bool = True) -> tuple[list[Row], float]:
    """Our curves against one plain forward of the same images (deletion and insertion, then with ROAD)."""
    from compute.device import activation_floats, batch_size_for

    pixels = image.shape[-1] * image.shape[-2]
    orders = orders_of(maps, pixels)
    batch = batch_size_for(device, activation_floats(model, tuple(image.shape)))
    rows, ours_basic = [], 0.0
    for suffix, kinds in (("", BASIC_KINDS), (" and ROAD", BASIC_KINDS + ROAD_KINDS)):
        built = all_images(image, orders, kinds, steps, device)
        ours = min(timed(lambda: faithfulness.faithfulness_curves(model, image, target, orders, steps, kinds,
                                                                  batch_size=batch), repeats))
        plain = min(timed(lambda: plain_forward(model, built, batch), repeats))
        basic = kinds == BASIC_KINDS
        ours_basic = ours if basic else ours_basic
        rows.append(Row(f"{key}{'' if basic else '+ROAD'}",
                        f"{what}: deletion and insertion{suffix} curves of {len(maps)} maps + {RANDOM_ORDERS} random "
                        f"orders, {steps} steps ({len(built)} images, batch {batch})", auto(ours),
                        f"one plain forward of the same {len(built)} images: {auto(plain)}",
                        f"{ratio(ours / plain)} (ours / forward)",
                        f"≤ {TARGET_RATIO}×, < {TARGET_SECONDS:.0f} s" if basic and targets else "—",
                        met(ours / plain <= TARGET_RATIO and ours < TARGET_SECONDS) if basic and targets else "—"))
    return rows, ours_basic


def grad_cam_road(model, image: torch.Tensor, maps: dict, target: int, steps: int) -> None:
    """pytorch-grad-cam's ROAD, MoRF and LeRF, at our fractions (percentiles), one call per threshold and map."""
    from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,
                                                                   RemoveLeastRelevantFirst,
                                                                   RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    for saliency in maps.values():
        cam = saliency.numpy()[None]
        for k in range(1, steps):
            for remove in (RemoveMostRelevantFirst, RemoveLeastRelevantFirst):
                metric = PerturbationConfidenceMetric(remove(100 * (1 - k / steps), NoisyLinearImputer()))
                metric(image[None], cam, [ClassifierOutputSoftmaxTarget(target)], model, return_diff=False)


def digits_rows(quick: bool) -> list[Row]:
    from compute import data, models

    device = torch.device("cpu")
    model = models.load("digits-cnn", device=device)
    dataset = data.load("digits")
    index = int(torch.nonzero(dataset.is_test).flatten()[0])
    image, target = dataset.image(index), int(dataset.labels[index])
    maps = maps_of(model, image, target, dataset.channel_mean)
    repeats = 2 if quick else 5
    rows, ours = curve_rows("F1", f"digits CNN, test image #{index}, cpu ({torch.get_num_threads()} threads)", model,
                            image, target, maps, STEPS, device, repeats)
    orders = orders_of(maps, 32 * 32)
    naive = min(timed(lambda: naive_curves(model, image, orders, target, STEPS, device), 1 if quick else 2))
    rows.append(Row("F3", "F1's curves by a naive loop: one image built and classified per step", auto(naive),
                    f"ours (F1): {auto(ours)}", f"{ratio(naive / ours)} (naive / ours)"))
    road_s = min(timed(lambda: faithfulness.faithfulness_curves(model, image, target, orders[:len(maps)], STEPS,
                                                                ROAD_KINDS), 1 if quick else 3))
    reference_s = min(timed(lambda: grad_cam_road(model, image, maps, target, STEPS), 1, warmup=0))
    rows.append(Row("F4", f"ROAD, most and least relevant first, of the {len(maps)} maps at {STEPS - 1} thresholds: "
                          "pytorch-grad-cam (the authors' imputer: a sparse direct solve per image; one forward per "
                          "threshold)", auto(reference_s), f"ours (batched conjugate gradients, batched forward): "
                                                           f"{auto(road_s)}", f"{ratio(reference_s / road_s)} "
                                                                              "(grad-cam / ours)"))
    return rows + ranking_rows(quick)


def ranking_rows(quick: bool) -> list[Row]:
    """The ranking job with every result computed: the models are loaded first, then the results cache points at an
    empty folder (checkpoints stay where they are)."""
    import os
    import tempfile

    from compute.jobs.table import run
    from compute.specs.source import Source
    from compute.jobs.workspace import workspace

    count = 10 if quick else 30
    methods = {name: attribution.suggested_params(name, (1, 32, 32)) for name in attribution.METHODS}
    space = workspace(Source())
    space.model(), space.untrained_model()
    previous = os.environ.get("FEATURESCOPE_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bench-faithfulness-") as directory:
        os.environ["FEATURESCOPE_CACHE_DIR"] = directory
        try:
            seconds, _result = timed_once(lambda: run(Source(), "faithfulness.ranking",
                                                      {"methods": methods, "images": count}))
        finally:
            if previous is None:
                os.environ.pop("FEATURESCOPE_CACHE_DIR", None)
            else:
                os.environ["FEATURESCOPE_CACHE_DIR"] = previous
    per_image = seconds / count
    return [Row("F5", f"ranking job over {count} test images, nothing cached (5 maps on the trained and the untrained "
                      f"model, {STEPS}-step deletion, insertion and ROAD with one random order, sanity "
                      "correlation)", sec(seconds),
                f"per image {auto(per_image)}; 200 images (the default sample) ≈ {sec(200 * per_image)}")]


def resnet_rows(quick: bool, device_name: str | None) -> list[Row]:
    import torchvision

    on_gpu = torch.cuda.is_available() and device_name != "cpu"
    device = torch.device(device_name or ("cuda" if on_gpu else "cpu"))
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=1000).to(device).eval()
    image = torch.rand((3, 224, 224))
    target = int(plain_forward(model, image[None].to(device), 1).argmax())
    maps = {name: torch.rand((224, 224), generator=torch.Generator().manual_seed(k))
            for k, name in enumerate(attribution.METHODS)}
    steps = STEPS if device.type == "cuda" else 5
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    rows, _ = curve_rows("F6", f"resnet18 224×224 (random weights), {name}", model, image, target, maps, steps, device,
                         (2 if quick else 5) if device.type == "cuda" else 1, targets=False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 10 images ranked")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default=None, help="device of the resnet18 rows (default: cuda when present)")
    parser.add_argument("--skip-digits", action="store_true", help="only the resnet18 rows (a GPU check)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start, load = time.perf_counter(), OtherLoad()
    rows = ([] if args.skip_digits else digits_rows(args.quick)) + resnet_rows(args.quick, args.device)
    print(markdown_table(rows))
    share = load.share()
    busy = f"; other processes used {share:.0%} of the machine's cores meanwhile" if share is not None else ""
    print(f"\n({sec(time.perf_counter() - start)} in all{busy})")


if __name__ == "__main__":
    main()
