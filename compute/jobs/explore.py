"""The page's frame: the model's description (``describe``) and the embedding scatter (``explore.scatter``)."""
from __future__ import annotations

import numpy as np
import torch

from compute import activations, embedding, layers, predictions
from compute.generated_layout import generated_layout, generated_points
from compute.device import device_name
from compute.errors import ModelError
from compute.jobs.extraction import extract_on_cluster
from compute.jobs.lanes import long_phase
from compute.jobs.workspace import Workspace
from compute.progress import scaled
from compute.specs.embedding import ITERATIVE, label
from compute.specs.models import MODELS

# The scatter's bar: loading the model is its first fifth; training it on the first start, its first nine tenths.
LOADING_SHARE, TRAINING_SHARE = 0.2, 0.9


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
            raise ModelError(
                f"model {workspace.source.model} cannot read the images of {workspace.source.data} "
                f"(shape {tuple(sample.shape[1:])}): {str(error).splitlines()[0]}") from error
    logits = outputs.pop("__logits__")
    if logits.shape[-1] < len(dataset.classes):
        raise ModelError(f"model {workspace.source.model} predicts {logits.shape[-1]} classes but "
                         f"{workspace.source.data} has {len(dataset.classes)}")
    spec = MODELS.get(workspace.source.model)
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
        "conv_layers": layers.conv_layers(net),
        "default_layer": default_layer,
        "device": device_name(workspace.device),
        "skipped": list(getattr(dataset, "skipped", []) or []),
        # Names of the model's outputs (a predicted index may exceed the data's classes: ImageNet weights on a folder).
        "model_classes": (list(getattr(net, "categories", None) or []) or list(dataset.classes)
                          + [f"output {k}" for k in range(len(dataset.classes), int(logits.shape[-1]))]),
    }


def scatter(workspace: Workspace, progress, layer: str, method: str, features: str = "auto") -> dict:
    """The 2-D embedding of ``layer`` over the data set, with labels, predictions and the test accuracy.

    Streams as it goes: the PCA layout first (a partial result as soon as the features are extracted), then for
    t-SNE its intermediate layouts as it converges; each partial is the result's shape with ``coords`` so far and
    ``method`` the one they come from. t-SNE and UMAP start from that PCA layout, so the points move, not jump.
    The first picture is interactive work; the convergence after it is long work that steps aside for clicks.
    """
    dataset = workspace.dataset
    # On the first start the model trains here, and that is most of this job's time: then its epochs fill the bar's
    # first 90% ("epoch 9/10" at 72-81%, not at 17%); otherwise loading it is the first 20%.
    share = TRAINING_SHARE if workspace.will_train() else LOADING_SHARE
    model = workspace.model(progress=scaled(progress, 0.0, share, "first start: " if share == TRAINING_SHARE else ""))
    rest = scaled(progress, share, 1.0)
    rest(0.0, "class probabilities")
    with workspace.lock:
        probabilities = predictions.probabilities(model, dataset)
        shape = activations.single(model, dataset.images[0], [layer])[layer].shape
        mode = embedding.feature_mode(tuple(shape), features)
        # One batched pass over the data set, cached: every method of this layer starts from these features. On a
        # cluster of several workers, an image folder is extracted by all of them first (shards, resumable).
        extract_on_cluster(workspace, model, layer, mode, progress=scaled(rest, 0.0625, 0.3125))
        embedding.layer_features(model, dataset, layer, mode, progress=scaled(rest, 0.0625, 0.3125))
    predicted = probabilities.argmax(1).numpy()
    labels = dataset.labels.numpy()
    test = dataset.is_test.numpy()
    sample = embedding.choose_sample(len(labels)) if method in ITERATIVE else None
    described = {
        "labels": labels.astype(np.int32),
        "predicted": predicted.astype(np.int32),
        "accuracy": float((predicted[test] == labels[test]).mean()) if test.any() else float("nan"),
        "mode": mode,
        "values_per_image": int(shape[0]) if mode == "pooled" else int(np.prod(shape)),
        "shape": list(shape),
        "sample_size": None if sample is None else int(len(sample)),
    }
    generated = generated_points()
    if generated is not None:  # a test's or a benchmark's many points over this data set (compute.generated_layout)
        return {**described, **generated_layout(labels, predicted, generated), "method": method, "sample_size": None,
                "generated": True}
    pca = embedding.layer_embedding(model, dataset, layer, "pca", mode)
    if method == "pca":
        return {**described, "coords": np.asarray(pca, dtype=np.float32), "method": "pca"}
    rest(0.375, f"PCA shown; {label(method)} starts from it", {**described, "coords": pca, "method": "pca"})
    converging = scaled(rest, 0.375, 1.0)

    def stream(fraction: float, text: str, partial: dict | None = None) -> None:
        if partial is not None:
            partial = {**described, "coords": partial["coords"], "method": method}
        converging(fraction, text, partial)

    with long_phase(workspace.gate):
        layout = embedding.layer_layout(model, dataset, layer, method, mode, progress=stream)
    # Fitted on a sample: how well the placed points sit (trustworthiness, kNN accuracy in 2-D), for the page.
    return {**described, "coords": layout.coordinates, "method": method,
            "layout_quality": getattr(layout, "quality", None)}


JOBS = {"describe": describe, "explore.scatter": scatter}
