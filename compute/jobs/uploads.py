"""A user's own image in the compute process: the ``upload`` image variant (every panel opens for it) and
``uploads.place`` (its prediction and its star in the scatter). The web server saved the file
(:mod:`compute.uploads`); both processes share the cache directory."""
from __future__ import annotations

import numpy as np
import torch

from compute import activations, neighbours
from compute import embedding as layouts
from compute.errors import UploadError
from compute.jobs.extraction import extract_on_cluster
from compute.jobs.workspace import Workspace
from compute.progress import Progress, scaled
from compute.upload_inputs import model_input


def upload_image(workspace: Workspace, index: int, id: str,  # noqa: A002  (the selection's own key)
                 progress: Progress | None = None) -> torch.Tensor:
    """The uploaded image ``id`` as the model sees it; ``index`` is ignored (an upload is no data-set image)."""
    try:
        return model_input(id, workspace.source.data, workspace.dataset)
    except FileNotFoundError as error:
        raise UploadError(str(error)) from error


def place_job(workspace: Workspace, progress, id: str, layer: str, method: str,  # noqa: A002
              features: str = "auto") -> dict:
    """The upload's class probabilities and its position in the scatter of ``layer`` (``method``, ``features`` as
    ``explore.scatter``): ``point`` [x, y] or None with ``placement_message``; ``probabilities`` (K,);
    ``image`` (C, H, W) the model's input; ``novelty`` (``compute.neighbours.Novelty`` as a dict, with ``unlike``
    and ``layer``): how far it lies from the data in the layer's feature space, against the data's own spacing."""
    image = upload_image(workspace, -1, id).float()
    dataset = workspace.dataset
    with workspace.lock:
        model = workspace.model(progress=scaled(progress, 0.0, 0.1))
        outputs = activations.single(model, image, [layer])
        mode = layouts.feature_mode(tuple(outputs[layer].shape), features)
        vector = layouts.features_of(model, image[None], layer, mode)
        extract_on_cluster(workspace, model, layer, mode, scaled(progress, 0.1, 0.4))  # several workers: all extract
        reduction, reduced = layouts.layer_reduction(model, dataset, layer, mode, progress=scaled(progress, 0.1, 0.4))
        own = neighbours.layer_own_distances(model, dataset, layer, mode)
    query = reduction.transform(vector).astype(np.float32) if reduction is not None else vector
    # Is it like the data at all? Its nearest data image against the data's own nearest-neighbour distances.
    found = neighbours.novelty(reduced, query, own)
    result = {"image": image.numpy(), "probabilities": torch.softmax(outputs["__logits__"].flatten(), 0).numpy(),
              "point": None, "placement_message": None, "novelty": {**found.as_dict(), "layer": layer}}
    layout = layouts.layer_layout(model, dataset, layer, method, mode, progress=scaled(progress, 0.4, 0.95))
    try:
        result["point"] = layout.place(vector)[0].tolist()
    except layouts.CannotPlace as error:
        result["placement_message"] = str(error)
    return result


JOBS = {"uploads.place": place_job}
