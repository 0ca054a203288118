"""Jobs of the core views: the model's description, the embedding scatter, the detail panels, attribution, inversion.

Each job turns a small request into plain values and numpy arrays for one panel; the algorithms live in their
family modules (activations, embedding, predictions, attribution). Model work holds ``workspace.lock``.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from compute import activations, attribution, channels, embedding, models, predictions
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
                                               ("avgpool" if "avgpool" in names else names[-2]))
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
        "device": str(workspace.device),
        "skipped": list(getattr(dataset, "skipped", []) or []),
    }


@job("explore.scatter")
def scatter(workspace: Workspace, progress, layer: str, method: str, features: str = "auto") -> dict:
    """The 2-D embedding of ``layer`` over the data set, with labels, predictions and the test accuracy."""
    dataset = workspace.dataset
    model = workspace.model(progress=scaled(progress, 0.0, 0.3))
    progress(0.3, "class probabilities")
    with workspace.lock:
        probabilities = predictions.probabilities(model, dataset)
        shape = activations.single(model, dataset.images[0], [layer])[layer].shape
        mode = embedding.feature_mode(tuple(shape), features)
        features_ = embedding.layer_features(model, dataset, layer, mode, progress=scaled(progress, 0.35, 0.5))
    coords = embedding.layer_embedding(model, dataset, layer, method, mode, progress=scaled(progress, 0.5, 1.0))
    predicted = probabilities.argmax(1).numpy()
    labels = dataset.labels.numpy()
    test = dataset.is_test.numpy()
    del features_  # computed under the lock above so the embedding itself runs without it (cached)
    return {
        "coords": np.asarray(coords, dtype=np.float32),
        "labels": labels,
        "predicted": predicted,
        "accuracy": float((predicted[test] == labels[test]).mean()) if test.any() else float("nan"),
        "mode": mode,
        "values_per_image": int(shape[0]) if mode == "pooled" else int(np.prod(shape)),
        "shape": list(shape),
    }


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
        "label": int(dataset.labels[index]),
        "test_split": bool(dataset.is_test[index]),
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
        label = int(dataset.labels[index])
        if use_predicted:
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
