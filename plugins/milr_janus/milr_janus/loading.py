"""From a backbone name to a loaded model: aliases, local folders, the hub, and
an error that says exactly what to download when none of them has the weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from milr_core.errors import MissingWeights
from milr_core.hub import cached, hub_reachable

if TYPE_CHECKING:  # transformers takes seconds to import: only when a model is really loaded
    import torch
    from transformers import JanusForConditionalGeneration, JanusProcessor

ALIASES = {
    "janus-pro-1b": "deepseek-community/Janus-Pro-1B",
    "janus-pro-7b": "deepseek-community/Janus-Pro-7B",
}
REQUIRED_FILES = ("config.json", "preprocessor_config.json")


def _missing_help(source: str, hub_id: str, reason: str) -> str:
    folder = hub_id.split("/")[-1]
    return (
        f"cannot load backbone {source!r} ({reason}). Download the weights on a machine with access to the "
        f"Hugging Face hub: `hf download {hub_id} --local-dir ./{folder}` (about 15 GB for 7B, 4 GB for 1B), "
        f"copy the folder here, and pass its path: `--backbone ./{folder}`"
    )


def resolve(
    source: str, dtype: torch.dtype, device: torch.device | None = None
) -> tuple[JanusForConditionalGeneration, JanusProcessor]:
    """Load model and processor from an alias, a local directory, or a hub id; onto a GPU
    `device`, each tensor goes straight from the file to the GPU in `dtype`, so that host
    memory stays far below the checkpoint's size (on the CPU they stay where they load)."""
    from transformers import JanusForConditionalGeneration, JanusProcessor
    hub_id = ALIASES.get(source, source)
    path = Path(source).expanduser()
    if path.is_dir():
        missing = [f for f in REQUIRED_FILES if not (path / f).exists()]
        if missing or not any(path.glob("*.safetensors")):
            what = ", ".join(missing) or "*.safetensors"
            raise MissingWeights(f"{path} is not a complete Janus checkpoint: missing {what}")
        target, hub_id = str(path), str(path)
    elif source.startswith((".", "/", "~")):
        raise MissingWeights(f"backbone folder {source} does not exist")
    else:
        target = hub_id
    offline = not path.is_dir() and not hub_reachable()
    if offline and not cached(hub_id, REQUIRED_FILES):
        raise MissingWeights(_missing_help(source, hub_id, "the Hugging Face hub cannot be reached and the weights are not cached"))
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # milr draws its own progress; keep stderr to one line per event
    try:
        # SDPA: fused attention on every device, and it takes the explicit 4-D masks of
        # static_decode (flash-attention-2 would not).
        placement = {"device_map": str(device)} if device is not None and device.type == "cuda" else {}
        model = JanusForConditionalGeneration.from_pretrained(
            target, dtype=dtype, attn_implementation="sdpa", local_files_only=offline, **placement
        )
        processor = JanusProcessor.from_pretrained(target, local_files_only=offline)
    except OSError as exc:
        if path.is_dir():
            raise MissingWeights(f"{path}: {str(exc).splitlines()[0]}") from None
        raise MissingWeights(_missing_help(source, hub_id, str(exc).splitlines()[0])) from None
    return model, processor
