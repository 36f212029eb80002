"""Relative depth maps with transformers' DPT (MiDaS), as T2I-CompBench's 3D spatial score reads them.

Upstream (UniDet_eval/experts/model_bank_3d.py) runs DPT-hybrid MiDaS at 480 x 480
and min-max normalises each map; MiDaS predicts inverse depth, so larger values
are nearer. `Intel/dpt-hybrid-midas` on the hub is that checkpoint; transformers'
hybrid DPT takes only the input size it was configured with (384), so hybrid
models run at that size, other DPTs at 480.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from milr_core.hardware import pick_device

from .weights import choose, load_transformers

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

DPT = "Intel/dpt-hybrid-midas"
DPT_ENV = "MILR_T2I_DEPTH"
SIDE = 480  # model_bank_3d.py: net_w = net_h = 480


class DepthEstimator:
    """`nearness(images)`: per image an (H, W) map in [0, 1], 1 = nearest."""

    def __init__(self, model: Any, processor: Any, side: int | None = None, batch_size: int = 8):
        if side is None:
            side = model.config.image_size if getattr(model.config, "is_hybrid", False) else SIDE
        self.model, self.processor, self.side, self.batch_size = model, processor, side, batch_size

    @classmethod
    def load(cls, name: str | None = None, device: str | None = None, **kwargs: Any) -> DepthEstimator:
        """Real weights: `name` (hub id or folder), else MILR_T2I_DEPTH, else Intel/dpt-hybrid-midas."""
        from transformers import DPTForDepthEstimation, DPTImageProcessor

        name = choose(name, DPT_ENV, DPT)
        model = load_transformers(DPTForDepthEstimation, name, DPT_ENV, DPT)
        processor = load_transformers(DPTImageProcessor, name, DPT_ENV, DPT)
        return cls(model.to(pick_device(device)).eval(), processor, **kwargs)

    @torch.inference_mode()
    def nearness(self, images: list[Image]) -> list[np.ndarray]:
        maps = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            inputs = self.processor(images=batch, size={"height": self.side, "width": self.side},
                                    keep_aspect_ratio=False, return_tensors="pt").to(self.model.device)  # fmt: skip
            depth = self.model(**inputs).predicted_depth.float()  # (n, h, w), inverse depth
            for image, d in zip(batch, depth):
                d = torch.nn.functional.interpolate(d[None, None], (image.height, image.width), mode="bicubic")[0, 0]
                lo, hi = d.min(), d.max()
                maps.append(((d - lo) / (hi - lo) if hi > lo else torch.zeros_like(d)).cpu().numpy())
        return maps
