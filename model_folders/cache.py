"""Where the console keeps what it makes and keeps: converted models, saved presets, votes."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where converted models live; `LMDEPLOY_CONSOLE_CACHE` overrides the default."""
    default = Path.home() / ".cache" / "lmdeploy-console"
    return Path(os.environ.get("LMDEPLOY_CONSOLE_CACHE", default))
