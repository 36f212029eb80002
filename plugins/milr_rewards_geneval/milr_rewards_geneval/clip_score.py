"""CLIPScore critics on open_clip: `clipscore` and T2I-CompBench's `t2i-clip`.

Both embed the image (the model's eval preprocessing) and the prompt, L2-normalise
them and take the cosine c. They differ in model and scale:

- `clipscore`: ViT-L-14 (OpenAI weights) by default, any open_clip model by
  option; value = min(2.5 * max(c, 0), 1). The 2.5 weight is CLIP-S of Hessel
  et al. 2021 ("CLIPScore", eq. 1), which spreads the usual cosines (0.15-0.4)
  over most of [0, 1]; a cosine of 0.4 or more scores 1.
- `t2i-clip`: T2I-CompBench's non-spatial score (CLIPScore_eval/CLIP_similarity.py):
  OpenAI CLIP ViT-B/32, the raw cosine with no scaling; here clamped to [0, 1]
  (CLIP cosines of real image/text pairs are positive, so the clamp never bites
  on the benchmark's data). Its `--complex` mode, which drops spaCy adjectives
  from the prompt, is not reproduced: it serves only the 3-in-1 complex score.

On CUDA both run under fp16 autocast (OpenAI's CLIP runs with fp16 weights there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from milr_core.hardware import pick_device
from milr_core.interfaces import Critic, PromptRecord, Score

from .geneval_oracle import cuda_autocast
from .weights import load_open_clip

if TYPE_CHECKING:
    from PIL.Image import Image

REQUIRES = ("open_clip_torch>=2.24", "torchvision")
CLIPSCORE = ("ViT-L-14", "openai", 2.5)  # arch, pretrained tag, weight w of CLIP-S = w * max(cos, 0)
T2I_CLIP = ("ViT-B-32", "openai", 1.0)  # T2I-CompBench: clip.load("ViT-B/32"), raw cosine


class ClipScore(Critic):
    """value = clamp(scale * cos(image, prompt), 0, 1)."""

    requires = REQUIRES

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, scale: float, name: str = "clipscore",
                 batch_size: int = 32):  # fmt: skip
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.scale, self.name, self.batch_size = scale, name, batch_size

    @classmethod
    def load(cls, name: str = "clipscore", arch: str | None = None, tag: str | None = None,
             weights: str | None = None, device: str | None = None, **kwargs: Any) -> ClipScore:  # fmt: skip
        """`clipscore` or `t2i-clip` with real weights; `arch`/`tag` pick another open_clip model and
        `weights` a local checkpoint (else the MILR_CLIP_<ARCH>_<TAG> variable, else open_clip's download)."""
        default_arch, default_tag, scale = T2I_CLIP if name == "t2i-clip" else CLIPSCORE
        dev = pick_device(device)
        model, preprocess, tokenizer = load_open_clip(arch or default_arch, tag or default_tag, weights, dev)
        return cls(model, preprocess, tokenizer, scale, name, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def cosines(self, images: list[Image], text: str) -> list[float]:
        with cuda_autocast(self.device):
            text_feat = F.normalize(self.model.encode_text(self.tokenizer([text]).to(self.device)).float(), dim=-1)
        cos = []
        for start in range(0, len(images), self.batch_size):
            pixels = torch.stack([self.preprocess(im.convert("RGB")) for im in images[start : start + self.batch_size]])
            with cuda_autocast(self.device):
                feats = F.normalize(self.model.encode_image(pixels.to(self.device)).float(), dim=-1)
            cos.extend((feats @ text_feat.T)[:, 0].tolist())
        return cos

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        return [
            Score(min(max(self.scale * c, 0.0), 1.0), f"cosine {c:.4f} (x{self.scale:g}, clamped to [0, 1])")
            for c in self.cosines(images, record.prompt)
        ]
