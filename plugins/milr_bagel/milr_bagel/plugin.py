"""Registers the BAGEL backbones with milr (weights load on first use)."""

from __future__ import annotations

from functools import partial

from milr_core.plugins import hookimpl

from .loading import ALIASES


def _backbone(source: str, **kwargs):
    from .backbone import BagelBackbone

    return BagelBackbone.from_pretrained(source, **kwargs)


def _tiny(**kwargs):
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from .tiny import build_tiny

    cache = Path(os.environ.get("MILR_CACHE", Path.home() / ".cache" / "milr")) / "bagel-tiny"
    if not (cache / "ema.safetensors").exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".bagel-tiny-"))
        build_tiny(tmp)
        try:
            os.replace(tmp, cache)  # never seen half-built under the real name
        except OSError:  # another process finished first: use its copy
            shutil.rmtree(tmp)
    return _backbone(str(cache), name="bagel-tiny", **kwargs)


@hookimpl
def register_backbones(register):
    for alias, hub_id in ALIASES.items():
        register(alias, partial(_backbone, alias), f"{hub_id} (think, then a 1024 px rectified-flow image; text latents only)")
    register("bagel-tiny", _tiny, "a tiny random-weight BAGEL built on first use: exercises the code path, draws noise")


@hookimpl
def backbone_from_path(path, device, dtype):
    from pathlib import Path

    from .loading import is_bagel_folder

    if is_bagel_folder(Path(path)):
        return _backbone(path, device=device, dtype=dtype)
    return None
