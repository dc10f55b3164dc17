"""Files the page offers for download (chat and comparison exports). Gradio copies each into its own
cache, which `delete_cache` empties; the folders written here are pruned as new ones are made, so an
open console's disk use stays bounded."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(tempfile.gettempdir()) / "lmdeploy-console-downloads"
KEPT_S = 3600  # a download link on an open page stays good this long
# Gradio's cache of uploads and served files: looked at every 10 minutes, emptied of what is an hour old
GRADIO_DELETE_CACHE = (600, KEPT_S)


def download_folder(root: Path = ROOT) -> Path:
    """A new folder for one download's files, after removing those older than KEPT_S."""
    root.mkdir(parents=True, exist_ok=True)
    oldest = time.time() - KEPT_S
    for folder in root.iterdir():
        if folder.stat().st_mtime < oldest:
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))
