"""Where the detector critics' weights come from: a hub id, a local folder, or an env var.

Each model has a default hub id and an environment variable; a keyword
argument beats the variable, which beats the default, and any of them may be a
local folder. When the files are neither on disk nor reachable (offline, no
cache), the error says what to download and where to point milr, in one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from milr_core.errors import MilrError, MissingWeights
from milr_core.hub import cached, hub_reachable

# open_clip's two checkpoint names in a hub repo (open_clip.pretrained.download_pretrained_from_hf)
CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def choose(option: str | None, env: str, default: str) -> str:
    """The keyword if given, else the environment variable, else the default."""
    return option or os.environ.get(env) or default


def load_transformers(model_cls: Any, name: str, env: str, default: str, **kwargs: Any) -> Any:
    """`model_cls.from_pretrained(name)`, turning absent files into MissingWeights."""
    path = Path(name).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        raise MissingWeights(f"{path} has no config.json; {_hint(default, env)}")
    offline = not path.is_dir() and not hub_reachable()
    if offline and not cached(name, ("config.json",)):
        raise MissingWeights(f"cannot load {name} (the Hugging Face hub cannot be reached and it is not cached); {_hint(default, env)}")
    try:
        return model_cls.from_pretrained(str(path) if path.is_dir() else name, local_files_only=offline, **kwargs)
    except OSError as exc:  # transformers raises OSError for unreachable hubs and incomplete folders
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingWeights(f"cannot load {name} ({first}); {_hint(default, env)}") from None


def _hint(hub_id: str, env: str) -> str:
    return f"download it with `hf download {hub_id} --local-dir DIR` and set {env}=DIR"


def clip_env(arch: str, tag: str) -> str:
    """The variable naming a local copy of open_clip weights, e.g. MILR_CLIP_VIT_L_14_OPENAI."""
    name = f"{arch}_{tag}".upper()
    return "MILR_CLIP_" + "".join(c if c.isalnum() else "_" for c in name)


def load_open_clip(arch: str, tag: str | None, weights: str | None = None, device: Any = "cpu") -> tuple[Any, Any, Any]:
    """(model, eval preprocess, tokenizer) for an open_clip architecture.

    `tag` is an open_clip pretrained tag ("openai"); None builds random weights
    (tests, benchmarks). `weights` (or the variable from `clip_env`) is a local
    checkpoint file or a folder holding one; it is loaded with the tag's own
    settings (OpenAI's checkpoints need QuickGELU and their mean/std), which
    open_clip applies only when it resolves the tag itself.
    """
    import open_clip

    if arch not in open_clip.list_models():
        raise MilrError(f"unknown open_clip architecture {arch!r}; see open_clip.list_models()")
    if tag is None:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, device=device)
        return model.eval(), preprocess, open_clip.get_tokenizer(arch)
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    env = clip_env(arch, tag)
    file = _clip_file(weights or os.environ.get(env), arch, tag, env) or _download_clip(cfg, arch, tag, env)
    model, _, preprocess = open_clip.create_model_and_transforms(
        arch,
        pretrained=file,
        device=device,
        force_quick_gelu=bool(cfg.get("quick_gelu", False)),
        image_mean=cfg.get("mean"),
        image_std=cfg.get("std"),
        image_interpolation=cfg.get("interpolation"),
        image_resize_mode=cfg.get("resize_mode"),
    )
    return model.eval(), preprocess, open_clip.get_tokenizer(arch)


def _clip_hint(arch: str, tag: str, env: str) -> str:
    import open_clip

    repo = (open_clip.get_pretrained_cfg(arch, tag).get("hf_hub") or "").rstrip("/")
    where = f"`hf download {repo} {CLIP_FILES[0]} --local-dir DIR`" if repo else f"the {arch} {tag} checkpoint"
    return f"download {where} and set {env}=DIR"


def _clip_file(given: str | None, arch: str, tag: str, env: str) -> str | None:
    if not given:
        return None
    path = Path(given).expanduser()
    if path.is_file():
        return str(path)
    if path.is_dir():
        for name in CLIP_FILES:
            if (path / name).is_file():
                return str(path / name)
        raise MissingWeights(f"{path} has none of {', '.join(CLIP_FILES)}; {_clip_hint(arch, tag, env)}")
    raise MissingWeights(f"{path} does not exist; {_clip_hint(arch, tag, env)}")


def _download_clip(cfg: dict, arch: str, tag: str, env: str) -> str:
    import open_clip

    if not cfg:
        raise MilrError(f"open_clip has no pretrained tag {tag!r} for {arch}; see open_clip.list_pretrained()")
    repo = (cfg.get("hf_hub") or "").rstrip("/")
    if repo and not hub_reachable() and not any(cached(repo, (f,)) for f in CLIP_FILES):
        raise MissingWeights(
            f"cannot fetch open_clip {arch} {tag} (the Hugging Face hub cannot be reached and it is not cached); "
            + _clip_hint(arch, tag, env)
        )
    try:
        file = open_clip.download_pretrained(cfg)
    except Exception as exc:  # noqa: BLE001 - hub and URL downloads fail with many exception types
        raise MissingWeights(
            f"cannot fetch open_clip {arch} {tag} ({type(exc).__name__}); {_clip_hint(arch, tag, env)}"
        ) from None
    if not file:
        raise MissingWeights(f"open_clip found no file for {arch} {tag}; {_clip_hint(arch, tag, env)}")
    return file
