"""The app's start-up settings, fixed for the life of the process."""
from __future__ import annotations

from dataclasses import dataclass

from compute.workspace import Source


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

    def source(self) -> Source:
        """What the compute process needs to know: the model and data by name."""
        return Source(model=self.model, data=self.data, checkpoint=self.checkpoint, device=self.device,
                      layer=self.layer)
