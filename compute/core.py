"""Jobs of the core views: the model's description, the embedding scatter, the detail panels, attribution, inversion.

Each job turns a small request into plain values and numpy arrays for one panel; the algorithms live in their
family modules (activations, embedding, predictions, attribution). Model work holds ``workspace.lock``.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from compute import activations, attribution, channels, embedding, models, predictions
from compute.device import device_name
from compute.workspace import Workspace, job, scaled


def _numpy(value):
    """Tensors (and dicts of them) to numpy for the trip to the server; floats and the rest stay as they are."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: _numpy(item) for key, item in value.items()}
    return value


@job("describe")
def describe(workspace: Workspace, progress) -> dict:
    """What the page needs to draw its controls, and a check that model, data and layer fit together.

    Raises the user errors of ``compute`` (unknown layer, a model that cannot read the images) with one-line messages.
    """
    dataset = workspace.dataset
    with workspace.lock:
        net = workspace.architecture()
        names = activations.layers(net)
        if workspace.source.layer:
            activations.module(net, workspace.source.layer)
        sample = dataset.images[:1]
        try:
            outputs = activations.single(net, sample[0], names)
        except RuntimeError as error:
            raise models.ModelError(
                f"model {workspace.source.model} cannot read the images of {workspace.source.data} "
                f"(shape {tuple(sample.shape[1:])}): {str(error).splitlines()[0]}") from error
    logits = outputs.pop("__logits__")
    if logits.shape[-1] < len(dataset.classes):
        raise models.ModelError(f"model {workspace.source.model} predicts {logits.shape[-1]} classes but "
                                f"{workspace.source.data} has {len(dataset.classes)}")
    conv_layers = [name for name, module in net.named_modules() if isinstance(module, torch.nn.Conv2d)]
    spec = models.MODELS.get(workspace.source.model)
    default_layer = workspace.source.layer or (spec.default_layer if spec and spec.default_layer else
                                               ("avgpool" if "avgpool" in names else names[max(0, len(names) - 2)]))
    return {
        "model": workspace.source.model,
        "data": dataset.description,
        "classes": list(dataset.classes),
        "count": len(dataset),
        "test_count": int(dataset.is_test.sum()),
        "image_shape": list(dataset.image_shape),
        "layers": names,
        "layer_shapes": {name: list(output.shape) for name, output in outputs.items()},
        "conv_layers": conv_layers,
        "default_layer": default_layer,
        "device": device_name(workspace.device),
        "skipped": list(getattr(dataset, "skipped", []) or []),
        # Names of the model's outputs (a predicted index may exceed the data's classes: ImageNet weights on a folder).
        "model_classes": (list(getattr(net, "categories", None) or []) or list(dataset.classes)
                          + [f"output {k}" for k in range(len(dataset.classes), int(logits.shape[-1]))]),
    }


@job("explore.scatter")
def scatter(workspace: Workspace, progress, layer: str, method: str, features: str = "auto") -> dict:
    """The 2-D embedding of ``layer`` over the data set, with labels, predictions and the test accuracy.

    Streams as it goes: the PCA layout first (a partial result as soon as the features are extracted), then for
    t-SNE its intermediate layouts as it converges; each partial is the result's shape with ``coords`` so far and
    ``method`` the one they come from. t-SNE and UMAP start from that PCA layout, so the points move, not jump.
    """
    dataset = workspace.dataset
    model = workspace.model(progress=scaled(progress, 0.0, 0.2))
    progress(0.2, "class probabilities")
    with workspace.lock:
        probabilities = predictions.probabilities(model, dataset)
        shape = activations.single(model, dataset.images[0], [layer])[layer].shape
        mode = embedding.feature_mode(tuple(shape), features)
        # One batched pass over the data set, cached: every method of this layer starts from these features.
        embedding.layer_features(model, dataset, layer, mode, progress=scaled(progress, 0.25, 0.45))
    predicted = probabilities.argmax(1).numpy()
    labels = dataset.labels.numpy()
    test = dataset.is_test.numpy()
    sample = embedding.choose_sample(len(labels)) if method in embedding.ITERATIVE else None
    described = {
        "labels": labels.astype(np.int32),
        "predicted": predicted.astype(np.int32),
        "accuracy": float((predicted[test] == labels[test]).mean()) if test.any() else float("nan"),
        "mode": mode,
        "values_per_image": int(shape[0]) if mode == "pooled" else int(np.prod(shape)),
        "shape": list(shape),
        "sample_size": None if sample is None else int(len(sample)),
    }
    pca = embedding.layer_embedding(model, dataset, layer, "pca", mode)
    if method == "pca":
        return {**described, "coords": np.asarray(pca, dtype=np.float32), "method": "pca"}
    label = embedding.EMBEDDERS[method].label if method in embedding.EMBEDDERS else method
    progress(0.5, f"PCA shown; {label} starts from it", {**described, "coords": pca, "method": "pca"})
    converging = scaled(progress, 0.5, 1.0)

    def stream(fraction: float, text: str, partial: dict | None = None) -> None:
        if partial is not None:
            partial = {**described, "coords": partial["coords"], "method": method}
        converging(fraction, text, partial)

    coords = embedding.layer_embedding(model, dataset, layer, method, mode, progress=stream)
    return {**described, "coords": np.asarray(coords, dtype=np.float32), "method": method}


def _true_label(dataset, index: int, variant: dict | None) -> int | None:
    """The image's true class: the data set's for its images and images derived from them (an adversarial image
    keeps its original's class); None for an uploaded image, which has none."""
    if (variant or {}).get("kind") == "upload" or not 0 <= index < len(dataset):
        return None
    return int(dataset.labels[index])


@job("details.panels")
def details(workspace: Workspace, progress, index: int, layer: str, variant: dict | None = None,
            epoch: int | None = None) -> dict:
    """One image (``variant``: derived from it), its class probabilities and the output of ``layer`` for it, with the
    layer's sparsity; ``epoch``: by the model saved at that epoch of training instead of the final one."""
    dataset = workspace.dataset
    image = workspace.image(index, variant)
    with workspace.lock:
        outputs = activations.single(workspace.model(epoch, progress=progress), image, [layer])
    layer_output = outputs[layer]
    stats = channels.sparsity(layer_output)
    return {
        "index": int(index),
        "image": image.numpy(),
        "probabilities": torch.softmax(outputs["__logits__"].flatten(), 0).numpy(),
        "label": (label := _true_label(dataset, index, variant)),
        "test_split": None if label is None else bool(dataset.is_test[index]),
        "layer_output": layer_output.numpy(),
        "zero_fraction": stats.zero_fraction,
        "nonpositive_fraction": stats.nonpositive_fraction,
        "silent_channels": stats.silent_channels,
    }


def _method_params(method: str, params: dict, dataset) -> dict:
    """The request's parameters, plus what the data set knows when the method asks for it (occlusion's fill)."""
    function = attribution.METHODS[method].function
    accepted = inspect.signature(function).parameters
    extra = {"data_mean": tuple(dataset.channel_mean)} if "data_mean" in accepted and dataset.channel_mean else {}
    return {**params, **extra}


@job("attribution.maps")
def attribution_maps(workspace: Workspace, progress, index: int, methods: dict, target: int | None = None,
                     use_predicted: bool = False, sanity: bool = False, variant: dict | None = None,
                     epoch: int | None = None) -> dict:
    """Every method of ``methods`` ({name: parameters}) on image ``index`` (or its ``variant``) for one target class,
    and with ``sanity`` the same maps of the untrained model and their rank correlation (Adebayo et al. 2018)."""
    dataset = workspace.dataset
    image = workspace.image(index, variant)
    model = workspace.model(epoch, progress=progress)
    with workspace.lock:
        with torch.no_grad():
            logits = model(image[None].to(workspace.device))
        predicted = int(logits.argmax(1))
        label = _true_label(dataset, index, variant)
        if use_predicted or (label is None and target is None):
            chosen, how = predicted, "predicted"
        elif target is not None:
            chosen, how = int(target), "chosen"
        else:
            chosen, how = label, "true"
        variants = [("trained", model)] + ([("untrained", workspace.untrained_model())] if sanity else [])
        steps = len(methods) * len(variants)
        results: dict[str, dict] = {variant: {} for variant, _ in variants}
        done = 0
        for variant, net in variants:
            for method, params in methods.items():
                report = scaled(progress, done / steps, (done + 1) / steps)
                maps = attribution.attribution_map(net, image, chosen, method,
                                                   _method_params(method, params, dataset), progress=report)
                results[variant][method] = _numpy(maps if isinstance(maps, dict) else {"map": maps})
                done += 1
                progress(done / steps, f"{attribution.METHODS[method].label} ({variant}) done")
    correlation = {}
    if sanity:
        for method in methods:
            a, b = results["trained"][method]["map"], results["untrained"][method]["map"]
            correlation[method] = attribution.rank_correlation(torch.as_tensor(a), torch.as_tensor(b))
    return {"image": image.numpy(), "label": label, "predicted": predicted, "target": chosen, "target_how": how,
            "maps": results["trained"], "untrained": results.get("untrained", {}), "correlation": correlation}


@job("inversion.reconstruct")
def inversion(workspace: Workspace, progress, index: int, layer: str, channel: int | None = None,
              method: str = "deconvnet", variant: dict | None = None, epoch: int | None = None) -> dict:
    """Image ``index`` (or its ``variant``) projected back to pixels from one channel of ``layer`` (the most active
    one by default)."""
    if channel is not None and channel < 0:
        raise ValueError(f"channel {channel} is negative: channels are numbered from 0")
    image = workspace.image(index, variant)
    model = workspace.model(epoch, progress=progress)
    with workspace.lock:
        if channel is None:
            channel, how = attribution.most_active_channel(model, image, layer), "most active channel"
        else:
            how = "channel"
        reconstruction = attribution.cached_inversion(model, image, layer, int(channel), method)
    return {"reconstruction": reconstruction.numpy(), "image": image.numpy(), "channel": int(channel), "how": how}
