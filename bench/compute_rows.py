"""Compute rows of the benchmark: SmoothGrad against its limit, and extraction from host memory.

``python -m bench.compute_rows [--quick]`` prints a Markdown table. The built-in digits CNN runs on the CPU;
when CUDA is present, resnet18 and resnet50 (random weights, 224x224) run on the GPU as well. Every ratio is
against a baseline measured in the same run, on the same device:

- SmoothGrad, 50 samples: ours vs the limit (one forward+backward of the 50 noisy images, already on the device),
  and captum's ``NoiseTunnel(Saliency)``. Target: ours <= 1.3x the limit.
- Extraction (pooled last block): ``activations.extract`` from images in host memory vs plain forwards of the same
  batches with the images already on the device. Target: >= 0.9x of that throughput (on the CPU, host memory is
  the device: the ratio is the hooks' cost, the old ">= 0.9x of a plain forward"). bf16 autocast alongside, with
  its largest error relative to the layer's largest fp32 activation.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch import nn

from bench import references as ref
from bench.common import Row, markdown_table, met, ms, ratio, timed_interleaved
from compute import activations, attribution, models
from compute.device import activation_floats, batch_size_for

SAMPLES, SIGMA = 50, 0.15


@dataclass
class Case:
    """A model on a device, with the images it is benchmarked on (in host memory) and the layer extracted."""

    name: str
    model: nn.Module
    device: torch.device
    images: torch.Tensor
    layer: str


def cases(quick: bool) -> list[Case]:
    """The built-in model on the CPU (trained: its real activations), and resnet18/50 on cuda when present."""
    torch.manual_seed(0)
    digits = models.load("digits-cnn")
    from compute import data

    found = [Case("digits-cnn (trained)", digits, torch.device("cpu"), data.load("digits").images, "relu3")]
    if torch.cuda.is_available():
        import torchvision

        count = 1024 if quick else 4096
        images = torch.rand((count, 3, 224, 224), generator=torch.Generator().manual_seed(0))
        for name in ("resnet18", "resnet50"):
            model = torchvision.models.get_model(name, weights=None).eval().cuda()
            found.append(Case(f"{name} (random weights, 224x224)", model, torch.device("cuda"), images,
                              "layer4.1.relu_1" if name == "resnet18" else "layer4.2.relu_2"))
    return found


def smoothgrad_rows(case: Case, quick: bool) -> list[Row]:
    model, image = case.model, case.images[0]
    with torch.no_grad():
        target = int(model(image[None].to(case.device)).argmax())
    noisy = (image.to(case.device) + attribution.smoothgrad_noise(image.to(case.device), SAMPLES, SIGMA))
    repeats = 5 if quick else 21
    times = timed_interleaved({
        "ours": lambda: attribution.smoothgrad(model, image, target, samples=SAMPLES, sigma=SIGMA),
        "limit": lambda: ref.backward_limit(model, noisy, target),
        "captum": lambda: ref.smoothgrad_captum(model, image, target, SAMPLES, SIGMA),
    }, repeats)
    ours, limit, captum = times["ours"], times["limit"], times["captum"]
    what = f"{case.name} on {case.device.type}: SmoothGrad, {SAMPLES} samples, sigma {SIGMA}"
    return [
        Row("C1", f"{what}: ours vs the limit", f"ours: {ms(ours)}",
            f"one forward+backward of {SAMPLES} noisy images on the device: {ms(limit)}",
            f"{ratio(ours / limit)} (ours/limit)", "≤ 1.3", met(ours / limit <= 1.3)),
        Row("C1", f"{what}: captum `NoiseTunnel(Saliency)`, all samples in one batch", f"captum: {ms(captum)}",
            f"ours: {ms(ours)}", f"{ratio(captum / ours)} (captum/ours)"),
    ]


def plain_forwards(model: nn.Module, images: torch.Tensor, batch_size: int) -> None:
    """The baseline: the same batches through the whole model, no hooks, images already on the model's device."""
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size])


def extraction_rows(case: Case, quick: bool) -> list[Row]:
    model, images, layer = case.model, case.images, case.layer
    batch = batch_size_for(case.device, activation_floats(model, tuple(images.shape[1:])))
    if case.device.type == "cuda":
        batch = min(batch, activations.HOST_TO_GPU_MAX_BATCH)  # what extract picks by itself from host memory
    on_device = images.to(case.device)
    repeats = 2 if quick else 5
    times = timed_interleaved({
        "baseline": lambda: plain_forwards(model, on_device, batch),
        "fp32": lambda: activations.extract(model, images, layer, pooled=True, batch_size=batch),
        "bf16": lambda: activations.extract(model, images, layer, pooled=True, batch_size=batch, dtype="bf16"),
    }, repeats)
    del on_device
    subset = images[:batch]
    exact = activations.extract(model, subset, layer, pooled=True, batch_size=batch)
    rounded = activations.extract(model, subset, layer, pooled=True, batch_size=batch, dtype="bf16")
    error = float((rounded - exact).abs().max() / exact.abs().max())
    count = len(images)

    def rate(seconds: float) -> str:
        return f"{count / seconds:,.0f} images/s"

    baseline = times["baseline"]
    what = f"{case.name} on {case.device.type}: extraction of `{layer}` (pooled), {count:,} images, batch {batch}"
    source = "host memory" if case.device.type == "cuda" else "memory"
    return [
        Row("C2", f"{what}: `extract` from {source}, fp32", rate(times["fp32"]),
            f"plain forwards, images already on the device: {rate(baseline)}",
            f"{ratio(baseline / times['fp32'])} (ours/baseline throughput)", "≥ 0.9",
            met(baseline / times["fp32"] >= 0.9)),
        Row("C2", f"{what}: `extract(dtype='bf16')` from {source}; max error {error:.2%} of the layer's largest "
                  f"activation (tolerance {activations.BF16_TOLERANCE:.0%})", rate(times["bf16"]),
            f"plain fp32 forwards on the device: {rate(baseline)}",
            f"{ratio(baseline / times['bf16'])} (ours/baseline throughput)", f"error ≤ {activations.BF16_TOLERANCE:.0%}",
            met(error <= activations.BF16_TOLERANCE)),
    ]


def rows(quick: bool) -> list[Row]:
    found = []
    for case in cases(quick):
        found += smoothgrad_rows(case, quick)
        found += extraction_rows(case, quick)
        if case.device.type == "cuda":
            torch.cuda.empty_cache()
    return found


def check_against_cpu(device: torch.device) -> list[str]:
    """Correctness on the GPU against the CPU (the tests run on the CPU): the prefetching extraction, SmoothGrad's
    on-device noise, Grad-CAM, and one tensor per layer name on resnet18. Returns one line per check."""
    import torchvision

    from compute import gradients

    lines = []
    # TF32 convolutions (cuda's default) differ from the CPU by ~1e-3: compare plain fp32 with plain fp32.
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    cpu_model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    gpu_model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model.to(device)
    images = torch.rand((37, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    for layer in ("layer1.0.relu", "layer1.0.relu_1", "layer4.1.relu_1", "fc"):
        expected = activations.extract(cpu_model, images, layer, batch_size=37)
        for batch in (5, 16):
            for pooled in (False, True):
                got = activations.extract(gpu_model, images, layer, pooled=pooled, batch_size=batch)
                want = expected.mean(tuple(range(2, expected.ndim))) if pooled and expected.ndim > 2 else expected
                error = float((got - want).abs().max() / want.abs().max())
                assert error < 1e-3, (layer, batch, pooled, error)
        panel = activations.single(gpu_model, images[3], [layer])[layer]
        with torch.no_grad(), gradients.capture_output(gpu_model, layer) as captured:
            gpu_model(images[:5].to(device))
        scatter = activations.extract(gpu_model, images[:5], layer, batch_size=2)
        assert torch.allclose(panel, scatter[3], atol=1e-4, rtol=1e-4), layer
        assert torch.allclose(captured[0].cpu(), scatter, atol=1e-4, rtol=1e-4), layer
        lines.append(f"extract from host on {device.type} = cpu, and extract = single = Grad-CAM capture, at {layer}: ok")
    image = images[0]
    maps = [attribution.smoothgrad(gpu_model, image, 3, samples=20, batch_size=b) for b in (1, 7, None)]
    spread = max(float((m - maps[0]).abs().max()) for m in maps) / float(maps[0].abs().max())
    noise = attribution.smoothgrad_noise(image.to(device), 20, 0.15)
    naive = torch.stack([attribution.saliency(gpu_model, (image.to(device) + n), 3) for n in noise]).mean(0)
    naive_error = float((maps[0] - naive).abs().max() / naive.abs().max())
    # Same noise whatever the batch size (the naive loop at batch 1 matches to ~1e-7); what differs between batch
    # sizes on cuda is the convolution kernels' own rounding (measured 0.7% of the largest value on resnet18).
    assert noise.device.type == device.type and spread < 2e-2 and naive_error < 1e-4, (spread, naive_error)
    lines.append(f"SmoothGrad on {device.type}: batch sizes 1/7/all agree (rel. spread {spread:.1e}), batch 1 = naive "
                 f"loop over the device noise (rel. {naive_error:.1e}): ok")
    cam_error = float((gradients.gradcam(gpu_model, image, 3) - gradients.gradcam(cpu_model, image, 3)).abs().max())
    assert cam_error < 1e-3 * float(gradients.gradcam(cpu_model, image, 3).abs().max() + 1e-12), cam_error
    lines.append(f"Grad-CAM on {device.type} = cpu at {gradients.last_conv_block(gpu_model, (3, 64, 64))}: ok")
    torch.backends.cudnn.allow_tf32 = True  # back to the defaults the timings use
    torch.backends.cuda.matmul.allow_tf32 = False
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    parser.add_argument("--check", action="store_true", help="also check GPU results against the CPU (cuda only)")
    args = parser.parse_args()
    if args.check and torch.cuda.is_available():
        try:
            print("\n".join(check_against_cpu(torch.device("cuda"))), flush=True)
        except Exception:  # the timings are still worth having
            import traceback

            traceback.print_exc()
    print(markdown_table(rows(args.quick)))


if __name__ == "__main__":
    main()
