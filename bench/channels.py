"""Channel statistics benchmark: ``python -m bench.channels [--quick]``.

The streaming statistics pass (``compute.channels.stats`` / ``stats_many``) against a plain forward over the same
images in the same run (target: >= 0.8x its speed), and the peak memory of a pass over 50,000 images at 32x32
against what holding every map would take. On a GPU, the same for resnet18 at 224x224 with random weights.
"""
from __future__ import annotations

import argparse
import threading
import time

import torch

from bench.common import Row, markdown_table, met, ratio, sec, timed_interleaved
from compute import channels, models
from compute.device import activation_floats, batch_size_for, pick_device

MEMORY_IMAGES = 50_000


class RandomImages:
    """``count`` images of ``shape`` (C, H, W) made on slicing, on ``device`` (a data set too big to hold)."""

    def __init__(self, count: int, shape: tuple[int, ...], device: torch.device):
        self.count, self.shape, self.device = count, (count, *shape), device

    def __len__(self) -> int:
        return self.count

    def head(self, count: int) -> "RandomImages":
        """The first ``count`` images, still made on slicing."""
        return RandomImages(min(count, self.count), self.shape[1:], self.device)

    def __getitem__(self, index: slice) -> torch.Tensor:
        start, stop, _ = index.indices(self.count)
        generator = torch.Generator(self.device).manual_seed(start)
        return torch.rand((stop - start, *self.shape[1:]), generator=generator, device=self.device)


class PeakRSS:
    """Peak resident memory growth of this process inside the block, sampled every millisecond (psutil)."""

    def __enter__(self) -> "PeakRSS":
        import psutil

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *_exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.start


def plain_forward(model: torch.nn.Module, images, batch_size: int) -> None:
    """The baseline: the model's forward over ``images`` in the same batches, nothing kept."""
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size].to(device, non_blocking=True))


def mb(count: float) -> str:
    return f"{count / 1024**2:.0f} MB" if count < 1024**3 else f"{count / 1024**3:.1f} GB"


def speed_rows(key: str, label: str, model, images, layer: str, batch_size: int, repeats: int) -> list[Row]:
    """One layer's statistics pass and the all-layer pass (dead table), each against a plain forward."""
    every_layer = channels.channel_layers(model, tuple(images.shape[1:]))
    seconds = timed_interleaved({
        "forward": lambda: plain_forward(model, images, batch_size),
        "one layer": lambda: channels.stats.uncached(model, images, layer, k=9, batch_size=batch_size),
        "every layer": lambda: channels.stats_many.uncached(model, images, every_layer, k=9, batch_size=batch_size),
    }, repeats=repeats)
    rows = []
    for suffix, name, what in (("a", "one layer", f"`stats(..., '{layer}')`"),
                               ("b", "every layer", f"`stats_many` of all {len(every_layer)} ReLU layers "
                                                     "in one pass (the dead table)")):
        speed = seconds["forward"] / seconds[name]
        rows.append(Row(f"{key}{suffix}", f"{label}: {what}, {len(images)} images, batch {batch_size}",
                        sec(seconds[name]), f"plain forward {sec(seconds['forward'])}", ratio(speed), "≥ 0.8×",
                        met(speed >= 0.8)))
    return rows


def peak_memory(fn, device: torch.device) -> int:
    """Peak memory growth while ``fn()`` runs: allocated GPU memory on cuda, resident memory (sampled) on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(device) - before
    with PeakRSS() as memory:
        fn()
    return memory.growth


def memory_row(key: str, label: str, model, images, layer: str, batch_size: int, device: torch.device) -> Row:
    """Peak memory of one streaming pass over ``images`` against the same pass over a tenth of them (streaming:
    the peak does not grow with the number of images), a plain forward's peak and all of ``layer``'s maps."""
    with torch.no_grad():
        one = model_output_shape(model, images[0:1].to(device), layer)
    all_maps = len(images) * one.numel() * 4
    tenth = len(images) // 10
    subset = images.head(tenth) if isinstance(images, RandomImages) else images[:tenth]
    # One untimed pass first: the allocator's first growth is not the pass's own (seen: +20 MB on the first run).
    channels.stats.uncached(model, subset, layer, k=9, batch_size=batch_size)
    forward = peak_memory(lambda: plain_forward(model, images, batch_size), device)
    small = peak_memory(lambda: channels.stats.uncached(model, subset, layer, k=9, batch_size=batch_size), device)
    streaming = peak_memory(lambda: channels.stats.uncached(model, images, layer, k=9, batch_size=batch_size), device)
    where = "GPU memory (max_memory_allocated)" if device.type == "cuda" else "RSS growth (psutil, sampled every ms)"
    return Row(key, f"{label}: peak memory of `stats(..., '{layer}')` over {len(images):,} images, batch "
                    f"{batch_size}; {where}. All its maps at once: {mb(all_maps)}; a plain forward: {mb(forward)}",
               mb(streaming), f"{tenth:,} images: {mb(small)}", ratio(streaming / max(small, 1)),
               "flat in N (≤ 1.1× + 32 MB of allocator noise)", met(streaming <= 1.1 * small + 32 * 1024**2))


def model_output_shape(model, image: torch.Tensor, layer: str) -> torch.Tensor:
    from compute import activations

    return activations.run_until(model, image, layer)[0]


def default_batch(model, device: torch.device, shape: tuple[int, ...]) -> int:
    """The batch size compute would pick for ``model`` on ``device`` (the same for the forward and the pass)."""
    return batch_size_for(device, activation_floats(model, shape))


def rows(quick: bool) -> list[Row]:
    device = pick_device("auto")
    repeats = 2 if quick else 5
    torch.manual_seed(0)
    models.flush_denormals()
    digits = models.build("digits-cnn").to(device).eval()
    digits_batch = default_batch(digits, device, (1, 32, 32))
    # On a GPU the digits CNN is so small that a few thousand images take milliseconds: time more of them.
    count = (20_000 if quick else 100_000) if device.type == "cuda" else (2_000 if quick else 10_000)
    result = speed_rows("C1", f"digits CNN on {device.type}", digits, RandomImages(count, (1, 32, 32), device),
                        "relu3", digits_batch, repeats)
    # The images themselves (205 MB at 50,000 x 1 x 32 x 32) exist before the measurement starts.
    held = torch.rand(MEMORY_IMAGES, 1, 32, 32)
    result.append(memory_row("C2", f"digits CNN on {device.type}", digits, held, "relu1", digits_batch, device))
    del held
    if device.type == "cuda":
        import torchvision

        resnet = torchvision.models.resnet18(weights=None).to(device).eval()
        resnet_batch = default_batch(resnet, device, (3, 224, 224))
        images = RandomImages(2_048 if quick else 10_240, (3, 224, 224), device)
        result += speed_rows("C3", "resnet18 224x224 (random weights) on cuda", resnet, images, "layer4.1.relu_1",
                             resnet_batch, repeats)
        result.append(memory_row("C4", "resnet18 224x224 on cuda", resnet,
                                 RandomImages(MEMORY_IMAGES, (3, 224, 224), device),
                                 "layer1.0.relu", resnet_batch, device))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    arguments = parser.parse_args()
    print(markdown_table(rows(arguments.quick)))


if __name__ == "__main__":
    main()
