"""What a parameterization may know of the data: its principal components (the ``pca`` prior), and the sample of
the data set such statistics are taken from (MACO's spectrum too).

The sample is seeded and spread evenly over the classes: a folder is sorted by class, so its first images are one
class, and a spectrum or a basis taken from them would describe that class only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Images whose values a principal-component basis is computed from at most (N x C*H*W floats at once).
MAX_PCA_FLOATS = 1 << 24


def class_balanced_sample(labels: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """Indices (min(count, N),) of a seeded sample spread evenly over the classes of ``labels`` (N,).

    Each class's images are shuffled (one seeded permutation of all), then taken in turn, one of each class per
    round, so every class gives ``count / classes`` images while it has them; the indices come back sorted.
    """
    labels = torch.as_tensor(labels).long().cpu()
    total = len(labels)
    order = torch.randperm(total, generator=torch.Generator().manual_seed(int(seed)))
    shuffled = labels[order]
    _, group = torch.unique(shuffled, return_inverse=True)
    one_hot = torch.nn.functional.one_hot(group)
    rank = (one_hot.cumsum(dim=0) * one_hot).sum(dim=1) - 1  # each image's place within its class
    turn = torch.argsort(rank * total + torch.arange(total), stable=True)
    return order[turn[: min(int(count), total)]].sort().values


@dataclass(frozen=True)
class PrincipalComponents:
    """A data set's principal components: the prior of the ``pca`` parameterization.

    mean: (C, H, W); components: (K, C*H*W) orthonormal rows, by falling variance; scales: (K,) the standard
    deviation of the data along each; radii: (K,) entry k-1 the median length of the data's first k whitened
    coordinates (a typical image's distance from the mean in the span of k components, in standard deviations).
    """

    mean: torch.Tensor
    components: torch.Tensor
    scales: torch.Tensor
    radii: torch.Tensor

    def radius_of(self, count: int) -> float:
        """A typical image's whitened length in the span of the ``count`` leading components."""
        return float(self.radii[max(1, min(int(count), len(self.radii))) - 1])


def principal_components(images: torch.Tensor, count: int = 32) -> PrincipalComponents:
    """The ``count`` leading principal components of ``images`` (N, C, H, W) (fewer when N or C*H*W is smaller).

    Exact (an SVD of the centred images), in float64 while N x C*H*W stays below MAX_PCA_FLOATS, else float32."""
    images = torch.as_tensor(images)
    images = images.to(torch.float64 if images.numel() <= MAX_PCA_FLOATS else torch.float32)
    flat = images.flatten(1)
    mean = flat.mean(dim=0)
    centred = flat - mean
    count = max(1, min(int(count), flat.shape[0] - 1, flat.shape[1]))
    _, singular, right = torch.linalg.svd(centred, full_matrices=False)
    scales = singular[:count] / math.sqrt(max(1, flat.shape[0] - 1))
    components = right[:count]
    whitened = (centred @ components.T) / scales.clamp_min(1e-12)
    radii = torch.quantile(whitened.square().cumsum(dim=1).sqrt(), 0.5, dim=0)
    return PrincipalComponents(mean.reshape(images.shape[1:]).float(), components.float(), scales.float(),
                               radii.float())


