"""Adversarial examples (Goodfellow et al. 2015; Madry et al. 2018): inputs that maximise the error.

Images are ``(N, C, H, W)`` float tensors in [0, 1]; normalisation is part of the model, so ``epsilon`` is in pixel
units (8/255 moves every pixel by at most 8 grey levels) and every result stays inside [0, 1] and within
``epsilon`` of its image in L-infinity. Untargeted attacks raise the cross-entropy of the true label; targeted
ones (``target`` a class, or one per image) lower the cross-entropy of the target. The model must be in eval
mode; its device decides where the work runs, and results come back on the images' device.

The page's jobs of this family (``adversarial.attack``, ``adversarial.smallest_epsilon``,
``adversarial.robustness``) are in :mod:`compute.jobs.adversarial`.
"""
from __future__ import annotations

import hashlib
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from compute.cache import memoize
from compute.device import model_device
from compute.gradients import gradient_batch_size
from compute.progress import Progress



def _per_image(values, count: int, device: torch.device, dtype=torch.int64) -> torch.Tensor:
    """A scalar or ``count`` values as a (count,) tensor on ``device``."""
    tensor = torch.as_tensor(values, dtype=dtype).to(device).reshape(-1)
    return tensor.expand(count).clone() if tensor.numel() == 1 else tensor


def _ascent_sign(model, images: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None):
    """(sign of the gradient of the attack objective w.r.t. ``images``, the logits at ``images``).

    Summed, not averaged, over the batch: each image's gradient is then its own, whatever the batch size.
    """
    with torch.enable_grad():
        inputs = images.detach().requires_grad_(True)
        logits = model(inputs)
        if target is None:
            objective = F.cross_entropy(logits, labels, reduction="sum")
        else:
            objective = -F.cross_entropy(logits, target, reduction="sum")
        (gradient,) = torch.autograd.grad(objective, inputs)
    return gradient.sign(), logits.detach()


def fgsm(model, images: torch.Tensor, labels, epsilon: float, target=None) -> torch.Tensor:
    """Fast gradient sign method: one step of size ``epsilon`` along the sign of the loss gradient, clipped to
    [0, 1]. images: (N, C, H, W) in [0, 1]; labels, target: a class or (N,) classes. Returns (N, C, H, W)."""
    device = model_device(model)
    originals = images.to(device)
    labels = _per_image(labels, len(images), device)
    target = None if target is None else _per_image(target, len(images), device)
    sign, _ = _ascent_sign(model, originals, labels, target)
    return (originals + epsilon * sign).clamp(0.0, 1.0).to(images.device)


def image_seed(image: torch.Tensor, seed: int = 0) -> int:
    """A 63-bit seed from an image's content and ``seed``: the same image gets the same random start anywhere."""
    data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    digest = hashlib.blake2b(data, digest_size=8, key=str(int(seed)).encode()).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _unit_noise(images: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
    """Uniform noise in [-1, 1) of the images' shape, each image's from its own CPU generator (device-independent)."""
    noise = torch.empty(images.shape, dtype=torch.float32)
    generator = torch.Generator()
    for row, seed in enumerate(seeds):
        generator.manual_seed(int(seed))
        noise[row].uniform_(-1.0, 1.0, generator=generator)
    return noise


class AttackResult(NamedTuple):
    """images: (N, C, H, W) adversarial images; predicted: (N,) the model's class for each, at the last forward."""

    images: torch.Tensor
    predicted: torch.Tensor


def _pgd_batch(model, originals, labels, target, epsilon, step_size, steps, noise, stop_when_fooled, on_step=None):
    """PGD on one batch already on the model's device; epsilon and step_size are (B, 1, 1, 1). ``on_step(step)``
    after each step: a long attack reports (and can be stopped) step by step."""
    current = (originals + noise * epsilon).clamp(0.0, 1.0)
    predicted = torch.empty(len(originals), dtype=torch.int64, device=originals.device)
    active = torch.arange(len(originals), device=originals.device)  # rows still being attacked
    for step in range(steps + 1):
        x = current[active]
        if step == steps:  # the final iterate needs its prediction only
            with torch.no_grad():
                predicted[active] = model(x).argmax(1)
            break
        sign, logits = _ascent_sign(model, x, labels[active], None if target is None else target[active])
        predicted[active] = logits.argmax(1)
        if stop_when_fooled:
            fooled = is_fooled(predicted[active], labels[active], None if target is None else target[active])
            active = active[~fooled]  # a fooled image keeps the iterate that fooled it
            if len(active) == 0:
                break
            x, sign = x[~fooled], sign[~fooled]
        low, high = originals[active] - epsilon[active], originals[active] + epsilon[active]
        x = x + step_size[active] * sign
        current[active] = torch.maximum(torch.minimum(x, high), low).clamp(0.0, 1.0)
        if on_step is not None:
            on_step(step + 1)
    return current, predicted


def is_fooled(predicted: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    return predicted != labels if target is None else predicted == target


def pgd(model, images: torch.Tensor, labels, epsilon, steps: int, step_size, target=None, seed: int = 0,
        batch_size: int | None = None, image_seeds: Sequence[int] | None = None, stop_when_fooled: bool = False,
        progress: Progress | None = None, return_predictions: bool = False):
    """Projected gradient descent in the L-infinity ball (Madry et al. 2018), with a random start.

    images: (N, C, H, W) in [0, 1]; labels, target: a class or (N,) classes; epsilon, step_size: a number or (N,)
    numbers in pixel units. The start is the image plus uniform noise in [-epsilon, epsilon], drawn from a
    generator seeded per image (by ``image_seeds``, else by the image's content and ``seed``), so a batch gives
    the same images as the same attack one image at a time. Then ``steps`` signed-gradient steps, each projected
    back into the ball and [0, 1]. With ``stop_when_fooled`` each image keeps the first iterate that fools the
    model. Returns (N, C, H, W) on the images' device; with ``return_predictions`` an :class:`AttackResult`.
    """
    device = model_device(model)
    count = len(images)
    labels = _per_image(labels, count, device)
    target = None if target is None else _per_image(target, count, device)
    epsilon = _per_image(epsilon, count, device, torch.float32).reshape(-1, 1, 1, 1)
    step_size = _per_image(step_size, count, device, torch.float32).reshape(-1, 1, 1, 1)
    seeds = list(image_seeds) if image_seeds is not None else None
    batch_size = batch_size or gradient_batch_size(model, tuple(images.shape[1:]))
    results, predictions = [], []
    for start in range(0, count, batch_size):
        rows = slice(start, min(count, start + batch_size))
        originals = images[rows].to(device)
        batch_seeds = seeds[rows] if seeds is not None else [image_seed(image, seed) for image in originals]
        noise = _unit_noise(originals, batch_seeds).to(device)
        on_step = None
        if progress and steps > 1:
            def on_step(step: int, first: int = rows.start, size: int = rows.stop - rows.start) -> None:
                progress((first + size * step / steps) / count, f"PGD step {step}/{steps} of images "
                                                                f"{first + 1}-{first + size} of {count}")
        adversarial, predicted = _pgd_batch(model, originals, labels[rows], None if target is None else target[rows],
                                            epsilon[rows], step_size[rows], steps, noise, stop_when_fooled, on_step)
        results.append(adversarial.to(images.device))
        predictions.append(predicted.cpu())
        if progress:
            progress(rows.stop / count, f"PGD: {rows.stop}/{count} images")
    result = AttackResult(torch.cat(results), torch.cat(predictions))
    return result if return_predictions else result.images


def madry_step_size(epsilon: float, steps: int) -> float:
    """The usual step: 2.5 epsilon / steps, so the walk can cross the ball and back (Madry et al. 2018)."""
    return 2.5 * epsilon / max(1, steps)


def predict(model, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities (N, K) on the CPU, batched under no_grad."""
    device = model_device(model)
    with torch.no_grad():
        return torch.cat([torch.softmax(model(images[i:i + batch_size].to(device)).float(), 1).cpu()
                          for i in range(0, len(images), batch_size)])


@memoize
def smallest_flipping_epsilon(model, image: torch.Tensor, label: int, target: int | None = None,
                              max_epsilon: float = 32 / 255, tolerance: float = 0.25 / 255, steps: int = 20,
                              candidates: int = 8, seed: int = 0, progress: Progress | None = None):
    """The smallest epsilon at which PGD flips ``image`` (C, H, W), within ``tolerance``: (epsilon, image).

    A batched bisection: each round attacks ``candidates`` copies at evenly spaced epsilons between the largest
    that did not flip and the smallest that did, with the same random start scaled to each epsilon
    (``steps`` steps of :func:`madry_step_size`, each copy keeping its first fooling iterate). "Flips" means
    another class than ``label`` (untargeted) or ``target``. Returns ``(0.0, image)`` when the model is already
    fooled, and ``(None, None)`` when even ``max_epsilon`` does not flip it. The image is (C, H, W) on the CPU.
    """
    image = image.detach().cpu()
    predicted = int(predict(model, image[None]).argmax())
    if (predicted != label) if target is None else (predicted == target):
        return 0.0, image.clone()
    low, high, best = 0.0, None, None
    shared_seed = image_seed(image, seed)
    rounds = 0
    while high is None or high - low > tolerance:
        top = max_epsilon if high is None else high
        epsilons = low + (top - low) * np.arange(1, candidates + 1) / candidates
        copies = image[None].expand(candidates, *image.shape)
        attack = pgd(model, copies, label, epsilons, steps, [madry_step_size(e, steps) for e in epsilons],
                     target=target, image_seeds=[shared_seed] * candidates, stop_when_fooled=True,
                     return_predictions=True)
        fooled = is_fooled(attack.predicted, torch.full((candidates,), label),
                         None if target is None else torch.full((candidates,), target)).numpy()
        rounds += 1
        if progress:
            progress(min(0.95, rounds / 4), f"smallest epsilon: round {rounds}, between {low * 255:.2f}/255 "
                                            f"and {top * 255:.2f}/255")
        if not fooled.any():
            if high is None:
                return None, None
            low = float(epsilons[-1])  # only rounding can get here (``top`` flipped before): keep ``best``
            continue
        first = int(np.argmax(fooled))
        high, best = float(epsilons[first]), attack.images[first].clone()
        low = float(epsilons[first - 1]) if first > 0 else low
    return high, best


class RobustnessCurve(NamedTuple):
    """Per epsilon (ascending, pixel units): the attack success rate (among the images the attack applies to:
    correctly classified for untargeted attacks, not already of the target class for targeted ones) and the
    accuracy under attack over all images. ``clean_accuracy`` is the accuracy at no attack; ``count`` the images."""

    epsilons: np.ndarray
    success_rate: np.ndarray
    accuracy: np.ndarray
    clean_accuracy: float
    count: int


@memoize
def success_curve(model, images: torch.Tensor, labels: torch.Tensor, epsilons: Sequence[float], steps: int = 10,
                  step_size_factor: float = 2.5, target=None, seed: int = 0, batch_size: int | None = None,
                  progress: Progress | None = None) -> RobustnessCurve:
    """Success rate and accuracy of ``steps``-step PGD (step ``step_size_factor * epsilon / steps``) per epsilon.

    Monotone by construction: an image counts as fooled at epsilon once PGD fooled it at that or any smaller
    epsilon, or at any iterate along the way (every iterate lies inside the ball, so each is a valid adversarial
    example). So success never falls and accuracy never rises as epsilon grows, and an image already fooled is
    not attacked again (which is also what keeps the curve fast). Batched; random starts seeded per image.
    """
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    count = len(images)
    targets = None if target is None else _per_image(target, count, torch.device("cpu"))
    order = np.argsort(np.asarray(epsilons, dtype=np.float64), kind="stable")
    ordered = np.asarray(epsilons, dtype=np.float64)[order]
    clean = predict(model, images).argmax(1)
    correct = clean == labels
    applies = correct if targets is None else labels != targets
    fooled = ~applies if targets is None else clean == targets  # nothing to do for these
    robust = correct.clone()
    seeds = [image_seed(image, seed) for image in images]
    success, accuracy = [], []
    for position, epsilon in enumerate(ordered):
        todo = torch.nonzero(applies & ~fooled).flatten()
        if epsilon > 0 and len(todo):
            report = None if progress is None else (
                lambda f, _t, p=position, e=epsilon: progress((p + f) / len(ordered),
                                                              f"PGD at epsilon {e * 255:g}/255 ({p + 1}/{len(ordered)})"))
            attack = pgd(model, images[todo], labels[todo], float(epsilon), steps,
                         step_size_factor * float(epsilon) / steps, target=None if targets is None else targets[todo],
                         batch_size=batch_size, image_seeds=[seeds[i] for i in todo.tolist()],
                         stop_when_fooled=True, progress=report, return_predictions=True)
            fooled[todo] |= is_fooled(attack.predicted, labels[todo], None if targets is None else targets[todo])
            robust[todo] &= attack.predicted == labels[todo]
        elif progress:
            progress((position + 1) / len(ordered), f"epsilon {epsilon * 255:g}/255")
        success.append(float((fooled & applies).sum()) / max(1, int(applies.sum())))
        accuracy.append(float(robust.float().mean()))
    inverse = np.argsort(order)  # back to the caller's order
    return RobustnessCurve(np.asarray(epsilons, dtype=np.float64), np.asarray(success)[inverse],
                           np.asarray(accuracy)[inverse], float(correct.float().mean()), count)


# ------------------------------------------------------------------------------------------ one image, as the page shows it

TOP_K = 5


def summary(probabilities: torch.Tensor) -> dict:
    """Predicted class, its confidence and the top-5 [(class, probability)] of one probability vector (K,)."""
    values, classes = probabilities.topk(min(TOP_K, probabilities.numel()))
    return {"predicted": int(classes[0]), "confidence": float(values[0]),
            "top5": [(int(c), float(v)) for c, v in zip(classes, values)]}


def panel(model, original: torch.Tensor, adversarial: torch.Tensor) -> dict:
    """The arrays and predictions of the slide's panel: original | perturbation | adversarial, (C, H, W) each."""
    before, after = predict(model, torch.stack([original, adversarial]))
    return {"original": original.numpy(), "adversarial": adversarial.numpy(),
            "perturbation": (adversarial - original).numpy(),
            "linf": float((adversarial - original).abs().max()), "before": summary(before), "after": summary(after)}


@memoize
def attacked(model, original: torch.Tensor, label: int, method: str, epsilon: float, steps: int,
             step_size: float, target: int | None, seed: int, progress: Progress | None = None) -> torch.Tensor:
    """One image (C, H, W) attacked with FGSM or PGD, cached: every panel of an adversarial selection asks for it."""
    if method == "fgsm":
        return fgsm(model, original[None], label, epsilon, target=target)[0].cpu()
    return pgd(model, original[None], label, epsilon, steps, step_size, target=target, seed=seed,
               progress=progress)[0].cpu()
