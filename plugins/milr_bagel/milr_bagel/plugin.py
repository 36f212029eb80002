"""Registers the BAGEL backbones with milr (weights load on first use)."""

from __future__ import annotations

from functools import partial

from milr_core.plugins import hookimpl

from .loading import ALIASES


def _backbone(source: str, **kwargs):
    from .backbone import BagelBackbone

    return BagelBackbone.from_pretrained(source, **kwargs)


def _tiny(**kwargs):
    from milr_core.cache import build_once

    from .tiny import build_tiny

    return _backbone(str(build_once("bagel-tiny", build_tiny, "ema.safetensors")), name="bagel-tiny", **kwargs)


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
