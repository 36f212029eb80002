"""From a backbone name to BAGEL's parts: the published checkpoint files, read as they are.

A BAGEL folder holds llm_config.json, ema.safetensors (every weight of the unified
model), ae.safetensors (the FLUX VAE) and a Qwen2 tokenizer; vit_config.json is
there too but text-to-image never reads an image, so the encoder stays unbuilt.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from milr_core.errors import MissingWeights
from milr_core.hub import cached, hub_reachable

ALIASES = {"bagel-7b": "ByteDance-Seed/BAGEL-7B-MoT"}
REQUIRED_FILES = ("llm_config.json", "ema.safetensors", "ae.safetensors", "tokenizer_config.json")
DEFAULT_MAX_LATENT_SIDE = 64  # the published model's 2-D latent position table (1024 px / 16)


def is_bagel_folder(path: Path) -> bool:
    return all((path / f).exists() for f in ("llm_config.json", "ema.safetensors", "ae.safetensors"))


def locate(source: str) -> Path:
    """The local folder for an alias, a hub id or a path; downloads (only the files used) when the hub is there."""
    path = Path(source).expanduser()
    if path.is_dir():
        missing = [f for f in REQUIRED_FILES if not (path / f).exists()]
        if missing:
            raise MissingWeights(f"{path} is not a complete BAGEL checkpoint: missing {', '.join(missing)}")
        return path
    if source.startswith((".", "/", "~")):
        raise MissingWeights(f"backbone folder {source} does not exist")
    hub_id = ALIASES.get(source, source)
    online = hub_reachable()
    if not online and not cached(hub_id, REQUIRED_FILES):
        folder = hub_id.split("/")[-1]
        raise MissingWeights(
            f"cannot load backbone {source!r}: the Hugging Face hub cannot be reached and the weights are not cached. "
            f"On a machine with access run `hf download {hub_id} --local-dir ./{folder}` (about 30 GB), copy the "
            f"folder here and pass `--backbone ./{folder}`"
        )
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "ema.safetensors", "ae.safetensors"]
    return Path(snapshot_download(hub_id, allow_patterns=patterns, local_files_only=not online))


def load_parts(folder: Path, device: torch.device, dtype: torch.dtype):
    """(Bagel, AutoencoderKL, tokenizer) from a checkpoint folder; the model in `dtype`, the VAE in float32."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from .model import SKIPPED_PREFIXES, Bagel, fresh_buffers, read_llm_config, sincos_grid
    from .vae import load_vae

    llm_config = read_llm_config(folder / "llm_config.json")
    vae = load_vae(load_file(folder / "ae.safetensors")).to(device)
    state = {}
    with safe_open(folder / "ema.safetensors", framework="pt", device=str(device)) as f:
        for key in f.keys():
            if not key.startswith(SKIPPED_PREFIXES):
                state[key] = f.get_tensor(key).to(dtype)
    if "llm2vae.weight" not in state:
        raise MissingWeights(f"{folder / 'ema.safetensors'} has no flow head (llm2vae): not a BAGEL checkpoint with image generation")
    channels = vae.config.latent_channels
    patch = math.isqrt(state["llm2vae.weight"].shape[0] // channels)
    table = state.get("latent_pos_embed.pos_embed")
    side = math.isqrt(table.shape[0]) if table is not None else DEFAULT_MAX_LATENT_SIDE
    if table is None:  # a fixed sin-cos table: the same values whether stored or made here
        state["latent_pos_embed.pos_embed"] = sincos_grid(side, llm_config.hidden_size).to(device, dtype)
    with torch.device("meta"):
        model = Bagel(llm_config, channels, patch, side)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise MissingWeights(f"{folder / 'ema.safetensors'} does not fit BAGEL's layout: {detail}") from None
    fresh_buffers(model, device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.eval().requires_grad_(False), vae, tokenizer
