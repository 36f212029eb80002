"""GenEval's own oracle, rebuilt on transformers and open_clip instead of mmdet/mmcv.

Upstream (djghosh13/geneval @ af4902f, evaluation/evaluate_images.py; see
/work/shared/BENCHMARKS.md section 1) runs mmdetection 2.x Mask2Former Swin-S
(`mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco`) and classifies object colours
with open_clip ViT-L-14 (OpenAI weights). Here:

- Detector: transformers' `Mask2FormerForUniversalSegmentation`; the default is
  `facebook/mask2former-swin-small-coco-instance`, the same architecture trained
  on COCO instances by the Mask2Former authors (a different training run from
  the mmdet checkpoint, so scores can differ slightly). Input as mmdet's test
  pipeline: shorter side 800, longer at most 1333, ImageNet mean/std, size
  divisible by 32 (mmdet pads to 32; transformers' processor rounds the resize
  up instead, the same for square images). Post-processing is mmdet 2.x
  `MaskFormerFusionHead.instance_postprocess` (see `instances`), not
  transformers' `post_process_instance_segmentation`, which thresholds masks at
  a fixed 384 px and drops empty ones.
- Filtering, counting, colours-then-positions and the verdict: rules.py, on the
  raw detections in top-k order (upstream thresholds 0.3 / 0.9 for counting,
  16 per class, no NMS; `options` takes upstream's `--options`, and any value
  other than upstream's default is named in every score's detail).
- Colour: upstream's crop (instance mask pasted on flat #999, cropped to the
  box), its 10 colours and 3 templates per class, CLIP_benchmark's zero-shot
  weights (normalise each template embedding, average, normalise), argmax;
  fp16 autocast on CUDA as CLIP_benchmark's `amp=True`.

Score = rules' `fraction` (1.0 exactly when GenEval calls the image correct);
`Score.correct` is GenEval's 0/1 verdict (the bench counts it); `verdict()` gives it with the reason.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from milr_core.bench.prompts import GENEVAL_CLASSES
from milr_core.errors import MilrError
from milr_core.hardware import pick_device
from milr_core.interfaces import Critic, PromptRecord, Score

from .rules import UPSTREAM, Detection, Options, Verdict, confident, judge
from .weights import choose, load_open_clip, load_transformers

if TYPE_CHECKING:
    from PIL.Image import Image

DETECTOR = "facebook/mask2former-swin-small-coco-instance"
DETECTOR_ENV = "MILR_GENEVAL_DETECTOR"
CLIP_ARCH, CLIP_TAG = "ViT-L-14", "openai"  # upstream `clip_model` option and its pretrained tag
REQUIRES = ("transformers>=5.24", "scipy>=1.10", "open_clip_torch>=2.24", "torchvision")

# mmdet 2.x Mask2Former COCO config: test_cfg.max_per_image (instances kept per image) and the
# test pipeline's Resize img_scale=(1333, 800) keep_ratio + Pad size_divisor=32.
MAX_PER_IMAGE = 100
TEST_SIZE = {"shortest_edge": 800, "longest_edge": 1333}
SIZE_DIVISOR = 32

# Upstream colour classifier (COLORS, the three templates, option `bgcolor` default "#999").
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
TEMPLATES = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")
BGCOLOR = "#999"
CLIP_BATCH = 16  # upstream DataLoader batch size

# GenEval's class names (evaluation/object_names.txt): COCO's 80 thing classes in COCO order.
CLASSES = GENEVAL_CLASSES  # the classes GenEval's prompt files name (one list, kept in milr-core)
# Detector label spellings that differ from GenEval's. The first three are how COCO (and
# detectron2-style configs such as Mask2Former's) name them; the rest are older COCO/VOC spellings.
ALIASES = {
    "mouse": "computer mouse",
    "remote": "tv remote",
    "keyboard": "computer keyboard",
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "tvmonitor": "tv",
    "hair dryer": "hair drier",
}


def geneval_labels(id2label: dict[int, str]) -> dict[int, str]:
    """Detector label id -> GenEval class name, for every label that is one of the 80.

    Panoptic configs add stuff classes ("sky-other-merged"): they map to nothing
    and are ignored, as mmdet ignores non-thing classes for instances.
    """
    mapping = {}
    for index, label in id2label.items():
        name = label.lower().replace("_", " ").replace("-merged", "").replace("-other", "").strip()
        name = ALIASES.get(name, name)
        if name in CLASSES:
            mapping[int(index)] = name
    missing = sorted(set(CLASSES) - set(mapping.values()))
    if missing:
        raise MilrError(f"the detector cannot find GenEval's classes {', '.join(missing)}: not a COCO detector?")
    return mapping


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(x0, y0, x1, y1) of boolean masks (N, H, W), x1/y1 one past the last pixel; zeros when empty
    (mmdet's `mask2bbox`)."""
    _, height, width = masks.shape
    cols, rows = masks.any(1), masks.any(2)
    x0 = cols.float().argmax(1)
    x1 = width - cols.flip(1).float().argmax(1)
    y0 = rows.float().argmax(1)
    y1 = height - rows.flip(1).float().argmax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return boxes * cols.any(1, keepdim=True)


def instances(
    class_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    padded: tuple[int, int],
    valid: tuple[int, int],
    size: tuple[int, int],
    top_k: int = MAX_PER_IMAGE,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """mmdet 2.x Mask2Former instance results for one image: (labels, scores, masks, boxes).

    class_logits (Q, C+1) with the no-object class last; mask_logits (Q, h, w)
    at a quarter of the padded input `padded`; `valid` is the resized image
    inside the padding, `size` the original (H, W). As mmdet: masks are upsampled
    to the input, cropped to the image, resized to the original; the top_k
    (query, class) pairs by class probability are kept; score = class
    probability x mean mask probability inside the mask (mask logit > 0).
    """
    num_classes = class_logits.shape[-1] - 1
    probs = class_logits.float().softmax(-1)[:, :-1].flatten()
    top, index = probs.topk(min(top_k, probs.numel()))
    labels, queries = index % num_classes, index // num_classes
    masks = F.interpolate(mask_logits[None].float(), size=padded, mode="bilinear", align_corners=False)
    masks = F.interpolate(masks[..., : valid[0], : valid[1]], size=size, mode="bilinear", align_corners=False)[0]
    # per query, then per kept (query, class) pair: a query can be kept with several classes
    binary = masks > 0
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return labels, top * mask_scores[queries], binary[queries], mask_boxes(binary)[queries]


def color_crop(image: Image, det: Detection, bgcolor: str = BGCOLOR) -> Image:
    """Upstream's colour input: the object's mask over a flat background, cropped to its box.

    bgcolor "original" keeps the picture behind the object (upstream's option).
    """
    from PIL import Image as PILImage

    image = image.convert("RGB")
    if det.mask is not None:
        blank = image.copy() if bgcolor == "original" else PILImage.new("RGB", image.size, bgcolor)
        image = PILImage.composite(image, blank, PILImage.fromarray(det.mask))
    return image.crop(det.box)


def cuda_autocast(device: torch.device):
    """fp16 autocast on CUDA, as CLIP_benchmark's classifier (amp=True) and OpenAI CLIP on CUDA
    (fp16 weights) run; the CPU stays float32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


class ColorClassifier:
    """GenEval's zero-shot colour classifier: one set of colour weights per object class."""

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, device: torch.device | str = "cpu"):
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.device = torch.device(device)
        self._weights: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def weights(self, classname: str) -> torch.Tensor:
        """(D, len(COLORS)) classifier columns for objects of `classname`, cached."""
        if classname not in self._weights:
            texts = [t.format(c=color, cls=classname) for color in COLORS for t in TEMPLATES]
            with cuda_autocast(self.device):
                emb = self.model.encode_text(self.tokenizer(texts).to(self.device)).float()
            emb = F.normalize(emb, dim=-1).view(len(COLORS), len(TEMPLATES), -1).mean(1)
            self._weights[classname] = F.normalize(emb, dim=-1).T
        return self._weights[classname]

    @torch.inference_mode()
    def classify(self, crops: list[Image], classnames: list[str]) -> list[str]:
        """The colour of each crop, crop i judged with the weights of classnames[i]."""
        colors = []
        for start in range(0, len(crops), CLIP_BATCH):
            pixels = torch.stack([self.preprocess(crop) for crop in crops[start : start + CLIP_BATCH]])
            with cuda_autocast(self.device):
                feats = self.model.encode_image(pixels.to(self.device)).float()
            feats = F.normalize(feats, dim=-1)
            for feat, classname in zip(feats, classnames[start : start + CLIP_BATCH]):
                colors.append(COLORS[int((feat @ self.weights(classname)).argmax())])
        return colors


def geneval_processor(size: dict | None = None) -> Any:
    """Mask2Former input processing with mmdet's test pipeline values (see module docstring)."""
    from transformers import Mask2FormerImageProcessor

    return Mask2FormerImageProcessor(size=size or TEST_SIZE, size_divisor=SIZE_DIVISOR)


class GenevalOracle(Critic):
    """GenEval's verdict from Mask2Former detections and CLIP colours."""

    name = "geneval"
    requires = REQUIRES

    def __init__(
        self,
        detector: Any,
        processor: Any,
        colors: ColorClassifier,
        batch_size: int = 8,
        bgcolor: str = BGCOLOR,
        options: Options | dict | None = None,
    ):
        self.detector, self.processor, self.colors = detector, processor, colors
        self.batch_size = batch_size
        self.options = Options(**options) if isinstance(options, dict) else options or UPSTREAM
        self.bgcolor = bgcolor
        self.labels = geneval_labels(detector.config.id2label)

    @classmethod
    def load(
        cls,
        detector: str | None = None,
        clip_arch: str = CLIP_ARCH,
        clip_tag: str | None = CLIP_TAG,
        clip_weights: str | None = None,
        device: str | None = None,
        dtype: torch.dtype = torch.float32,  # mmdet ran the detector in float32
        **kwargs: Any,
    ) -> GenevalOracle:
        """The oracle with real weights: `detector` (hub id or folder; default env
        MILR_GENEVAL_DETECTOR, else the Swin-S COCO instance model) and open_clip
        `clip_arch`/`clip_tag` (a local copy via `clip_weights` or MILR_CLIP_VIT_L_14_OPENAI)."""
        from transformers import Mask2FormerForUniversalSegmentation

        dev = pick_device(device)
        name = choose(detector, DETECTOR_ENV, DETECTOR)
        model = load_transformers(Mask2FormerForUniversalSegmentation, name, DETECTOR_ENV, DETECTOR, dtype=dtype)
        clip = load_open_clip(clip_arch, clip_tag, clip_weights, dev)
        return cls(model.to(dev).eval(), geneval_processor(), ColorClassifier(*clip, device=dev), **kwargs)

    def check(self, record: PromptRecord) -> None:
        # with no `include` every rule holds: a bare prompt would be judged correct whatever the image shows
        if not record.include:
            raise MilrError(
                f"geneval judges GenEval records (tag, include); {record.prompt[:60]!r} has no 'include' "
                "(a bare prompt: use `milr bench geneval` with GenEval metadata, or another critic)"
            )

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        self.check(record)
        scores = []
        changed = ", ".join(f"{k}={v}" for k, v in self.options.recorded().items())
        options = f"; options {changed}" if changed else ""
        for found, verdict in zip(*self._judge(images, record)):
            head = "correct" if verdict.correct else f"incorrect: {verdict.reason}"
            seen = describe(confident(found, record.tag, self.options))
            scores.append(Score(verdict.fraction, f"{head} (found: {seen}{options})", verdict.correct))
        return scores

    def verdict(self, image: Image, record: PromptRecord) -> Verdict:
        """GenEval's 0/1 `correct`, the partial `fraction` and the reason, for one image."""
        return self._judge([image], record)[1][0]

    def _judge(self, images: list[Image], record: PromptRecord) -> tuple[list[list[Detection]], list[Verdict]]:
        found = self.detect(images)
        self.assign_colors(images, found, record)
        return found, [judge(record, dets, self.options) for dets in found]

    @torch.inference_mode()
    def detect(self, images: list[Image]) -> list[list[Detection]]:
        """Raw detections per image (GenEval names, pixel boxes, scores, masks) in the order of the top-k
        class probabilities; the rules order them by score as upstream does. (mmdet asks for an unsorted
        top-k, so its order of boxes with equal scores is whatever CUDA's top-k gives.)"""
        device, dtype = self.detector.device, self.detector.dtype
        # The rules keep only scores above the lower threshold: anything below never matters.
        floor = min(self.options.threshold, self.options.counting_threshold)
        results = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            inputs = self.processor(images=batch, return_tensors="pt")
            pixels, pixel_mask = inputs["pixel_values"], inputs["pixel_mask"]
            out = self.detector(pixel_values=pixels.to(device, dtype), pixel_mask=pixel_mask.to(device))
            for i, image in enumerate(batch):
                valid = (int(pixel_mask[i].any(1).sum()), int(pixel_mask[i].any(0).sum()))
                labels, scores, masks, boxes = instances(
                    out.class_queries_logits[i], out.masks_queries_logits[i], tuple(pixels.shape[-2:]), valid,
                    (image.height, image.width),
                )  # fmt: skip
                keep = [k for k in range(len(scores)) if scores[k] > floor]
                keep = [k for k in keep if int(labels[k]) in self.labels]
                masks_np = masks[keep].cpu().numpy()
                results.append([
                    Detection(self.labels[int(labels[k])], tuple(boxes[k].tolist()), float(scores[k]), mask=mask)
                    for k, mask in zip(keep, masks_np)
                ])  # fmt: skip
        return results

    def assign_colors(self, images: list[Image], found: list[list[Detection]], record: PromptRecord) -> None:
        """Set `.color` on the objects GenEval classifies: per include clause with a colour, its
        `count` most confident objects when there are that many (upstream skips the rest)."""
        jobs: dict[int, tuple[int, Detection]] = {}
        for i, dets in enumerate(found):
            objects = confident(dets, record.tag, self.options)
            for req in record.include:
                top = objects.get(req["class"], [])[: req["count"]]
                if "color" in req and len(top) >= req["count"]:
                    jobs.update({id(det): (i, det) for det in top})
        if not jobs:
            return
        crops = [color_crop(images[i], det, self.bgcolor) for i, det in jobs.values()]
        for (_, det), color in zip(jobs.values(), self.colors.classify(crops, [d.label for _, d in jobs.values()])):
            det.color = color


def describe(found: dict[str, list[Detection]]) -> str:
    """'2 dog, 1 red car': what the rules saw, with colours where they were classified."""
    counts: dict[str, int] = {}
    for label, dets in found.items():
        for det in dets:
            key = f"{det.color} {label}" if det.color else label
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {key}" for key, n in counts.items()) or "nothing"
