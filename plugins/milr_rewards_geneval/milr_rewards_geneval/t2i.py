"""T2I-CompBench's scores as critics: `t2i-blip-vqa` (attribute binding) and `t2i-spatial` (2D spatial).

Written from Karine-Huang/T2I-CompBench @ 1b70949 (BENCHMARKS.md section 2);
`t2i-clip` (non-spatial) lives in clip_score.py.

t2i-blip-vqa (BLIPvqa_eval/BLIP_vqa.py): one question "<noun phrase>?" per
noun phrase of the prompt (up to 8; phrases.py replaces spaCy's chunker), each
answered by BLIP VQA as P(yes) / (P(yes) + P(no)); score = their product.
Same checkpoint (`Salesforce/blip-vqa-capfilt-large` is the upstream
`model_base_vqa_capfilt_large.pth`), see vqa.py for the input size. As
upstream, each factor is rounded to 4 decimals, multiplied in float32 and the
product rounded to 4 decimals (`blip_product`).

t2i-spatial (UniDet_eval/2D_spatial_eval.py): the first relation of upstream's
list found in the prompt, the objects on either side of it, one detection per
object (the most confident one), then upstream's score: 0.25 * s1 + 0.25 * s2 +
0.5 * position when both are found, 0.25 * s when one is, 0 when none; any
score below 0.5 becomes 0. Differences, and why:
- Detector: GroundingDINO (grounding.py) instead of UniDet, which needs
  detectron2 and a checkpoint outside any model hub. GroundingDINO is asked for
  the objects by name, so "girl" is found as a girl (upstream maps girl, boy,
  man, woman to UniDet's "person") and "teddy bear" as a whole. Its box threshold
  is its own 0.35 instead of UniDet's 0.5: the two detectors' scores are not on
  one scale.
- Objects: the noun phrases next to the relation (phrases.py) instead of
  spaCy's first and last nouns; for upstream's simple prompts ("a bag on the
  left of a chair") both give bag and chair.
- Pixel constants (distance 150, IoU 0.1) apply where upstream applies them:
  boxes are scaled to UniDet's input size (shorter side 479, longer at most 480).

t2i-compbench picks the category's score from the record's tag (milr's
T2I-CompBench loader tags each prompt with its file's category): color, shape,
texture -> t2i-blip-vqa; spatial -> t2i-spatial; non_spatial -> t2i-clip;
complex -> 3_in_1_eval/3_in_1.py's mean of the three. Upstream averages only
two of them for the prompts of its spatial and action sub-split files; milr,
given one prompt without those files, always takes the mean of three.
t2i-numeracy (UniDet_eval/numeracy_eval.py): each "<number word> <noun>" of the
prompt (a, an, one ... eight) names an object and its count; each of the N
objects weighs 1/N and earns half of it when the class is found and the other
half when the count equals the target, after boxes of one class that overlap
by IoU > 0.9 or cover more than 0.9 of either box are merged (areas and
intersection counted with upstream's +1 pixel, `calculate_iou`). Differences:
GroundingDINO instead of UniDet R50 (as for t2i-spatial), objects named by the
noun after the number (singularised by its ending) instead of upstream's list
of 80 COCO-like names in new_objects.txt, and no synonyms (upstream maps girl,
boy, man, woman to person, needed only by UniDet's closed label set).
t2i-3d-spatial (UniDet_eval/3D_spatial_eval.py): the first of "in front of",
"behind", "hidden" in the prompt and the objects on either side; DPT-hybrid
MiDaS depth (depth.py), each object's mean nearness inside its box; "in front
of" scores 1 when the first object is nearer and the boxes overlap by IoU > 0.5,
IoU / 0.5 when nearer with 0 < IoU < 0.5, else 0 -- IoU exactly 0.5 too, which
neither of upstream's branches takes ("behind" and "hidden" the other way
round); combined like the 2D score (0.25 * s1 + 0.25 * s2 + 0.5 * position)
without its 0.5 cut-off. The depth map (H, W) is read as upstream reads it,
`depth[int(x0):int(x1), int(y0):int(y1)]`: box x picks rows and y columns, so
the region is the box mirrored over the diagonal (the mean of an empty region
is NaN, and NaN is never nearer). milr believes the transposed read is a bug
upstream: `depth_indexing="row-column"` reads [y, x] (at least one pixel) and
is named in every score's detail. Differences: GroundingDINO as above, DPT at
384 px (transformers' hybrid DPT takes no other size; upstream 480), and the
map kept in float (upstream stores it as an 8-bit PNG first).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from milr_core.errors import MilrError
from milr_core.interfaces import Critic, PromptRecord, Score

from . import depth, grounding, phrases, vqa
from .rules import area_plus_one, intersection_plus_one

if TYPE_CHECKING:
    from PIL.Image import Image

    from .rules import Detection

T2I_VQA = "Salesforce/blip-vqa-capfilt-large"
T2I_VQA_ENV = "MILR_T2I_VQA"
NP_NUM = 8  # BLIP_vqa.py --np_num
# 2D_spatial_eval.py determine_position defaults, and the final cut-off
IOU_THRESHOLD, DISTANCE_THRESHOLD, MIN_SCORE = 0.1, 150.0, 0.5
UNIDET_SHORT, UNIDET_LONG = 479, 480  # UniDet's test resize (shorter side, longer side cap)
NEAR = ("next to", "on side of", "near")
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8}  # numeracy_eval.py's range  # fmt: skip
MERGE_OVERLAP = 0.9  # numeracy_eval.py: same-label boxes with IoU or cover above this are one object
IOU_3D = 0.5  # 3D_spatial_eval.py iou_threshold_3d
DEPTH_INDEXING = ("upstream", "row-column")  # how a box selects its region of the depth map (see above)


class T2IBlipVqa(Critic):
    """Product over the prompt's noun phrases of BLIP's P(yes) for "<phrase>?"."""

    name = "t2i-blip-vqa"
    requires = vqa.REQUIRES

    def __init__(self, vqa_model: vqa.BlipYesNo):
        self.vqa = vqa_model

    @classmethod
    def load(cls, vqa_model: str | None = None, device: str | None = None, **kwargs: Any) -> T2IBlipVqa:
        """`vqa_model`: hub id or folder, else MILR_T2I_VQA, else Salesforce/blip-vqa-capfilt-large."""
        return cls(vqa.BlipYesNo.load(vqa_model, T2I_VQA_ENV, T2I_VQA, device, **kwargs))

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        asked = phrases.questions(record.prompt, NP_NUM)
        if not asked:  # upstream: an empty slot scores 1
            return [Score(1.0, "no noun phrase to ask about") for _ in images]
        scores = []
        for answers in self.vqa.p_yes(images, [asked] * len(images)):
            detail = " x ".join(f"{q} {p:.4f}" for q, p in zip(asked, answers))
            scores.append(Score(blip_product(answers), detail))
        return scores


def blip_product(answers: list[float]) -> float:
    """BLIP_vqa.py's image score: factors as 4-decimal strings into a float32 tensor, multiplied in
    order, the product written with 4 decimals."""
    product = np.float32(1.0)
    for p in answers:
        product = np.float32(product * np.float32(float(f"{p:.4f}")))
    return float(f"{float(product):.4f}")


def unidet_scale(width: int, height: int) -> float:
    """The factor UniDet's test resize applies (shorter side 479, longer at most 480)."""
    return min(UNIDET_SHORT / min(width, height), UNIDET_LONG / max(width, height))


def position_score(relation: str | None, box1: tuple, box2: tuple) -> float:
    """Upstream `determine_position`: how well object 1 stands `relation` object 2 (boxes in
    UniDet pixels). "on top of" (without "the") and unknown relations score 0, as upstream."""
    dx = (box2[0] + box2[2]) / 2 - (box1[0] + box1[2]) / 2
    dy = (box2[1] + box2[3]) / 2 - (box1[1] + box1[3]) / 2
    if relation in NEAR:
        if abs(dx) < DISTANCE_THRESHOLD or abs(dy) < DISTANCE_THRESHOLD:
            return 1.0
        return DISTANCE_THRESHOLD / max(abs(dx), abs(dy))
    # direction test per relation: object 2's centre lies on the opposite side along the main axis
    ok = {
        "on the right of": dx < 0 and abs(dx) > abs(dy),
        "on the left of": dx > 0 and abs(dx) > abs(dy),
        "on the bottom of": dy < 0 and abs(dy) > abs(dx),
        "on the top of": dy > 0 and abs(dy) > abs(dx),
    }.get(relation or "", False)
    if not ok:
        return 0.0
    overlap = iou(box1, box2)
    return 1.0 if overlap < IOU_THRESHOLD else IOU_THRESHOLD / overlap


def intersection(a: tuple, b: tuple) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: tuple, b: tuple) -> float:
    """Plain IoU (no +1 pixel), as upstream's spatial evaluation."""
    inter = intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def spatial_score(relation: str | None, first: Detection | None, second: Detection | None, scale: float) -> float:
    """Upstream's combination of the two detection scores and the position score, with its 0.5 cut-off."""
    if first and second:
        boxes = [tuple(v * scale for v in det.box) for det in (first, second)]
        value = 0.25 * first.score + 0.25 * second.score + 0.5 * position_score(relation, *boxes)
    elif first or second:
        value = 0.25 * (first or second).score
    else:
        value = 0.0
    return value if value >= MIN_SCORE else 0.0


class GroundedCritic(Critic):
    """A score computed from GroundingDINO detections of the prompt's objects."""

    requires = grounding.REQUIRES

    def __init__(self, grounder: grounding.Grounder):
        self.grounder = grounder

    @classmethod
    def load(cls, detector: str | None = None, device: str | None = None, **kwargs: Any):
        """`detector`: hub id or folder, else MILR_GROUNDING_DINO, else IDEA-Research/grounding-dino-base."""
        return cls(grounding.Grounder.load(detector, device, **kwargs))


class T2ISpatial(GroundedCritic):
    """T2I-CompBench's 2D spatial score with GroundingDINO detections."""

    name = "t2i-spatial"

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        parsed = phrases.spatial(record.prompt)
        if parsed is None:
            return [Score(0.0, "no spatial relation with an object on each side") for _ in images]
        obj1, relation, obj2 = parsed
        scores = []
        for image, found in zip(images, self.grounder.detect(images, [obj1, obj2])):
            first = next((d for d in found if d.label == obj1), None)
            second = next((d for d in found if d.label == obj2), None)
            value = spatial_score(relation, first, second, unidet_scale(image.width, image.height))
            seen = ", ".join(f"{d.label} {d.score:.2f}" for d in (first, second) if d) or "neither"
            scores.append(Score(value, f"{obj1} {relation} {obj2}: found {seen}"))
        return scores


def singular(word: str) -> str:
    """'dogs' -> 'dog', 'boxes' -> 'box', 'berries' -> 'berry'; words that do not end in s stay."""
    for plural, single in (("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("sses", "ss")):
        if word.endswith(plural) and len(word) > len(plural) + 1:
            return word[: -len(plural)] + single
    return word[:-1] if word.endswith("s") and not word.endswith("ss") and len(word) > 3 else word


def counted_objects(prompt: str) -> list[tuple[str, int]]:
    """(object, count) per number word that opens a noun phrase: 'three dogs and a cat' -> [(dog, 3), (cat, 1)]."""
    found = []
    for phrase in phrases.noun_phrases(prompt):
        first, *rest = phrase.split()
        if first in NUMBER_WORDS and rest and rest[-1] not in phrases.PLACES:
            found.append((singular(rest[-1]), NUMBER_WORDS[first]))
    return found


def count_objects(detections: list[Detection], label: str) -> int:
    """Boxes of `label`, counting a box that is `one_object` with an already counted one as that one."""
    kept: list[tuple] = []
    for det in (d for d in detections if d.label == label):
        if not any(one_object(det.box, k) for k in kept):
            kept.append(det.box)
    return len(kept)


def one_object(a: tuple, b: tuple) -> bool:
    """numeracy_eval.py `calculate_iou`: with +1-pixel areas, IoU or the share of either box that the
    intersection covers is above MERGE_OVERLAP."""
    inter = intersection_plus_one(a, b)
    area_a, area_b = area_plus_one(*a[:4]), area_plus_one(*b[:4])
    return max(inter / (area_a + area_b - inter), inter / area_a, inter / area_b) > MERGE_OVERLAP


class T2INumeracy(GroundedCritic):
    """T2I-CompBench's numeracy score with GroundingDINO detections."""

    name = "t2i-numeracy"

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        wanted = counted_objects(record.prompt)
        if not wanted:
            return [Score(0.0, "no counted object (a number word before a noun)") for _ in images]
        scores = []
        for found in self.grounder.detect(images, [label for label, _ in wanted]):
            counts = [count_objects(found, label) for label, _ in wanted]
            value = sum(0.5 * (n > 0) + 0.5 * (n == target) for n, (_, target) in zip(counts, wanted)) / len(wanted)
            detail = ", ".join(f"{label} {n}/{target}" for n, (label, target) in zip(counts, wanted))
            scores.append(Score(value, detail))
        return scores


def depth_score(relation: str, first: Detection, second: Detection, near_first: float, near_second: float) -> float:
    """3D_spatial_eval.py: overlap-weighted agreement of the two objects' order in depth with the relation."""
    nearer = near_first > near_second if relation == "in front of" else near_first < near_second
    overlap = iou(first.box, second.box)
    if overlap > IOU_3D:
        return 1.0 if nearer else 0.0
    if 0 < overlap < IOU_3D and nearer:
        return overlap / IOU_3D
    return 0.0  # apart, not in the right order, or IoU exactly 0.5 (upstream's branches both skip it)


def mean_inside(nearness, box: tuple, indexing: str = "upstream") -> float:
    """Mean of a (H, W) map over a box's region: upstream's [x-range, y-range] (NaN when empty) or
    [y-range, x-range] with at least one pixel."""
    if indexing == "upstream":
        region = nearness[int(box[0]) : int(box[2]), int(box[1]) : int(box[3])]
        return float(region.mean()) if region.size else math.nan
    height, width = nearness.shape
    x0, y0 = min(max(int(box[0]), 0), width - 1), min(max(int(box[1]), 0), height - 1)
    x1, y1 = max(min(int(math.ceil(box[2])), width), x0 + 1), max(min(int(math.ceil(box[3])), height), y0 + 1)
    return float(nearness[y0:y1, x0:x1].mean())


class T2I3DSpatial(Critic):
    """T2I-CompBench's 3D spatial score: GroundingDINO boxes, DPT depth."""

    name = "t2i-3d-spatial"
    requires = grounding.REQUIRES

    def __init__(self, grounder: grounding.Grounder, depth_model: depth.DepthEstimator,
                 depth_indexing: str = "upstream"):  # fmt: skip
        if depth_indexing not in DEPTH_INDEXING:
            raise MilrError(f"depth_indexing {depth_indexing!r}: expected one of {', '.join(DEPTH_INDEXING)}")
        self.grounder, self.depth, self.depth_indexing = grounder, depth_model, depth_indexing

    @classmethod
    def load(cls, detector: str | None = None, depth_model: str | None = None, device: str | None = None,
             depth_indexing: str = "upstream", **kwargs: Any) -> T2I3DSpatial:  # fmt: skip
        """Weights: GroundingDINO as t2i-spatial; `depth_model` (hub id or folder), else MILR_T2I_DEPTH,
        else Intel/dpt-hybrid-midas. `depth_indexing`: see the module docstring."""
        return cls(grounding.Grounder.load(detector, device, **kwargs), depth.DepthEstimator.load(depth_model, device),
                   depth_indexing)  # fmt: skip

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        parsed = phrases.spatial(record.prompt, phrases.SPATIAL_3D)
        if parsed is None:
            return [Score(0.0, "no 3D relation with an object on each side") for _ in images]
        obj1, relation, obj2 = parsed
        scores = []
        maps = self.depth.nearness(images)
        for nearness, found in zip(maps, self.grounder.detect(images, [obj1, obj2])):
            first = next((d for d in found if d.label == obj1), None)
            second = next((d for d in found if d.label == obj2), None)
            if first and second:
                near1, near2 = (mean_inside(nearness, d.box, self.depth_indexing) for d in (first, second))
                position = depth_score(relation, first, second, near1, near2)
                value = 0.25 * first.score + 0.25 * second.score + 0.5 * position
                detail = f"{obj1} {relation} {obj2}: nearness {near1:.2f} vs {near2:.2f}, position {position:.2f}"
                if self.depth_indexing != "upstream":
                    detail += f" (depth read {self.depth_indexing})"
            else:
                value = 0.25 * (first or second).score if (first or second) else 0.0
                detail = f"{obj1} {relation} {obj2}: found " + (", ".join(d.label for d in (first, second) if d) or "neither")
            scores.append(Score(value, detail))
        return scores


# The scorers of each category (3_in_1.py: complex is the mean of the three).
SCORERS = {
    "color": ("blip-vqa",),
    "shape": ("blip-vqa",),
    "texture": ("blip-vqa",),
    "spatial": ("spatial",),
    "non_spatial": ("clip",),
    "complex": ("blip-vqa", "spatial", "clip"),
    "numeracy": ("numeracy",),
    "3d_spatial": ("3d-spatial",),
}


class T2ICompBench(Critic):
    """T2I-CompBench's own score for each prompt's category; each scorer loads on first use."""

    name = "t2i-compbench"
    requires = tuple(dict.fromkeys(vqa.REQUIRES + grounding.REQUIRES + ("open_clip_torch>=2.24",)))

    def __init__(self, factories: dict[str, Callable[[], Critic]]):
        #: "blip-vqa", "spatial" and "clip" -> a function making that critic
        self.factories = factories
        self.critics: dict[str, Critic] = {}

    @classmethod
    def load(cls, device: str | None = None) -> T2ICompBench:
        """Each scorer with its default weights (see T2IBlipVqa, T2ISpatial, clip_score.ClipScore)."""
        from functools import cache

        from .clip_score import ClipScore

        grounder = cache(lambda: grounding.Grounder.load(device=device))  # one GroundingDINO for all of its scores
        return cls({
            "blip-vqa": lambda: T2IBlipVqa.load(device=device),
            "spatial": lambda: T2ISpatial(grounder()),
            "numeracy": lambda: T2INumeracy(grounder()),
            "3d-spatial": lambda: T2I3DSpatial(grounder(), depth.DepthEstimator.load(device=device)),
            "clip": lambda: ClipScore.load("t2i-clip", device=device),
        })  # fmt: skip

    def check(self, record: PromptRecord) -> None:
        if record.tag not in SCORERS:
            known = ", ".join(SCORERS)
            raise MilrError(f"t2i-compbench scores the categories {known}; this prompt's tag is {record.tag!r}")

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        self.check(record)
        parts = []
        for kind in SCORERS[record.tag]:
            if kind not in self.critics:
                self.critics[kind] = self.factories[kind]()
            parts.append(self.critics[kind].score(images, record))
        if len(parts) == 1:
            return parts[0]
        return [
            Score(
                sum(s.value for s in each) / len(each),
                " | ".join(f"{k}: {s.value:.4f}" for k, s in zip(SCORERS[record.tag], each)),
            )
            for each in zip(*parts)
        ]
