"""Benchmark of activation maximisation: ``python -m bench.maximize [--quick]``.

Rows: steps per second for one start and for eight (a batch of starts must cost far less than eight single
ones), a whole layer (the 10 classes of the built-in digits CNN, 256 steps, target < 10 s on 2 CPU cores) against
a plain PyTorch loop of the same size, and with CUDA present all 64 channels of a resnet18 layer (random weights)
at 224x224, 512 steps, one batch, against a plain PyTorch loop of the same work.
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

from bench.common import Row, auto, markdown_table, met, ratio, sec, timed, timed_once
from compute.maximize import maximize, maximize_layer
from compute.maximize.render import image_shape_of

DIGITS = (1, 32, 32)
LAYER_STEPS, LAYER_TARGET_S = 256, 10.0
RESNET_LAYER, RESNET_STEPS = "layer1", 512


def plain_loop(model: nn.Module, count: int, shape: tuple[int, int, int], steps: int, value) -> None:
    """The least a run can do: Adam on raw pixels, forward, ``value(output) -> (n,)``, backward; no transforms."""
    device = next(model.parameters()).device
    pixels = torch.full((count, *shape), 0.5, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([pixels], lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        (-value(model(pixels)).sum()).backward()
        optimizer.step()


def digits_rows(quick: bool) -> list[Row]:
    from compute import models

    models.flush_denormals()
    model = models.load("digits-cnn", device=torch.device("cpu"))
    steps = 32 if quick else 128
    repeats = 2 if quick else 5
    one = min(timed(lambda: maximize(model, ("class", 3), steps=steps, n=1, image_shape=DIGITS), repeats))
    eight = min(timed(lambda: maximize(model, ("class", 3), steps=steps, n=8, image_shape=DIGITS), repeats))
    threads = torch.get_num_threads()
    rows = [
        Row("M1", f"1 start, class objective, digits CNN (Fourier + default transforms), {steps} steps, cpu "
                  f"({threads} torch threads)", f"{steps / one:.0f} steps/s", "—", "—", "—", "—"),
        Row("M2", f"8 starts in one batch, same run", f"{steps / eight:.0f} steps/s ({auto(eight / steps)} per step)",
            f"1 start: {auto(one / steps)} per step", f"{ratio(eight / one)} (8 starts / 1)", "< 3×",
            met(eight / one < 3)),
    ]
    layer_s, result = timed_once(lambda: maximize_layer(model, "classes", steps=LAYER_STEPS, image_shape=DIGITS))
    correct = int((result.probabilities.argmax(1) == torch.arange(10)).sum())
    plain_s, _ = timed_once(lambda: plain_loop(model, 10, DIGITS, LAYER_STEPS, lambda logits: logits.diagonal()))
    rows.append(Row("M3", f"whole layer: all 10 classes of the digits CNN, {LAYER_STEPS} steps, one batch, cpu "
                          f"({threads} torch threads; {correct}/10 images classified as their class)",
                    sec(layer_s), f"plain loop (pixels, no transforms): {sec(plain_s)}",
                    f"{ratio(layer_s / plain_s)} (ours/plain)", f"< {LAYER_TARGET_S:.0f} s", met(layer_s < LAYER_TARGET_S)))
    return rows


def resnet_rows(quick: bool) -> list[Row]:
    import torchvision

    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    model = torchvision.models.resnet18(weights=None).to(device).eval()
    steps = 64 if quick else RESNET_STEPS
    shape = image_shape_of(model)
    trunk = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1)
    maximize_layer(model, RESNET_LAYER, steps=4)  # warm-up (cuDNN plans, allocator)
    ours_s, result = timed_once(lambda: maximize_layer(model, RESNET_LAYER, steps=steps))
    plain_s, _ = timed_once(lambda: plain_loop(trunk, 64, shape, steps, lambda out: out.mean((2, 3)).diagonal()))
    gain = float((result.values / result.start_values.clamp(min=1e-6)).median())
    name = torch.cuda.get_device_name(device)
    return [Row("M4", f"whole layer: all 64 channels of resnet18 {RESNET_LAYER} (random weights), 224x224, {steps} "
                      f"steps, one batch, {name} (median objective gain over the start: {gain:.1f}×)",
                sec(ours_s), f"plain loop (pixels, no transforms, same trunk): {sec(plain_s)}",
                f"{ratio(ours_s / plain_s)} (ours/plain)", "report", "—")]


def rows(quick: bool) -> list[Row]:
    result = digits_rows(quick)
    if torch.cuda.is_available():
        result += resnet_rows(quick)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--gpu-only", action="store_true", help="only the resnet18 row (needs CUDA)")
    arguments = parser.parse_args()
    print(markdown_table(resnet_rows(arguments.quick) if arguments.gpu_only else rows(arguments.quick)))
