"""The scenes world: the shapes world's objects at 128 px, with harder, T2I-CompBench-like prompts.

The objects, palette, 3x3 layout, renderer and reasoning text are the shapes
world's (shapes.py); what changes is the prompts. GenEval's six forms come
worded and judged exactly as there, and four forms go beyond them:

- three_color_attr: "a photo of a red circle, a blue square and a green star".
  GenEval's rules: three include clauses, each with its colour.
- color_counting: "a photo of five red stars", counts 2 to 6. GenEval's rules:
  an include of that count with that colour, an exclude of count + 1 (the
  count is exact, as GenEval's counting prompts make it).
- two_position: "a photo of a circle left of a square and a star below the
  square". GenEval's rules: the square is include[0], the other two each carry
  a position relative to it; both relations must hold.
- relative_size: "a photo of a circle larger than a square". GenEval has no
  size rule; ours, in judge_scene: both objects are found (GenEval's count
  atoms), and then one more atom: the named object's box area is at least
  SIZE_RATIO times the other's ("larger than"), or at most 1 / SIZE_RATIO
  times it ("smaller than"). The renderer's two sizes differ by 2.1x in box
  area, and boxes of equal-size objects by under 1.1x, so 1.3 separates them.

Prompts come from a seed (prompt_set), so anyone can draw fresh held-out sets.
"""

from __future__ import annotations

import re

import numpy as np

from milr_core.interfaces import PromptRecord

from . import shapes
from .rules import RELATIONS, Detection, Verdict, confident, judge
from .shapes import CLASSES, NUMBERS, PALETTE, Scene, _article, _pick, _plural

IMAGE_SIZE = 128
GENEVAL_TAGS = shapes.TAGS
TAGS = GENEVAL_TAGS + ("three_color_attr", "color_counting", "two_position", "relative_size")
SIZE_RELATIONS = ("larger than", "smaller than")
SIZE_RATIO = 1.3
MAX_COUNT = 6


def sample_record(rng: np.random.Generator, tag: str) -> PromptRecord:
    """One record of `tag`; GenEval's tags are worded as shapes.sample_record words them."""
    colors = list(PALETTE)
    if tag in GENEVAL_TAGS:
        return shapes.sample_record(rng, tag)
    if tag == "three_color_attr":
        names, tints = _pick(rng, CLASSES, 3), _pick(rng, colors, 3)
        phrases = [f"{_article(c)} {a}" for a, c in zip(names, tints)]
        return PromptRecord(f"a photo of {phrases[0]}, {phrases[1]} and {phrases[2]}", tag,
                            [{"class": a, "count": 1, "color": c} for a, c in zip(names, tints)])
    if tag == "color_counting":
        a, c, n = _pick(rng, CLASSES), _pick(rng, colors), int(rng.integers(2, MAX_COUNT + 1))
        return PromptRecord(f"a photo of {NUMBERS[n]} {c} {_plural(a)}", tag,
                            [{"class": a, "count": n, "color": c}], [{"class": a, "count": n + 1}])
    if tag == "two_position":
        a, b, c = _pick(rng, CLASSES, 3)
        first, second = _pick(rng, RELATIONS, 2)
        return PromptRecord(f"a photo of {_article(a)} {first} {_article(b)} and {_article(c)} {second} the {b}", tag,
                            [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [first, 0]},
                             {"class": c, "count": 1, "position": [second, 0]}])
    if tag == "relative_size":
        a, b = _pick(rng, CLASSES, 2)
        relation = _pick(rng, SIZE_RELATIONS)
        return PromptRecord(f"a photo of {_article(a)} {relation} {_article(b)}", tag,
                            [{"class": b, "count": 1}, {"class": a, "count": 1, "size": [relation, 0]}])
    raise ValueError(f"unknown tag {tag!r}; known: {', '.join(TAGS)}")


def prompt_set(n: int, seed: int = 0) -> list[PromptRecord]:
    """n records, tags balanced and in TAGS order (as shapes.prompt_set); same n and seed, same set."""
    rng = np.random.default_rng(seed)
    per_tag = [n // len(TAGS) + (i < n % len(TAGS)) for i in range(len(TAGS))]
    return [sample_record(rng, tag) for tag, k in zip(TAGS, per_tag) for _ in range(k)]


def scene_for(record: PromptRecord, rng: np.random.Generator) -> Scene:
    """A scene that satisfies `record`; a size relation draws its two objects large and small."""
    sizes = {}
    for index, req in enumerate(record.include):
        if "size" in req:
            relation, target = req["size"]
            big, small = (index, target) if relation == "larger than" else (target, index)
            sizes.update({big: "large", small: "small"})
    return shapes.scene_for(record, rng, sizes=sizes)


# ---- the verdict -------------------------------------------------------------


def judge_scene(record: PromptRecord, detections: list[Detection]) -> Verdict:
    """GenEval's verdict (rules.judge) plus one atom per size clause (see the module docstring)."""
    verdict = judge(record, detections)
    sized = [(i, req) for i, req in enumerate(record.include) if "size" in req]
    if not sized:
        return verdict
    objects = confident(detections, record.tag)
    checks, earned = list(verdict.checks), verdict.fraction * len(verdict.checks)
    failures = [verdict.reason] if verdict.reason else []
    for _, req in sized:
        relation, target = req["size"]
        other = record.include[target]
        mine = objects.get(req["class"], [])[: req["count"]]
        theirs = objects.get(other["class"], [])[: other["count"]]
        name = f"size {req['class']} {relation} include[{target}]"
        if len(mine) < req["count"] or len(theirs) < other["count"]:
            ok, failure = False, f"no {req['class']} and {other['class']} to compare"
        else:
            ratios = [_area(a) / max(_area(b), 1e-9) for a in mine for b in theirs]
            if relation == "larger than":
                ok = min(ratios) >= SIZE_RATIO
            else:
                ok = max(ratios) <= 1 / SIZE_RATIO
            failure = f"expected {req['class']} {relation} {other['class']}, area ratio {min(ratios):.2f}"
        checks.append((name, ok))
        earned += ok
        if not ok:
            failures.append(failure)
    return Verdict(not failures, earned / len(checks), "; ".join(failures), checks)


def _area(det: Detection) -> float:
    x0, y0, x1, y1 = det.box
    return (x1 - x0) * (y1 - y0)


def judge_truth(record: PromptRecord, scene: Scene, size: int = IMAGE_SIZE) -> Verdict:
    """The verdict on a scene's own geometry (no pixels): labels training pairs exactly."""
    return judge_scene(record, shapes.detections(scene, size))


# ---- prompts typed by hand -----------------------------------------------------


def parse_prompt(prompt: str) -> PromptRecord | None:
    """Metadata for a scenes-world prompt typed by hand, or None: the forms above, and
    whatever shapes.parse_prompt reads (one or two phrases, one relation)."""
    text = re.sub(r"[^a-z0-9 ]", " ", prompt.lower().replace(",", " and "))
    text = " ".join(re.sub(r"^\s*(a )?(photo|picture|image) of ", "", text).split()).replace("and and", "and")
    for relation in SIZE_RELATIONS:
        if f" {relation} " in text:
            first, second = (shapes._parse_phrase(p.split()) for p in text.split(f" {relation} ", 1))
            if first and second and first["count"] == second["count"] == 1:
                return PromptRecord(prompt, "relative_size", [second, {**first, "size": [relation, 0]}])
            return None
    two = _parse_two_positions(text)
    if two:
        return PromptRecord(prompt, "two_position", two)
    parts = text.split(" and ")
    if len(parts) == 3:
        phrases = [shapes._parse_phrase(p.split()) for p in parts]
        if all(phrases):
            return PromptRecord(prompt, "three_color_attr", phrases)
        return None
    record = shapes.parse_prompt(prompt)
    if record and record.tag == "counting" and "color" in record.include[0]:
        return PromptRecord(prompt, "color_counting", record.include, record.exclude)
    return record


def _parse_two_positions(text: str) -> list[dict] | None:
    """'A rel1 B and C rel2 the B' -> [B, A at rel1 of B, C at rel2 of B]."""
    rel = "|".join(RELATIONS)
    match = re.fullmatch(rf"(.+?) ({rel}) (.+?) and (.+?) ({rel}) the (\w+)", text)
    if not match:
        return None
    a, first, b, c, second, again = match.groups()
    a, b, c = (shapes._parse_phrase(p.split()) for p in (a, b, c))
    if not (a and b and c) or again not in (b["class"], _plural(b["class"])):
        return None
    return [b, {**a, "position": [first, 0]}, {**c, "position": [second, 0]}]
