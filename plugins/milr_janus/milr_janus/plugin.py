"""Registers the Janus-Pro backbones and the Self critic with milr."""

from __future__ import annotations

from functools import partial

from milr_core.plugins import hookimpl

from .loading import ALIASES


def _backbone(source: str, **kwargs):
    from .backbone import JanusBackbone

    return JanusBackbone.from_pretrained(source, **kwargs)


def _tiny(**kwargs):
    import os
    from pathlib import Path

    from .tiny import build_tiny

    cache = Path(os.environ.get("MILR_CACHE", Path.home() / ".cache" / "milr")) / "janus-tiny"
    if not (cache / "config.json").exists():
        import tempfile

        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".janus-tiny-"))
        build_tiny(tmp)
        try:
            os.replace(tmp, cache)  # a half-built folder is never seen under the real name
        except OSError:  # another process (e.g. a torchrun rank) finished first: use its copy
            import shutil

            shutil.rmtree(tmp)
    return _backbone(str(cache), **kwargs)


def _shapes(**kwargs):
    from pathlib import Path

    # shipped inside the package (see train_shapes.py for how it was made)
    # it was trained on the milr chat strings, so it keeps them under every preset
    return _backbone(str(Path(__file__).parent / "weights" / "janus-shapes"), name="janus-shapes", chat="milr", **kwargs)


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
        _shapes,
        "a small Janus trained on the shapes world (64 px, 64 image tokens); follows prompts only partly",
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
