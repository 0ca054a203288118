"""Attribution maps of the clicked image (every chosen method, and the sanity check) and the inversion of a channel."""
from __future__ import annotations

import inspect

import torch

from compute import attribution
from compute.data_mean import data_mean
from compute.errors import UserError
from compute.jobs import variants
from compute.jobs.workspace import Workspace


def _method_params(method: str, params: dict, dataset) -> dict:
    """The request's parameters, plus what the data set knows when the method asks for it (occlusion's fill: the
    data's own mean colour; a folder's is measured once, then cached)."""
    accepted = inspect.signature(attribution.METHODS[method].function).parameters
    mean = data_mean(dataset) if "data_mean" in accepted else ()
    return {**params, "data_mean": mean} if mean else dict(params)


def attribution_maps(workspace: Workspace, progress, index: int, methods: dict, target: int | None = None,
                     use_predicted: bool = False, sanity: bool = False, variant: dict | None = None,
                     epoch: int | None = None) -> dict:
    """Every method of ``methods`` ({name: parameters}) on image ``index`` (or its ``variant``) for one target class,
    and with ``sanity`` the same maps of the untrained model and their rank correlation (Adebayo et al. 2018)."""
    unknown = [name for name in methods if name not in attribution.METHODS]
    if unknown:
        raise UserError(f"unknown attribution method {unknown[0]!r}; choose from {', '.join(attribution.METHODS)}")
    dataset = workspace.dataset
    image = variants.image(workspace, index, variant, progress)
    model = workspace.model(epoch, progress=progress)
    # Outside the lock: a folder's first occlusion measures its mean colour (once) without holding the model.
    params_of = {method: _method_params(method, params, dataset) for method, params in methods.items()}
    with workspace.lock:
        with torch.no_grad():
            logits = model(image[None].to(workspace.device))
        predicted = int(logits.argmax(1))
        label = variants.true_label(dataset, index, variant)
        if use_predicted or (label is None and target is None):
            chosen, how = predicted, "predicted"
        elif target is not None:
            chosen, how = int(target), "chosen"
        else:
            chosen, how = label, "true"
        if not 0 <= chosen < logits.shape[1]:
            raise UserError(f"class {chosen} does not exist: the model has classes 0 to {logits.shape[1] - 1}")
        nets = {"trained": model, **({"untrained": workspace.untrained_model()} if sanity else {})}
        # Every method on every model from shared batched passes (cached per model and method).
        maps = attribution.attribution_maps(nets, image, chosen, params_of, progress=progress)
    results = {name: {method: variants.plain(found) for method, found in by_method.items()}
               for name, by_method in maps.items()}
    progress(1.0, "maps of " + (", ".join(attribution.METHODS[method].label for method in methods) or "no method")
             + (" on the trained and the untrained model" if sanity else ""))
    correlation = {}
    if sanity:
        for method in methods:
            a, b = results["trained"][method]["map"], results["untrained"][method]["map"]
            correlation[method] = attribution.rank_correlation(torch.as_tensor(a), torch.as_tensor(b))
    return {"image": image.numpy(), "label": label, "predicted": predicted, "target": chosen, "target_how": how,
            "maps": results["trained"], "untrained": results.get("untrained", {}), "correlation": correlation}


def inversion(workspace: Workspace, progress, index: int, layer: str, channel: int | None = None,
              method: str = "deconvnet", variant: dict | None = None, epoch: int | None = None) -> dict:
    """Image ``index`` (or its ``variant``) projected back to pixels from one channel of ``layer`` (the most active
    one by default)."""
    if channel is not None and channel < 0:
        raise UserError(f"channel {channel} is negative: channels are numbered from 0")
    image = variants.image(workspace, index, variant, progress)
    model = workspace.model(epoch, progress=progress)
    with workspace.lock:
        if channel is None:
            channel, how = attribution.most_active_channel(model, image, layer), "most active channel"
        else:
            how = "channel"
        reconstruction = attribution.cached_inversion(model, image, layer, int(channel), method)
    return {"reconstruction": reconstruction.numpy(), "image": image.numpy(), "channel": int(channel), "how": how}


JOBS = {"attribution.maps": attribution_maps, "inversion.reconstruct": inversion}
