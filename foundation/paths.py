"""Where Foundation keeps files between runs. A module of its own so that any layer (models
building kernels, the hub storing downloads) can ask without importing another layer.

The cache directory is `$FOUNDATION_CACHE`, else `$XDG_CACHE_HOME/foundation`, else
`~/.cache/foundation`: downloaded models under `models/` and `urls/` (foundation.hub.cache),
compiled AEV kernels under `kernels/` (foundation.models.aev_native).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The root of the cache (not created here)."""
    explicit = os.environ.get("FOUNDATION_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "foundation"
