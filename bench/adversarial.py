"""Benchmark of adversarial attacks: ``python -m bench.adversarial [--quick]``.

Rows: 10-step PGD images per second on the built-in digits CNN (cpu), batched against one image at a time; the
robustness curve (9 epsilons, 10-step PGD, the whole test split, uncached; target < 10 s on 2 CPU cores) against
plain PGD of every image at every epsilon (8 times row A1's batched pass, measured in this run); placing the
attacked image and its original into the cached t-SNE layout (the attack job's scatter step); and the same
batched / one-at-a-time comparison on resnet18 at 224x224 (random weights): on the GPU when there is one, else on
the CPU with a smaller batch (16 images against 4 one at a time), so the ratio is measured on every machine.
"""
from __future__ import annotations

import argparse
import time

import torch

from bench.common import Row, auto, markdown_table, met, ratio, sec, timed, timed_once
from compute import adversarial

STEPS = 10
EPSILON = 8 / 255
CURVE_TARGET_S = 10.0
RESNET_BATCH, RESNET_SINGLES = 64, 8  # on a GPU
RESNET_CPU_BATCH, RESNET_CPU_SINGLES = 16, 4  # on 2 CPU cores one batched pass of 10 steps takes about a minute


def images_per_second(seconds: float, count: int) -> str:
    return f"{count / seconds:,.0f} images/s" if count / seconds >= 10 else f"{count / seconds:.2f} images/s"


def attack(model, images, labels, batch_size=None):
    return adversarial.pgd(model, images, labels, EPSILON, STEPS, adversarial.madry_step_size(EPSILON, STEPS),
                           batch_size=batch_size)


def one_at_a_time(model, images, labels):
    for i in range(len(images)):
        attack(model, images[i:i + 1], labels[i:i + 1])


def digits_rows(quick: bool) -> list[Row]:
    from compute import data, models

    models.flush_denormals()
    model = models.load("digits-cnn", device=torch.device("cpu"))
    dataset = data.load("digits")
    test = torch.nonzero(dataset.is_test).flatten()
    images, labels = dataset.images[test], dataset.labels[test]
    threads = torch.get_num_threads()
    singles = 20 if quick else 60
    batched_s = min(timed(lambda: attack(model, images, labels), 1 if quick else 3))
    single_s = min(timed(lambda: one_at_a_time(model, images[:singles], labels[:singles]), 1 if quick else 3))
    rows = [Row("A1", f"PGD ({STEPS} steps, ε 8/255) on the digits CNN, the {len(images)} test images in "
                      f"batches, cpu ({threads} torch threads)",
                images_per_second(batched_s, len(images)),
                f"one image at a time: {images_per_second(single_s, singles)}",
                f"{ratio((len(images) / batched_s) / (singles / single_s))} (batched / single)", "—", "—")]
    curve_s, curve = timed_once(lambda: adversarial.success_curve.uncached(
        model, images, labels, adversarial.ROBUSTNESS_EPSILONS, steps=STEPS))
    plain_s = batched_s * sum(1 for e in adversarial.ROBUSTNESS_EPSILONS if e > 0)
    rows.append(Row("A2", f"robustness curve: {len(adversarial.ROBUSTNESS_EPSILONS)} epsilons (0 to "
                          f"{adversarial.ROBUSTNESS_EPSILONS[-1] * 255:.0f}/255), {STEPS}-step PGD, {len(images)} test "
                          f"images, uncached, cpu ({threads} threads); success at 16/255 "
                          f"{curve.success_rate[list(adversarial.ROBUSTNESS_EPSILONS).index(16 / 255)]:.0%}, at "
                          f"32/255 {curve.success_rate[-1]:.0%}",
                    sec(curve_s), f"plain PGD at every ε (8 × A1): {sec(plain_s)}",
                    f"{ratio(plain_s / curve_s)} (plain / ours)", f"< {CURVE_TARGET_S:.0f} s",
                    met(curve_s < CURVE_TARGET_S)))
    rows += placement_rows(model, dataset, images[:1], labels[:1], quick)
    return rows


def placement_rows(model, dataset, image, label, quick: bool) -> list[Row]:
    from compute import embedding

    try:
        fit_s, _ = timed_once(lambda: embedding.layer_layout(model, dataset, "relu2", "tsne", "flat"))
    except ImportError as error:  # openTSNE or diskcache missing (a bare GPU machine)
        return [Row("A3", "placing 2 images into the t-SNE layout", f"**not measured**: {error}")]
    pair = torch.cat([image, attack(model, image, label)])
    place_s = min(timed(lambda: embedding.place(model, dataset, "relu2", "tsne", "flat", pair), 1 if quick else 3))
    return [Row("A3", "placing the original and the adversarial image into the cached t-SNE layout of relu2 "
                      "(unpickle the layout, extract, openTSNE transform)", auto(place_s),
                f"getting the layout (fit, or cache read if warm): {auto(fit_s)}", "—", "—", "—")]


def resnet_rows(quick: bool) -> list[Row]:
    import torchvision

    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    batch, singles = (RESNET_BATCH, RESNET_SINGLES) if on_gpu else (RESNET_CPU_BATCH, RESNET_CPU_SINGLES)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=1000).to(device).eval()
    images = torch.rand((batch, 3, 224, 224), device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)
    repeats = (2 if quick else 5) if on_gpu else 1
    batched_s = min(timed(lambda: attack(model, images, labels, batch_size=batch), repeats))
    single_s = min(timed(lambda: one_at_a_time(model, images[:singles], labels[:singles]), repeats))
    name = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
    return [Row("A4", f"PGD ({STEPS} steps) on resnet18 at 224×224 (random weights), {batch} images in one "
                      f"batch, {name}", images_per_second(batched_s, batch),
                f"one image at a time: {images_per_second(single_s, singles)}",
                f"{ratio((batch / batched_s) / (singles / single_s))} (batched / single)", "—", "—")]


def rows(quick: bool) -> list[Row]:
    return digits_rows(quick) + resnet_rows(quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print(markdown_table(rows(args.quick)))
    print(f"\n({sec(time.perf_counter() - start)} in all)")


if __name__ == "__main__":
    main()
