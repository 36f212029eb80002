"""GenEval's verdict rules, independent of how objects were detected.

Written from djghosh13/geneval @ af4902f, evaluation/evaluate_images.py
(`evaluate_image`, `evaluate`, `relative_position`; see /work/shared/BENCHMARKS.md
section 1). Any detector that yields `Detection`s (the exact shapes oracle, a
Mask2Former + CLIP oracle) gets the same verdicts from `judge`.

Differences from upstream, on purpose:
- `fraction` (partial credit) does not exist upstream; it is our reward signal.
  Each check GenEval runs is one atom: per include clause its count, its colour
  (if given) and its position (if given); each exclude clause. fraction =
  the mean credit of the atoms: 1 for a passed atom, 0 for a failed one, except
  an include's count, which earns found/count (capped at 1) so that drawing 3 of
  4 objects is rewarded over drawing 1 -- a search needs that slope, a 0/1 count
  gives it none. An atom GenEval never reaches (colour after a failed count,
  position after a failed count or colour) counts as failed, so
  `fraction == 1.0` exactly when `correct`. Exclude atoms are vacuously true on
  an empty picture, so when the record has includes and none of their atoms
  earns credit, fraction is 0.

As upstream, on purpose (issue 15, each pinned by tests/test_geneval_upstream.py):
- Each class's boxes are ordered as `np.argsort(scores)[::-1]`: most confident
  first, and boxes with equal scores in REVERSE detector order. That is what
  upstream's pinned numpy (1.23.1) does for up to 16 boxes of a class, where its
  quicksort is an insertion sort, hence stable. Beyond 16 its partitioning
  orders equal scores its own way, which milr does not reproduce; and numpy >=
  1.25 on AVX-512 CPUs orders ties differently even for a few boxes, so
  upstream's own verdicts on tied scores depend on its numpy. milr uses a
  stable sort, the same on every machine.
- Scores are compared with the threshold in float32, as numpy compares
  mmdet's float32 arrays: a score of exactly float32(0.3) is not > 0.3.
- `Options` are upstream's `--options` (threshold, counting_threshold,
  max_objects, max_overlap, position_threshold); max_overlap < 1 turns on
  upstream's greedy NMS with its +1-pixel IoU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

RELATIONS = ("left of", "right of", "above", "below")


@dataclass(frozen=True)
class Options:
    """Upstream's `--options` of evaluate_images.py, with its defaults."""

    threshold: float = 0.3  # keep boxes with score > 0.3 ...
    counting_threshold: float = 0.9  # ... or > 0.9 when the tag is "counting"
    max_objects: int = 16  # per class, after sorting by score
    max_overlap: float = 1.0  # NMS: drop a box whose IoU with a kept one is >= this; 1.0 keeps every box
    position_threshold: float = 0.1  # margin, as a share of the two boxes' summed size

    def recorded(self) -> dict[str, float]:
        """The options that differ from upstream's defaults, for results to name them."""
        return {k: v for k, v in asdict(self).items() if v != getattr(UPSTREAM, k)}


UPSTREAM = Options()


@dataclass
class Detection:
    """One detected object. `box` is (x0, y0, x1, y1) in pixels, y pointing down."""

    label: str
    box: tuple[float, float, float, float]
    score: float = 1.0
    color: str | None = None  # one of GenEval's colour names, None when unknown
    mask: Any = None  # optional boolean array (H, W); the rules never read it


@dataclass
class Verdict:
    correct: bool
    fraction: float
    reason: str  # failure messages joined with "; ", empty when correct
    checks: list[tuple[str, bool]]  # every atom, in evaluation order


def confident(
    detections: list[Detection], tag: str | None, options: Options = UPSTREAM
) -> dict[str, list[Detection]]:
    """Upstream's per-class filter: order by score, keep score > threshold (float32), cap, NMS."""
    threshold = np.float32(options.counting_threshold if tag == "counting" else options.threshold)
    by_class: dict[str, list[Detection]] = {}
    for det in detections:
        by_class.setdefault(det.label, []).append(det)
    kept_by_class = {}
    for label, dets in by_class.items():
        scores = np.array([det.score for det in dets], dtype=np.float32)
        order = np.argsort(scores, kind="stable")[::-1]
        order = order[scores[order] > threshold][: options.max_objects].tolist()
        kept = []
        while order:
            best = dets[order.pop(0)]
            kept.append(best)
            if options.max_overlap != 1:
                order = [k for k in order if iou_plus_one(best.box, dets[k].box) < options.max_overlap]
        if kept:
            kept_by_class[label] = kept
    return kept_by_class


def area_plus_one(x0: float, y0: float, x1: float, y1: float) -> float:
    """A box's area counting both edge pixels, (x1 - x0 + 1) * (y1 - y0 + 1), as GenEval and T2I-CompBench do."""
    return max(x1 - x0 + 1, 0) * max(y1 - y0 + 1, 0)


def intersection_plus_one(a: tuple, b: tuple) -> float:
    return area_plus_one(max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def iou_plus_one(a: tuple, b: tuple) -> float:
    """IoU of +1-pixel areas (GenEval's `compute_iou`); 0 when the union is 0."""
    inter = intersection_plus_one(a, b)
    union = area_plus_one(*a[:4]) + area_plus_one(*b[:4]) - inter
    return inter / union if union else 0.0


def relative_position(a: Detection, b: Detection, margin: float = UPSTREAM.position_threshold) -> set[str]:
    """Relations of A with respect to B (upstream `relative_position`)."""
    offset, dims = [], []
    for axis in (0, 1):
        centre_a = (a.box[axis] + a.box[axis + 2]) / 2
        centre_b = (b.box[axis] + b.box[axis + 2]) / 2
        offset.append(centre_a - centre_b)
        dims.append(abs(a.box[axis + 2] - a.box[axis]) + abs(b.box[axis + 2] - b.box[axis]))
    # Shrink the offset by a margin so that overlapping or barely shifted boxes have no relation.
    revised = [_shrink(o, margin * d) for o, d in zip(offset, dims)]
    if all(abs(r) < 1e-3 for r in revised):
        return set()
    norm = (offset[0] ** 2 + offset[1] ** 2) ** 0.5  # of the ORIGINAL offset, as upstream
    dx, dy = revised[0] / norm, revised[1] / norm
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def _shrink(value: float, margin: float) -> float:
    size = max(abs(value) - margin, 0.0)
    return size if value >= 0 else -size


def _get(record: Any, key: str) -> Any:
    """Read a PromptRecord or a plain GenEval metadata dict alike."""
    if isinstance(record, dict):
        return record.get(key)
    return getattr(record, key, None)


def judge(record: Any, detections: list[Detection], options: Options = UPSTREAM) -> Verdict:
    """GenEval's verdict for one image: includes ANDed in order, excludes ORed."""
    objects = confident(detections, _get(record, "tag"), options)
    checks: list[tuple[str, bool]] = []
    credits: list[float] = []
    failures: list[str] = []

    def check(name: str, ok: bool, failure: str = "", credit: float | None = None) -> bool:
        checks.append((name, ok))
        credits.append(float(ok) if credit is None else credit)
        if not ok:
            failures.append(failure)
        return ok

    groups: list[list[Detection] | None] = []  # matched objects per include clause, None if it failed
    for req in _get(record, "include") or []:
        label, count = req["class"], req["count"]
        found = objects.get(label, [])[:count]  # the `count` most confident ones
        failure = f"expected {label}>={count}, found {len(found)}"
        matched = check(f"count {label}>={count}", len(found) >= count, failure, len(found) / count)
        if "color" in req:
            matched = _check_color(req, found, matched, check)
        if "position" in req:
            matched = _check_position(req, found, groups, matched, check, options.position_threshold)
        groups.append(found if matched else None)
    n_include = len(checks)

    for req in _get(record, "exclude") or []:
        label, count = req["class"], req["count"]
        n = len(objects.get(label, []))
        check(f"exclude {label}<{count}", n < count, f"expected {label}<{count}, found {n}")

    earned = sum(credits)
    if n_include and not any(credits[:n_include]):
        earned = 0.0
    fraction = earned / len(checks) if checks else 1.0
    return Verdict(correct=not failures, fraction=fraction, reason="; ".join(failures), checks=checks)


def _check_color(req: dict, found: list[Detection], matched: bool, check) -> bool:
    label, count, color = req["class"], req["count"], req["color"]
    name = f"color {color} {label}"
    if not matched:  # upstream only classifies colours once the count is met
        return check(name, False, f"no {label} to check for {color}")
    colors = [det.color for det in found]
    seen = ", ".join(f"{colors.count(c)} {c}" for c in dict.fromkeys(colors))
    n = colors.count(color)
    return check(name, n >= count, f"expected {color} {label}>={count}, found {n} {color}; and {seen}")


def _check_position(req: dict, found: list[Detection], groups: list, matched: bool, check, margin: float) -> bool:
    label = req["class"]
    relation, target = req["position"]
    if relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}; known: {', '.join(RELATIONS)}")
    if target >= len(groups):
        raise ValueError(f"position of {label} refers to include[{target}], which is not before it")
    name = f"position {label} {relation} include[{target}]"
    if not matched:  # upstream checks positions only for clauses that matched so far
        return check(name, False, f"no {label} to place {relation} its target")
    if groups[target] is None:
        return check(name, False, f"no target for {label} to be {relation}")
    for obj in found:
        for other in groups[target]:
            relations = relative_position(obj, other, margin)
            if relation not in relations:
                shown = " and ".join(sorted(relations)) or "no relation"
                return check(name, False, f"expected {label} {relation} {other.label}, found {shown}")
    return check(name, True)
