"""Folders that milr builds once and keeps (tiny random checkpoints), under MILR_CACHE."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_once(name: str, build: Callable[[Path], object], marker: str) -> Path:
    """`$MILR_CACHE/<name>` (default ~/.cache/milr), made by `build(folder)` unless `marker` is already in it."""
    folder = Path(os.environ.get("MILR_CACHE", Path.home() / ".cache" / "milr")) / name
    if not (folder / marker).exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}-"))
        build(tmp)
        try:
            os.replace(tmp, folder)  # a half-built folder is never seen under the real name
        except OSError:  # another process (e.g. a torchrun rank) finished first: use its copy
            shutil.rmtree(tmp)
    return folder
