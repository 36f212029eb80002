"""Open-vocabulary detection with transformers' GroundingDINO, as rules.py `Detection`s.

The labels are joined into GroundingDINO's caption format ("cat. traffic
light.", lower-case). Each of the model's queries gets, per label, the highest
token probability (sigmoid of its logits) over that label's tokens; the query
is labelled with its best label and kept when that probability exceeds
BOX_THRESHOLD. This is GroundingDINO's box threshold applied per label instead
of its text-threshold phrase extraction, which can glue words of several labels
into one phrase. Boxes of one label that overlap above NMS_IOU are merged by
NMS, since two queries on one object would otherwise count as two objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from milr_core.hardware import pick_device

from .rules import Detection
from .weights import choose, load_transformers

if TYPE_CHECKING:
    from PIL.Image import Image

GROUNDING_DINO = "IDEA-Research/grounding-dino-base"
GROUNDING_DINO_ENV = "MILR_GROUNDING_DINO"
REQUIRES = ("transformers>=5.24", "torchvision")
BOX_THRESHOLD = 0.35  # IDEA-Research/GroundingDINO README's demo default (box_threshold)
NMS_IOU = 0.8  # IDEA-Research/Grounded-Segment-Anything grounded_sam_simple_demo.py NMS_THRESHOLD


def caption(labels: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """GroundingDINO's prompt for `labels` and each label's character span in it."""
    text, spans = "", []
    for label in labels:
        spans.append((len(text), len(text) + len(label)))
        text += label + ". "
    return text.strip(), spans


class Grounder:
    """Finds named objects in images: `detect(images, labels)`."""

    def __init__(self, model: Any, processor: Any, box_threshold: float = BOX_THRESHOLD, nms_iou: float = NMS_IOU,
                 batch_size: int = 8):  # fmt: skip
        self.model, self.processor = model, processor
        self.box_threshold, self.nms_iou, self.batch_size = box_threshold, nms_iou, batch_size

    @classmethod
    def load(cls, name: str | None = None, device: str | None = None, dtype: torch.dtype = torch.float32,
             **kwargs: Any) -> Grounder:  # fmt: skip
        """Real weights: `name` (hub id or folder), else MILR_GROUNDING_DINO, else grounding-dino-base."""
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        name = choose(name, GROUNDING_DINO_ENV, GROUNDING_DINO)
        model = load_transformers(
            GroundingDinoForObjectDetection, name, GROUNDING_DINO_ENV, GROUNDING_DINO, dtype=dtype
        )
        processor = load_transformers(GroundingDinoProcessor, name, GROUNDING_DINO_ENV, GROUNDING_DINO)
        return cls(model.to(pick_device(device)).eval(), processor, **kwargs)

    @torch.inference_mode()
    def detect(self, images: list[Image], labels: list[str]) -> list[list[Detection]]:
        """Detections of `labels` in each image, most confident first (pixel boxes, no masks)."""
        from torchvision.ops import batched_nms

        labels = list(dict.fromkeys(label.strip().lower() for label in labels))
        if not labels:
            return [[] for _ in images]
        text, spans = caption(labels)
        offsets = self.processor.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
        tokens = [[k for k, (a, b) in enumerate(offsets) if b > a and start <= a and b <= end] for start, end in spans]
        results = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            inputs = self.processor(images=batch, text=[text] * len(batch), return_tensors="pt").to(self.model.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            out = self.model(**inputs)
            probs = out.logits.float().sigmoid()  # (n, queries, text positions)
            per_label = torch.stack([probs[..., idx].amax(-1) for idx in tokens], -1)
            scores, label_ids = per_label.max(-1)
            for i, image in enumerate(batch):
                keep = scores[i] > self.box_threshold
                cx, cy, w, h = out.pred_boxes[i][keep].float().unbind(-1)
                size = torch.tensor([image.width, image.height] * 2, device=cx.device)
                boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * size
                kept = batched_nms(boxes, scores[i][keep], label_ids[i][keep], self.nms_iou).tolist()
                results.append([
                    Detection(labels[int(label_ids[i][keep][k])], tuple(boxes[k].tolist()), float(scores[i][keep][k]))
                    for k in kept
                ])  # fmt: skip
        return results
