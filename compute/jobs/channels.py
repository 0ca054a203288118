"""The channels view's jobs: per-channel statistics of a layer over the data set, the dead-channel table of every
rectifier, and the images that excite one channel most."""
from __future__ import annotations

import torch

from compute import activations
from compute.cache import get_cache
from compute.channels import ChannelStats, channel_layers, dead_counts, stats, stats_many
from compute.device import model_device
from compute.errors import UserError
from compute.jobs.workspace import Workspace
from compute.progress import scaled


def _stats_as_dict(found: ChannelStats) -> dict:
    return {
        "layer": found.layer, "count": found.count, "channels": found.channels,
        "firing_rate": found.firing_rate, "mean_activation": found.mean_activation,
        "zero_fraction": found.zero_fraction, "zero_share": found.zero_share, "inactive_share": found.inactive_share,
        "dead": found.dead, "dead_channels": found.dead_channels,
        "top_images": found.top_images, "top_values": found.top_values,
    }


def _layer_stats(workspace: Workspace, layer: str, k: int, progress) -> ChannelStats:
    """The statistics of ``layer``: from the dead table's all-layer pass when that is cached, else one pass."""
    model = workspace.model(progress=scaled(progress, 0.0, 0.1))
    dataset = workspace.dataset
    with workspace.lock:
        names = channel_layers(model, dataset.image_shape)
        if layer in names:
            table = get_cache().get(stats_many.key(model, dataset, names, k))
            if table is not None:
                return table[layer]
        return stats(model, dataset, layer, k, progress=scaled(progress, 0.1, 1.0))


def stats_job(workspace: Workspace, progress, layer: str, k: int = 9) -> dict:
    """Per-channel statistics of ``layer`` over the whole data set (see :class:`ChannelStats`), as plain arrays."""
    result = _stats_as_dict(_layer_stats(workspace, layer, int(k), progress))
    progress(1.0, f"channel statistics of {layer}")
    return result


def dead_table_job(workspace: Workspace, progress, k: int = 9) -> dict:
    """The dead-channel table of every ReLU layer (rows of :func:`dead_counts`), from one pass."""
    model = workspace.model(progress=scaled(progress, 0.0, 0.1))
    with workspace.lock:
        rows = dead_counts(model, workspace.dataset, k=int(k), progress=scaled(progress, 0.1, 1.0))
    progress(1.0, "dead channels of every layer")
    return {"rows": rows, "count": len(workspace.dataset)}


def top_images_job(workspace: Workspace, progress, layer: str, channel: int, k: int = 9) -> dict:
    """The ``k`` images that activate ``channel`` of ``layer`` most, with that channel's map on each.

    Returns ``indices`` (k,) (for highlighting in the scatter), ``values`` (k,) (the channel's max per image),
    ``images`` (k, C, H, W), ``maps`` (k, H, W) the channel's map upsampled bilinearly to the image size for an
    overlay (None for a layer without spatial maps), ``map_size`` (h, w) before upsampling, ``labels`` (k,),
    ``classes``, and the channel's ``firing_rate`` and ``dead`` flag.
    """
    found = _layer_stats(workspace, layer, int(k), progress)
    channel = int(channel)
    if not 0 <= channel < found.channels:
        raise UserError(f"channel {channel} does not exist: {layer} has channels 0..{found.channels - 1}")
    indices = found.top_images[:, channel]
    dataset = workspace.dataset
    images = dataset.images[indices.tolist()]
    with workspace.lock, torch.no_grad():
        model = workspace.model()
        output = activations.run_until(model, images.to(model_device(model)), layer)[:, channel].float()
    maps, map_size = None, None
    if output.ndim == 3:
        map_size = tuple(int(s) for s in output.shape[1:])
        maps = torch.nn.functional.interpolate(output[:, None], size=tuple(images.shape[-2:]), mode="bilinear",
                                               align_corners=False)[:, 0].cpu().numpy()
    progress(1.0, f"top images of {layer} channel {channel}")
    return {
        "layer": layer, "channel": channel, "indices": indices, "values": found.top_values[:, channel],
        "images": images.cpu().numpy(), "maps": maps, "map_size": map_size,
        "labels": dataset.labels[indices.tolist()].numpy(), "classes": list(dataset.classes),
        "firing_rate": float(found.firing_rate[channel]), "dead": bool(found.dead[channel]),
    }


JOBS = {"channels.stats": stats_job, "channels.dead_table": dead_table_job, "channels.top_images": top_images_job}
