"""The app's start-up settings, fixed for the life of the process."""
from __future__ import annotations

from dataclasses import dataclass


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
