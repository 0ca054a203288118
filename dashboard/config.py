"""The app's start-up settings, fixed for the life of the process."""
from __future__ import annotations

from dataclasses import dataclass

from compute.specs.source import Source


@dataclass(frozen=True)
class AppConfig:
    model: str = "digits-cnn"
    data: str = "digits"
    layer: str = ""
    checkpoint: str | None = None
    device: str = "auto"
    cache_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = 8050
    debug: bool = False
    embedding: str = "tsne"
    cluster: str | None = None  # address of a running Dask scheduler; None starts a local compute process
    workers: int = 1  # compute processes of the local cluster (not with ``cluster``)
    precompute: bool = False  # embed every layer in the background after start-up (the CLI turns it on)
    weights: str | None = None  # torchvision weights: DEFAULT, an enum name (torch hub cache) or random
    image_size: int | None = None  # crop size of the images; None: the weights' transforms(), else the data's own
    resize: int | None = None  # shorter side before the crop; None: the weights' transforms(), else image_size
    download: bool = False  # fetch a missing torchvision data set

    def source(self) -> Source:
        """What the compute process needs to know: the model and data by name."""
        return Source(model=self.model, data=self.data, checkpoint=self.checkpoint, device=self.device,
                      layer=self.layer, weights=self.weights, image_size=self.image_size, resize=self.resize,
                      download=self.download)
