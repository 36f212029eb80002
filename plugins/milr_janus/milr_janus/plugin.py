"""Registers the Janus-Pro backbones and the Self critic with milr."""

from __future__ import annotations

from functools import partial

from milr_core.plugins import hookimpl

from .loading import ALIASES


def _backbone(source: str, **kwargs):
    from .backbone import JanusBackbone

    return JanusBackbone.from_pretrained(source, **kwargs)


def _tiny(**kwargs):
    from milr_core.cache import build_once

    from .tiny import build_tiny

    return _backbone(str(build_once("janus-tiny", build_tiny, "config.json")), **kwargs)


def _shipped(name: str, **kwargs):
    from pathlib import Path

    # shipped inside the package (see train_shapes.py for how each was made); both were trained on
    # their chat template with milr's instruction, so they keep it under every preset
    return _backbone(str(Path(__file__).parent / "weights" / name), name=name, chat="template", **kwargs)


def _self_critic(backbone=None, **kwargs):
    from milr_core.errors import MilrError

    from .self_critic import SelfCritic

    if backbone is None or not hasattr(backbone, "processor"):
        raise MilrError("the self critic needs a Janus backbone: it asks the backbone's own understanding branch")
    return SelfCritic.from_backbone(backbone)


@hookimpl
def register_backbones(register):
    for alias, hub_id in ALIASES.items():
        register(alias, partial(_backbone, alias), f"{hub_id} (transformers JanusForConditionalGeneration)")
    register("janus-tiny", _tiny, "a tiny random-weight Janus built on first use: exercises the code path, draws noise")
    register(
        "janus-shapes",
        partial(_shipped, "janus-shapes"),
        "a small Janus trained on the shapes world (64 px, 64 image tokens); follows prompts only partly",
    )
    register(
        "janus-scenes",
        partial(_shipped, "janus-scenes"),
        "a small Janus trained on the scenes world (128 px, 256 image tokens, ten prompt forms), "
        "understanding branch included (`--critic self`); follows prompts only partly",
    )


@hookimpl
def backbone_from_path(path, device, dtype):
    import json
    from pathlib import Path

    config = Path(path) / "config.json"
    if config.exists() and json.loads(config.read_text()).get("model_type") == "janus":
        return _backbone(path, device=device, dtype=dtype)
    return None


@hookimpl
def register_critics(register):
    register("self", _self_critic, "the backbone's understanding branch: P('yes') that the image matches")
