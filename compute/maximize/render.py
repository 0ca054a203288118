"""The one optimisation loop (Lucent's ``render_vis``), and :func:`maximize` / :func:`maximize_layer` around it.

Every image of a batch is independent: its start and its random transforms come from its own seed, the loss is
a sum over images and Adam works element by element, so image k of a batch equals the same objective run alone
with the same seed (a test checks it). That is what lets a whole layer (one image per channel) or several starts
run as one batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from compute import activations
from compute.device import model_device
from compute.maximize import objectives as objective_table
from compute.maximize import param as param_table
from compute.maximize import transforms as transform_table
from compute.maximize.objectives import LOGITS, Objective

DRAWS_PER_STEP = 8  # random numbers each image may use per step (4 are used by the default transforms)
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]  # (steps done, images (n,C,H,W), history (steps, n))


@dataclass
class MaximizeResult:
    """What one run found. Tensors on the CPU, float32.

    images: (n, C, H, W) in [0, 1]; start_images likewise; history: (steps, n) objective on the transformed
    images at each step; values / start_values: (n,) objective of the final / first images without transforms;
    probabilities: (n, K) the model's softmax for the final images; importance: (n, H, W) in [0, 1], the
    accumulated |gradient| of each pixel (MACO's transparency map: where the image matters).
    """

    images: torch.Tensor
    history: torch.Tensor
    values: torch.Tensor
    start_images: torch.Tensor
    start_values: torch.Tensor
    probabilities: torch.Tensor
    importance: torch.Tensor
    objective: tuple
    seeds: list[int]
    settings: dict = field(default_factory=dict)

    def top_k(self, k: int = 5) -> list[list[tuple[int, float]]]:
        """For each image, its ``k`` most probable classes as (class index, probability)."""
        values, indices = self.probabilities.topk(min(k, self.probabilities.shape[1]), dim=1)
        return [[(int(i), float(v)) for i, v in zip(row_i, row_v)] for row_i, row_v in zip(indices, values)]


def _model_like(model: nn.Module) -> torch.Tensor:
    """An empty tensor with the model's device and floating dtype (float64 models optimise in float64)."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return torch.empty(0, device=model_device(model), dtype=dtype)


def image_shape_of(model: nn.Module, image_shape: Sequence[int] | None = None) -> tuple[int, int, int]:
    """``image_shape`` if given, else ``model.input_shape``, else (input channels of the first conv, 224, 224)."""
    if image_shape is not None:
        return tuple(int(v) for v in image_shape)  # type: ignore[return-value]
    if getattr(model, "input_shape", None):
        return tuple(model.input_shape)
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return (first_conv.in_channels if first_conv is not None else 3, 224, 224)


def forward(model: nn.Module, images: torch.Tensor, objective: Objective) -> dict[str, torch.Tensor]:
    """The outputs ``objective`` reads for ``images``: its layers (hooks always removed) and, if needed, the logits.

    An objective on one layer stops the forward there (later layers are not computed).
    """
    layers = sorted(objective.layers - {LOGITS})
    if not objective.needs_logits and len(layers) == 1:
        return {layers[0]: activations.run_until(model, images, layers[0])}
    with activations.capture(model, layers) as captured:
        logits = model(images)
        outputs = dict(captured)
    missing = [name for name in layers if name not in outputs]
    if missing:
        raise activations.LayerError(f"layer {missing[0]!r} is not used in the model's forward pass")
    outputs[LOGITS] = logits
    return outputs


def _stream(seed: int, steps: int) -> tuple[torch.Generator, torch.Tensor]:
    """An image's generator (for its start) and its block of transform draws (steps, DRAWS_PER_STEP)."""
    generator = torch.Generator().manual_seed(int(seed))
    # Its own stream, so the size of the start's draw (which differs by parameterization) never shifts the draws.
    draws_generator = torch.Generator().manual_seed(int(seed) + 0x9E3779B1)
    return generator, torch.rand((steps, DRAWS_PER_STEP), generator=draws_generator, dtype=torch.float64)


def render(
    model: nn.Module,
    objective: Objective,
    parameterization: param_table.Parameterization,
    draws: torch.Tensor,
    image_shape: tuple[int, int, int],
    center: torch.Tensor,
    steps: int,
    lr: float = 0.05,
    transforms: dict[str, dict] | None = None,
    regularizers: dict[str, dict] | None = None,
    callback: Callback | None = None,
    report_every: int = 8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam on ``parameterization`` for ``steps`` steps; returns (images, history (steps, n), importance (n, H, W)).

    Each step: images -> pad -> one resampling through the product of the geometric transforms' matrices
    (each image its own) -> crop to the model's size -> objective; the loss is
    -objective + weighted penalties; after the step the projections edit the image. ``callback(step, images,
    history)`` runs every ``report_every`` steps and after the last; an exception it raises stops the loop.
    """
    height, width = image_shape[1:]
    transforms = transforms or {}
    regularizers = regularizers or {}
    chosen_transforms = [(transform_table.TRANSFORMS[name], transforms[name]) for name in transform_table.TRANSFORMS
                         if name in transforms]
    penalties = [(transform_table.REGULARIZERS[name], params) for name, params in regularizers.items()
                 if transform_table.REGULARIZERS[name].kind == "penalty"]
    projections = [(transform_table.REGULARIZERS[name], params) for name, params in regularizers.items()
                   if transform_table.REGULARIZERS[name].kind == "projection"]
    optimizer = torch.optim.Adam(parameterization.tensors, lr=lr)
    images = parameterization.images()
    count = images.shape[0]
    history = torch.zeros(steps, count, device=images.device, dtype=images.dtype)
    importance = torch.zeros(count, height, width, device=images.device, dtype=images.dtype)
    for step in range(steps):
        images = parameterization.images()
        column = iter(range(DRAWS_PER_STEP))
        draw = lambda: draws[:, step, next(column)]  # noqa: E731  (one uniform per image, its own stream)
        seen = images
        matrices = None
        for method, params in chosen_transforms:
            if method.kind == "pad":
                seen = method.function(seen, **params, center=center)
            else:
                step_matrices = method.function(draw, images, seen.shape[2], seen.shape[3], **params)
                matrices = step_matrices if matrices is None else matrices @ step_matrices
        if matrices is not None:
            seen = transform_table.resample(seen, matrices, center)
        values = objective.diagonal(forward(model, transform_table.center_crop(seen, height, width), objective))
        loss = -values.sum()
        for method, params in penalties:
            loss = loss + params.get("weight", 1.0) * method.function(images, center).sum()
        gradients = torch.autograd.grad(loss, [images, *parameterization.tensors])
        for tensor, gradient in zip(parameterization.tensors, gradients[1:]):
            tensor.grad = gradient
        optimizer.step()
        if parameterization.after_step is not None:
            parameterization.after_step()
        # The loss's gradient points downhill; the objective's is its opposite (what clipping by contribution needs).
        objective_gradient = -gradients[0]
        importance += objective_gradient.abs().sum(dim=1)
        if projections or parameterization.project_after_step:
            with torch.no_grad():
                edited = parameterization.images()
                for method, params in projections:
                    edited = method.function(edited, objective_gradient, step, center, **params)
                parameterization.assign(edited)
        history[step] = values.detach()
        if callback is not None and ((step + 1) % report_every == 0 or step + 1 == steps):
            with torch.no_grad():
                callback(step + 1, parameterization.images().detach(), history[: step + 1])
    with torch.no_grad():
        final = parameterization.images().detach()
    peak = importance.flatten(1).max(dim=1).values.clamp(min=1e-12)
    return final, history, importance / peak[:, None, None]


def _clean_pass(model: nn.Module, images: torch.Tensor, objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
    """Objective values (n,) and softmax probabilities (n, K) of ``images`` as they are (no transforms)."""
    with torch.no_grad(), activations.capture(model, sorted(objective.layers - {LOGITS})) as captured:
        logits = model(images)
        outputs = {**captured, LOGITS: logits}
        return objective.diagonal(outputs), torch.softmax(logits.float(), dim=1)


def resolve_settings(image_shape: Sequence[int], parameterization: str = "fourier", lr: float = 0.05,
                     transforms: dict | None = None, regularizers: dict | None = None,
                     parameterization_params: dict | None = None, center: Any = 0.5) -> dict:
    """Every setting of a run made explicit (defaults filled in from the tables), so it can key a cache.

    ``transforms=None`` picks :func:`~compute.maximize.transforms.suggested_transforms` for the image size;
    ``{}`` turns them off. Unknown names raise ValueError listing the valid ones.
    """
    if parameterization not in param_table.PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {parameterization!r}; choose one of "
                         f"{', '.join(param_table.PARAMETERIZATIONS)}")
    if transforms is None:
        transforms = transform_table.suggested_transforms(*image_shape[1:])
    for name, table in (("transform", transform_table.TRANSFORMS), ("regularizer", transform_table.REGULARIZERS)):
        given = transforms if name == "transform" else (regularizers or {})
        unknown = sorted(set(given) - set(table))
        if unknown:
            raise ValueError(f"unknown {name} {unknown[0]!r}; choose from {', '.join(table)}")
    center_values = [float(v) for v in torch.as_tensor(center, dtype=torch.float64).flatten()]
    return {
        "image_shape": tuple(int(v) for v in image_shape),
        "parameterization": parameterization,
        "parameterization_params": param_table.PARAMETERIZATIONS[parameterization].coerce(parameterization_params or {}),
        "lr": float(lr),
        "transforms": {name: transform_table.TRANSFORMS[name].coerce(p or {}) for name, p in transforms.items()},
        "regularizers": {name: transform_table.REGULARIZERS[name].coerce(p or {})
                         for name, p in (regularizers or {}).items()},
        "center": center_values[0] if len(center_values) == 1 else tuple(center_values),
    }


def maximize(
    model: nn.Module,
    objective: Any,
    steps: int = 256,
    n: int | None = None,
    seed: int | Sequence[int] = 0,
    *,
    image_shape: Sequence[int] | None = None,
    magnitude: torch.Tensor | None = None,
    components: param_table.PrincipalComponents | None = None,
    callback: Callback | None = None,
    report_every: int | None = None,
    **settings: Any,
) -> MaximizeResult:
    """Images that maximise ``objective`` (a tuple, see :mod:`compute.maximize.objectives`) for ``model``.

    ``n`` starts (default: the objective's per-image target count, else 1), image k seeded with ``seed + k`` (or
    ``seed[k]`` when a list), optimised together as one batch on the model's device and dtype. ``settings``:
    ``parameterization`` ("fourier", "maco", "pixels"), ``lr``, ``transforms`` and ``regularizers`` (name ->
    params), ``parameterization_params``, ``center`` (the data's mean colour, the "zero" of the regularizers;
    0.5 by default). ``magnitude`` (C, H, W//2+1) is MACO's spectrum template, ``components`` the data's principal
    components for ``pca`` (:func:`~compute.maximize.param.principal_components`). ``image_shape`` (C, H, W)
    defaults to :func:`image_shape_of`.
    """
    spec = objective_table.normalize(objective)
    built = objective_table.build(spec)
    if n is None:
        n = built.count or (len(seed) if isinstance(seed, (list, tuple)) else 1)
    if built.count is not None and built.count != n:
        raise ValueError(f"the objective has {built.count} per-image targets but n={n}")
    seeds = [int(s) for s in seed] if isinstance(seed, (list, tuple)) else [int(seed) + k for k in range(n)]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for n={n} images")
    shape = image_shape_of(model, image_shape)
    resolved = resolve_settings(shape, **settings)
    like = _model_like(model)
    streams = [_stream(s, steps) for s in seeds]
    center = param_table.center_tensor(resolved["center"], shape[0], like)
    parameterization = param_table.build(resolved["parameterization"], shape, [g for g, _ in streams], like,
                                         center=resolved["center"], magnitude=magnitude, components=components,
                                         **resolved["parameterization_params"])
    draws = torch.stack([block for _, block in streams]).to(like)
    with torch.no_grad():
        start_images = parameterization.images().detach().clone()
    try:
        start_values, _ = _clean_pass(model, start_images, built)
    except RuntimeError as error:  # a shape the model cannot take: say which setting fixes it
        raise ValueError(f"the model cannot take images of shape {shape}: pass image_shape=(C, H, W) ({error})") from error
    images, history, importance = render(
        model, built, parameterization, draws, shape, center, steps, resolved["lr"], resolved["transforms"],
        resolved["regularizers"], callback, report_every or max(1, steps // 32))
    values, probabilities = _clean_pass(model, images, built)
    cpu = lambda t: t.detach().float().cpu()  # noqa: E731
    return MaximizeResult(cpu(images), cpu(history), cpu(values), cpu(start_images), cpu(start_values),
                          cpu(probabilities), cpu(importance), spec, seeds, resolved)


def layer_objective(model: nn.Module, layer: str, image_shape: Sequence[int] | None = None,
                    channels: Sequence[int] | None = None) -> tuple:
    """The per-image objective of a whole layer: ``("class", (0..K-1))`` for ``"classes"``, else one channel each."""
    shape = image_shape_of(model, image_shape)
    probe = torch.zeros((1, *shape), device=model_device(model), dtype=_model_like(model).dtype)
    with torch.no_grad():
        if layer == "classes":
            return ("class", tuple(channels or range(model(probe).shape[1])))
        output = activations.run_until(model, probe, layer)
    return ("channel", layer, tuple(channels or range(output.shape[1])))


def maximize_layer(model: nn.Module, layer: str, steps: int = 256, seed: int = 0,
                   channels: Sequence[int] | None = None, *, image_shape: Sequence[int] | None = None,
                   **settings: Any) -> MaximizeResult:
    """One image per channel of ``layer`` (or per class, with ``layer="classes"``), optimised as one batch.

    The image of channel (or class) k is seeded with ``seed + k``, so it equals
    ``maximize(model, ("channel", layer, k), n=1, seed=seed + k)`` whatever else is in the batch.
    """
    spec = layer_objective(model, layer, image_shape, channels)
    targets = spec[-1]
    return maximize(model, spec, steps, n=len(targets), seed=[seed + int(k) for k in targets],
                    image_shape=image_shape, **settings)
