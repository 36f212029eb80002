"""A seeded synthetic "shapes world" with GenEval-format prompts.

Flat-coloured shapes on a light background: every prompt has a scene that
satisfies it, a reasoning text (the layout plan that plays the role of
Janus-Pro's chain of thought) and an exact oracle (shapes_oracle.py). This
lets the whole MILR loop be checked on a CPU without any downloaded model.

Geometry is in fractions of the image side, so one scene renders at any size.
Objects sit in distinct cells of a 3x3 grid with a bounded jitter, which keeps
them apart by at least MIN_GAP without rejection sampling.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from milr_core.interfaces import PromptRecord

from .rules import RELATIONS, Detection, judge

CLASSES = ("circle", "square", "triangle", "star", "cross")
# Names are GenEval's colour names; the RGB values are pairwise >= 100 apart
# (and from the background), so nearest-colour segmentation is unambiguous.
PALETTE = {
    "red": (220, 30, 30),
    "orange": (255, 130, 0),
    "yellow": (240, 230, 20),
    "green": (30, 160, 60),
    "blue": (30, 70, 220),
    "purple": (130, 40, 170),
    "pink": (250, 110, 190),
    "black": (20, 20, 20),
}
BACKGROUND = (245, 245, 245)
BACKGROUND_NAME = "white"
SIZES = {"small": 0.18, "large": 0.26}  # bounding-box side, share of the image side
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
GRID = 3
MIN_GAP = 0.05  # smallest distance between two objects, share of the image side (3 px at 64 px)
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six")  # GenEval counts to four; the scenes world to six
STAR_INNER = 0.5  # inner/outer radius; fatter than a pentagram so small stars keep their points


@dataclass(frozen=True)
class Shape:
    label: str  # one of CLASSES
    color: str  # a key of PALETTE
    center: tuple[float, float]  # (x, y), shares of the image side, y down
    size: str  # a key of SIZES


@dataclass
class Scene:
    objects: list[Shape] = field(default_factory=list)


# ---- drawing ---------------------------------------------------------------


def _unit_polygon(label: str) -> list[tuple[float, float]]:
    """Outline in a box of side 1 centred on the origin (y down)."""
    if label == "square":
        return [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    if label == "triangle":  # apex up, base at the bottom, filling the box
        return [(0.0, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    if label == "cross":  # a plus sign with arms a third of the box wide
        a, b = 1 / 6, 0.5
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b),
                (-a, a), (-b, a), (-b, -a), (-a, -a)]
    if label == "star":  # five points, one up
        points = []
        for k in range(10):
            radius = 1.0 if k % 2 == 0 else STAR_INNER
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((radius * math.cos(angle), radius * math.sin(angle)))
        return _fit_box(points)
    raise ValueError(f"unknown shape {label!r}; known: {', '.join(CLASSES)}")


def _fit_box(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Scale to width 1 and centre the bounding box on the origin."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    scale = max(xs) - min(xs)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [((x - cx) / scale, (y - cy) / scale) for x, y in points]


def box_of(shape: Shape, size: int) -> tuple[float, float, float, float]:
    """Ideal bounding box in pixels."""
    side = SIZES[shape.size] * size
    cx, cy = shape.center[0] * size, shape.center[1] * size
    if shape.label == "circle":
        half_w = half_h = side / 2
    else:
        pts = _unit_polygon(shape.label)
        half_w = side * max(abs(x) for x, _ in pts)
        half_h = side * max(abs(y) for _, y in pts)
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def render(scene: Scene, size: int = 64) -> Image.Image:
    """Draw without anti-aliasing: every pixel is the background or a palette colour.
    Pillow fills edges inclusively, so a drawn box is the ideal one grown by ~0.5 px a side."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape in scene.objects:
        fill = PALETTE[shape.color]
        if shape.label == "circle":
            draw.ellipse(box_of(shape, size), fill=fill)
            continue
        side = SIZES[shape.size] * size
        cx, cy = shape.center[0] * size, shape.center[1] * size
        points = [(cx + side * x, cy + side * y) for x, y in _unit_polygon(shape.label)]
        draw.polygon(points, fill=fill)
    return image


def detections(scene: Scene, size: int = 64) -> list[Detection]:
    """Ground-truth detections of a scene, straight from its geometry."""
    return [Detection(s.label, box_of(s, size), 1.0, s.color) for s in scene.objects]


# ---- prompts ---------------------------------------------------------------


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _plural(word: str) -> str:  # GenEval's naive plural
    return f"{word}es" if word.endswith("s") else f"{word}s"


def _pick(rng: np.random.Generator, items, k: int | None = None):
    if k is None:
        return items[int(rng.integers(len(items)))]
    return [items[int(i)] for i in rng.choice(len(items), size=k, replace=False)]


def sample_record(rng: np.random.Generator, tag: str) -> PromptRecord:
    """One GenEval-format record, worded as GenEval's prompts/create_prompts.py does."""
    colors = list(PALETTE)
    if tag == "single_object":
        a = _pick(rng, CLASSES)
        return PromptRecord(f"a photo of {_article(a)}", tag, [{"class": a, "count": 1}])
    if tag == "two_object":
        a, b = _pick(rng, CLASSES, 2)
        return PromptRecord(f"a photo of {_article(a)} and {_article(b)}", tag,
                            [{"class": a, "count": 1}, {"class": b, "count": 1}])
    if tag == "counting":  # 2 to 4, as upstream; exclude = count + 1 makes the count exact
        a, n = _pick(rng, CLASSES), int(rng.integers(2, 5))
        return PromptRecord(f"a photo of {NUMBERS[n]} {_plural(a)}", tag,
                            [{"class": a, "count": n}], [{"class": a, "count": n + 1}])
    if tag == "colors":
        a, c = _pick(rng, CLASSES), _pick(rng, colors)
        return PromptRecord(f"a photo of {_article(c)} {a}", tag, [{"class": a, "count": 1, "color": c}])
    if tag == "position":  # "a photo of A rel B": include[0] is B, the reference
        a, b = _pick(rng, CLASSES, 2)
        rel = _pick(rng, RELATIONS)
        return PromptRecord(f"a photo of {_article(a)} {rel} {_article(b)}", tag,
                            [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}])
    if tag == "color_attr":
        (a, b), (ca, cb) = _pick(rng, CLASSES, 2), _pick(rng, colors, 2)
        return PromptRecord(f"a photo of {_article(ca)} {a} and {_article(cb)} {b}", tag,
                            [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}])
    raise ValueError(f"unknown tag {tag!r}; known: {', '.join(TAGS)}")


def prompt_set(n: int, seed: int = 0) -> list[PromptRecord]:
    """n records, tags balanced (n // 6 each, the first n % 6 tags one more), in contiguous
    blocks in TAGS order like GenEval's metadata file; the same n and seed give the same set."""
    rng = np.random.default_rng(seed)
    per_tag = [n // len(TAGS) + (i < n % len(TAGS)) for i in range(len(TAGS))]
    return [sample_record(rng, tag) for tag, k in zip(TAGS, per_tag) for _ in range(k)]


# ---- scenes ----------------------------------------------------------------


def _cell_satisfies(cell: tuple[int, int], target: tuple[int, int], relation: str) -> bool:
    """Same row or column, on the named side: far from GenEval's diagonal edge cases."""
    (r, c), (tr, tc) = cell, target
    return {
        "left of": r == tr and c < tc,
        "right of": r == tr and c > tc,
        "above": c == tc and r < tr,
        "below": c == tc and r > tr,
    }[relation]


def _assign_cells(record: PromptRecord, rng: np.random.Generator) -> list[list[tuple[int, int]]] | None:
    """Distinct grid cells for every object of every include clause, or None if stuck."""
    free = [(r, c) for r in range(GRID) for c in range(GRID)]
    groups: list[list[tuple[int, int]]] = []
    for req in record.include:
        options = free
        if "position" in req:
            relation, target = req["position"]
            options = [cell for cell in free if all(_cell_satisfies(cell, t, relation) for t in groups[target])]
        if len(options) < req["count"]:
            return None
        chosen = _pick(rng, options, req["count"])
        free = [cell for cell in free if cell not in chosen]
        groups.append(chosen)
    return groups


def _place(cell: tuple[int, int], size: str, rng: np.random.Generator) -> tuple[float, float]:
    row, col = cell
    cell_side = 1 / GRID
    jitter = (cell_side - SIZES[size] - MIN_GAP) / 2  # keeps MIN_GAP to any neighbour and the border
    dx, dy = rng.uniform(-jitter, jitter, size=2)
    return ((col + 0.5) * cell_side + dx, (row + 0.5) * cell_side + dy)


def scene_for(
    record: PromptRecord, rng: np.random.Generator, tries: int = 100, sizes: dict[int, str] | None = None
) -> Scene:
    """A scene that satisfies `record` under GenEval's rules: exactly the included objects
    (so exclude clauses on included classes hold), colours as asked, random otherwise.
    `sizes` fixes the size of the objects of some include clauses (by index)."""
    sizes = sizes or {}
    for _ in range(tries):
        groups = _assign_cells(record, rng)
        if groups is None:
            continue
        scene = Scene()
        for index, (req, cells) in enumerate(zip(record.include, groups)):
            for cell in cells:
                size = sizes.get(index) or _pick(rng, list(SIZES))
                color = req.get("color") or _pick(rng, list(PALETTE))
                scene.objects.append(Shape(req["class"], color, _place(cell, size, rng), size))
        if judge(record, detections(scene)).correct:
            return scene
    raise ValueError(f"no {GRID}x{GRID} layout satisfies {record.prompt!r}")


# ---- reasoning text --------------------------------------------------------


def _region(center: tuple[float, float]) -> str:
    col = min(int(center[0] * 3), 2)
    row = min(int(center[1] * 3), 2)
    vertical, horizontal = ("top", "middle", "bottom")[row], ("left", "centre", "right")[col]
    if (row, col) == (1, 1):
        return "in the centre"
    if row == 1:
        return f"on the {horizontal}"
    if col == 1:
        return f"at the {vertical}"
    return f"at the {vertical} {horizontal}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def reasoning_for(scene: Scene) -> str:
    """A layout plan in words, e.g. "Two stars. A large red star at the top left and
    a small red star on the right, on a white background." """
    if not scene.objects:
        return f"An empty {BACKGROUND_NAME} background."
    counts: dict[str, int] = {}
    for shape in scene.objects:
        counts[shape.label] = counts.get(shape.label, 0) + 1
    summary = [f"{NUMBERS[n] if n < len(NUMBERS) else n} {_plural(label)}".capitalize() + ". "
               for label, n in counts.items() if n > 1]
    parts = [f"a {s.size} {s.color} {s.label} {_region(s.center)}" for s in scene.objects]
    plan = _join(parts)
    return "".join(summary) + plan[0].upper() + plan[1:] + f", on a {BACKGROUND_NAME} background."


def _parse_phrase(words: list[str]) -> dict | None:
    """'a red circle', 'two stars', 'three blue crosses' -> {class, count[, color]}."""
    counts = {"a": 1, "an": 1, "one": 1, **{w: i for i, w in enumerate(NUMBERS) if i > 1}}
    if not words or words[0] not in counts and not words[0].isdigit():
        return None
    count = int(words[0]) if words[0].isdigit() else counts[words[0]]
    rest = words[1:]
    color = rest.pop(0) if len(rest) == 2 and rest[0] in PALETTE else None
    if len(rest) != 1:
        return None
    name = rest[0]
    label = next((c for c in CLASSES if name in (c, _plural(c))), None)
    if label is None:
        return None
    return {"class": label, "count": count, **({"color": color} if color else {})}


def parse_prompt(prompt: str) -> PromptRecord | None:
    """GenEval metadata for a shapes-world prompt typed by hand, or None if it is not one.

    Understands GenEval's six prompt forms and their combinations: one phrase, or two joined by
    "and" or a relation ("A left of B" puts B first with A's position relative to it, as GenEval
    does); a count of two or more is exact (an exclude of count + 1, as GenEval's counting prompts).
    """
    text = re.sub(r"[^a-z0-9 ]", " ", prompt.lower())
    text = re.sub(r"^\s*(a )?(photo|picture|image) of ", "", text).split()
    joins = {"and": None, **{rel: rel for rel in RELATIONS}}
    for i in range(1, len(text)):
        for join, relation in joins.items():
            if " ".join(text[i : i + len(join.split())]) == join:
                first, second = _parse_phrase(text[:i]), _parse_phrase(text[i + len(join.split()) :])
                if first and second:
                    includes = [first, second] if relation is None else [second, {**first, "position": [relation, 0]}]
                    return _record(prompt, includes, relation)
    single = _parse_phrase(text)
    return _record(prompt, [single], None) if single else None


def _record(prompt: str, includes: list[dict], relation: str | None) -> PromptRecord:
    excludes = [{"class": inc["class"], "count": inc["count"] + 1} for inc in includes if inc["count"] > 1]
    if relation:
        tag = "position"
    elif len(includes) == 2:
        tag = "color_attr" if any("color" in inc for inc in includes) else "two_object"
    else:
        tag = "counting" if includes[0]["count"] > 1 else "colors" if "color" in includes[0] else "single_object"
    return PromptRecord(prompt, tag, includes, excludes)
