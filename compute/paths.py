"""Where Featurescope keeps its files (checkpoints, cached results, uploads), without torch: the web server and the
compute process find the same directory."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "FEATURESCOPE_CACHE_DIR"


def cache_dir() -> Path:
    """The cache directory: $FEATURESCOPE_CACHE_DIR, else ~/.cache/featurescope."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "featurescope"


def set_cache_dir(directory: str | os.PathLike) -> Path:
    """Point this process and the processes it starts at ``directory`` (created if missing)."""
    path = Path(directory).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_DIR_ENV] = str(path)
    return path
