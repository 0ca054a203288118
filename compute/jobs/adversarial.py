"""The adversarial view's jobs: one attacked image placed into the scatter (``adversarial.attack``), the smallest
epsilon that flips an image, and the robustness curve over the test split; and the ``adversarial`` image variant,
so a selection can name an attacked image and every panel opens for it.

Every value passes ``compute.specs.adversarial``'s specs first, whether it came from the view's controls or from a
link: no request can ask for an unbounded attack.
"""
from __future__ import annotations

import torch

from compute import activations, embedding as layouts
from compute.adversarial import (attacked, is_fooled, madry_step_size, panel, smallest_flipping_epsilon,
                                 success_curve)
from compute.errors import UserError
from compute.jobs.extraction import extract_on_cluster
from compute.jobs.workspace import Workspace
from compute.progress import Progress, scaled
from compute.specs import adversarial as specs
from compute.specs.embedding import EMBEDDERS


def _check_target(target: int | None, classes: int) -> None:
    if target is not None and not 0 <= int(target) < classes:
        raise UserError(f"target class {target} does not exist: the model has classes 0 to {classes - 1}")


def _attack_settings(workspace: Workspace, method, epsilon, steps, step_size, target, seed) -> dict:
    """The attack's settings, clamped to the spec, with the step size made explicit (Madry et al.'s by default)."""
    if method not in specs.METHODS:
        raise UserError(f"unknown attack {method!r}; choose {' or '.join(specs.METHODS)}")
    _check_target(target, len(workspace.dataset.classes))
    settings = specs.coerced(specs.ATTACK_PARAMS, {"method": method, "epsilon": epsilon, "steps": steps,
                                                   "step_size": step_size, "seed": seed})
    if settings["step_size"] is None:
        settings["step_size"] = madry_step_size(settings["epsilon"], settings["steps"])
    return {**settings, "target": None if target is None else int(target)}


def _attacked(workspace: Workspace, model, index: int, settings: dict, progress: Progress | None) -> torch.Tensor:
    original = workspace.image(index).float().cpu()
    label = int(workspace.dataset.labels[int(index)])
    return attacked(model, original, label, settings["method"], settings["epsilon"], settings["steps"],
                    settings["step_size"], settings["target"], settings["seed"], progress=progress)


def adversarial_image(workspace: Workspace, index: int, method: str = "fgsm", epsilon: float = 8 / 255,
                      steps: int = 10, step_size: float | None = None, target: int | None = None, seed: int = 0,
                      progress: Progress | None = None) -> torch.Tensor:
    """Data-set image ``index`` attacked as ``adversarial.attack`` attacks it (cached): the selection can name this
    image, and every detail and attribution panel then opens for it."""
    settings = _attack_settings(workspace, method, epsilon, steps, step_size, target, seed)
    with workspace.lock:
        return _attacked(workspace, workspace.model(), index, settings, progress)


def attack_job(workspace: Workspace, progress, index: int, method: str = "fgsm", epsilon: float = 8 / 255,
               steps: int = 10, step_size: float | None = None, target: int | None = None, layer: str | None = None,
               embedding: str | None = None, mode: str = "auto", seed: int = 0) -> dict:
    """Attack data-set image ``index`` (FGSM or PGD) and place both images into the scatter of ``layer``.

    Returns ``original``, ``adversarial``, ``perturbation`` ((C, H, W) float32 arrays; perturbation = adversarial -
    original), ``linf``, ``before`` / ``after`` (``predicted``, ``confidence``, ``top5`` [(class, probability)]),
    ``fooled``, ``label`` and the attack's parameters. ``points`` holds the scatter coordinates (x, y) of the
    original (its own point in the layout), of the original placed like a new image, and of the adversarial image;
    None with ``placement_message`` saying why when there is no layer or embedding, or the embedding cannot place
    new points.
    """
    settings = _attack_settings(workspace, method, epsilon, steps, step_size, target, seed)
    dataset = workspace.dataset
    original = workspace.image(index).float().cpu()
    label = int(dataset.labels[int(index)])
    with workspace.lock:
        model = workspace.model(progress=scaled(progress, 0.0, 0.1))
        progress(0.1, f"{settings['method'].upper()} at epsilon {settings['epsilon'] * 255:.3g}/255")
        adversarial = _attacked(workspace, model, index, settings, scaled(progress, 0.1, 0.2))
        pgd = settings["method"] == "pgd"
        result = {"index": int(index), "label": label, "method": settings["method"],
                  "epsilon": float(settings["epsilon"]), "steps": settings["steps"] if pgd else 1,
                  "step_size": settings["step_size"] if pgd else settings["epsilon"], "target": settings["target"],
                  **panel(model, original, adversarial)}
        target_tensor = None if target is None else torch.tensor([int(target)])
        result["fooled"] = bool(is_fooled(torch.tensor([result["after"]["predicted"]]), torch.tensor([label]),
                                          target_tensor)[0])
        result["points"], result["placement_message"] = None, "no scatter to place the images in"
        if not layer or not embedding:
            return result
        mode = layouts.feature_mode(tuple(activations.single(model, original, [layer])[layer].shape), mode)
        features = layouts.features_of(model, torch.stack([original, adversarial]), layer, mode)
        extract_on_cluster(workspace, model, layer, mode, scaled(progress, 0.2, 0.4))  # several workers: all extract
        layouts.layer_reduction(model, dataset, layer, mode, progress=scaled(progress, 0.2, 0.4))
    # The t-SNE/UMAP fit and transform need no model: other jobs may use it meanwhile.
    layout = layouts.layer_layout(model, dataset, layer, embedding, mode, progress=scaled(progress, 0.4, 0.9))
    progress(0.9, f"placing the images into the {EMBEDDERS[embedding].label} layout")
    try:
        placed = layout.place(features)
    except layouts.CannotPlace as error:
        result["placement_message"] = str(error)
        return result
    result["points"] = {"original": layout.coordinates[int(index)].tolist(), "original_placed": placed[0].tolist(),
                        "adversarial": placed[1].tolist()}
    result["placement_message"] = None
    progress(1.0, "placed")
    return result


def smallest_epsilon_job(workspace: Workspace, progress, index: int, target: int | None = None,
                         max_epsilon: float = 32 / 255, tolerance: float = 0.25 / 255, steps: int = 20,
                         seed: int = 0) -> dict:
    """The smallest PGD epsilon that flips image ``index`` and the image at it (the panel's arrays), or a message."""
    _check_target(target, len(workspace.dataset.classes))
    chosen = specs.coerced(specs.SMALLEST_PARAMS, {"max_epsilon": max_epsilon, "tolerance": tolerance,
                                                   "steps": steps, "seed": seed})
    original = workspace.image(index).float().cpu()
    label = int(workspace.dataset.labels[int(index)])
    with workspace.lock:
        model = workspace.model(progress=scaled(progress, 0.0, 0.1))
        epsilon, adversarial = smallest_flipping_epsilon(model, original, label, target=target,
                                                         progress=scaled(progress, 0.1, 1.0), **chosen)
        if epsilon is None:
            return {"index": int(index), "label": label, "target": target, "epsilon": None,
                    "message": f"{chosen['steps']}-step PGD does not flip this image up to epsilon "
                               f"{chosen['max_epsilon'] * 255:.3g}/255"}
        result = {"index": int(index), "label": label, "target": target, "epsilon": float(epsilon),
                  "tolerance": float(chosen["tolerance"]), "message": None, **panel(model, original, adversarial)}
    progress(1.0, f"flips at epsilon {epsilon * 255:.3g}/255")
    return result


def robustness_job(workspace: Workspace, progress, epsilons=None, steps: int = 10, target: int | None = None,
                   seed: int = 0, max_images: int = 2000) -> dict:
    """Success rate and accuracy under PGD per epsilon over the test split (cached; see :func:`success_curve`)."""
    _check_target(target, len(workspace.dataset.classes))
    chosen = specs.coerced(specs.ROBUSTNESS_PARAMS, {"steps": steps, "seed": seed, "max_images": max_images})
    dataset = workspace.dataset
    indices = torch.nonzero(dataset.is_test).flatten()
    if len(indices) == 0:
        raise UserError("the data set has no test split to measure robustness on")
    if len(indices) > chosen["max_images"]:  # evenly spaced, so every part of the split is represented
        indices = indices[torch.linspace(0, len(indices) - 1, chosen["max_images"]).round().long()]
    images = dataset.images[indices.tolist()]
    with workspace.lock:
        model = workspace.model(progress=scaled(progress, 0.0, 0.05))
        curve = success_curve(model, images, dataset.labels[indices], specs.epsilons(epsilons),
                              steps=chosen["steps"], target=target, seed=chosen["seed"],
                              progress=scaled(progress, 0.05, 1.0))
    progress(1.0, f"robustness over {curve.count} test images")
    return {"epsilons": curve.epsilons, "success_rate": curve.success_rate, "accuracy": curve.accuracy,
            "clean_accuracy": curve.clean_accuracy, "count": curve.count, "steps": chosen["steps"], "target": target}


JOBS = {"adversarial.attack": attack_job, "adversarial.smallest_epsilon": smallest_epsilon_job,
        "adversarial.robustness": robustness_job}
