"""The exact GenEval oracle for the shapes world.

Finds objects from pixels alone (no scene file): every pixel takes the nearest
palette colour (or background, or "unknown" when nothing is near), each
colour's 4-connected components are objects, and each object's shape is read
from its geometry. rules.py then gives GenEval's verdict.

Limits: two objects of the SAME colour that touch form one component and are
seen as one (misshapen) object, as a detector would likely merge them too.
Touching objects of different colours are separated by the colour step.
Objects are assumed upright, as shapes.render draws them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from milr_core.errors import MilrError
from milr_core.interfaces import Critic, PromptRecord, Score

from .rules import Detection, Verdict, judge
from .shapes import BACKGROUND, CLASSES, PALETTE, parse_prompt

if TYPE_CHECKING:
    from PIL.Image import Image

COLOR_CUTOFF = 50.0  # RGB distance; palette colours are >= 100 apart, so a match is unambiguous
MIN_AREA = 0.002  # components below this share of the image are noise (a small star at 64 px is 0.014)


def with_metadata(record: PromptRecord, parse=parse_prompt, critic: str = "shapes-oracle") -> PromptRecord:
    """A bare prompt (e.g. from `milr generate`) gets its GenEval metadata from the prompt's words."""
    if record.include:
        return record
    parsed = parse(record.prompt)
    if parsed is None:
        raise MilrError(
            f"{critic} cannot read {record.prompt!r}: it knows prompts like 'a photo of two red circles "
            f"above a blue square' over {', '.join(CLASSES)} in {', '.join(PALETTE)}"
        )
    return parsed


class ShapesOracle(Critic):
    """GenEval rules on objects found exactly in shapes-world images."""

    name = "shapes-oracle"
    # the world's prompt reader and verdict rules; a world with more prompt forms swaps them
    parse = staticmethod(parse_prompt)
    rules = staticmethod(judge)

    def __init__(self, color_cutoff: float = COLOR_CUTOFF, min_area: float = MIN_AREA):
        self.color_cutoff = color_cutoff
        self.min_area = min_area

    def check(self, record: PromptRecord) -> None:
        with_metadata(record)

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        record = with_metadata(record, self.parse, self.name)
        scores = []
        for image in images:
            found = self.detect(image)
            verdict = self.rules(record, found)
            head = "correct" if verdict.correct else f"incorrect: {verdict.reason}"
            scores.append(Score(verdict.fraction, f"{head} (found: {describe(found)})", verdict.correct))
        return scores

    def verdict(self, image: Image, record: PromptRecord) -> Verdict:
        """GenEval's 0/1 `correct`, the partial `fraction` and the reason."""
        return self.rules(with_metadata(record, self.parse, self.name), self.detect(image))

    def detect(self, image: Image) -> list[Detection]:
        """Objects, largest first: with equal scores, size stands in for a detector's confidence."""
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        height, width = pixels.shape[:2]
        min_pixels = self.min_area * height * width
        found = []
        for color, mask in segment(pixels, self.color_cutoff).items():
            for part in components(mask, min_pixels):
                if not erode(part).any():
                    continue  # specks and 1-2 px lines, e.g. blended edges of a resized image
                found.append(_detection(part, color))
        found.sort(key=lambda d: -int(d.mask.sum()))
        return found


def describe(found: list[Detection]) -> str:
    counts: dict[str, int] = {}
    for det in found:
        key = f"{det.color} {det.label}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {key}" for key, n in counts.items()) or "nothing"


def _detection(mask: np.ndarray, color: str) -> Detection:
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return Detection(classify(crop), box, 1.0, color, mask)


# ---- pixels to colour masks ------------------------------------------------


def segment(pixels: np.ndarray, cutoff: float) -> dict[str, np.ndarray]:
    """Boolean mask per palette colour; background and far-off pixels belong to none."""
    names = list(PALETTE)
    refs = np.array([PALETTE[n] for n in names] + [BACKGROUND], dtype=np.float32)
    dist2 = ((pixels[:, :, None, :] - refs) ** 2).sum(axis=-1)
    nearest = dist2.argmin(axis=-1)
    nearest[np.take_along_axis(dist2, nearest[..., None], axis=-1)[..., 0] > cutoff**2] = -1
    masks = {name: nearest == k for k, name in enumerate(names)}
    return {name: mask for name, mask in masks.items() if mask.any()}


def components(mask: np.ndarray, min_pixels: float = 0) -> list[np.ndarray]:
    """4-connected components of at least `min_pixels` pixels, by union-find over
    horizontal runs (numpy only: scipy may be absent)."""
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)
    rows, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)  # row-major order pairs each start with its end
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of_row = np.searchsorted(rows, np.arange(height + 1))
    for y in range(1, height):
        # runs of consecutive rows touch when their column spans overlap; both lists are
        # sorted, so walk them together, always stepping past the run that ends first
        j, j_end = first_of_row[y - 1], first_of_row[y]
        i, i_end = first_of_row[y], first_of_row[y + 1]
        while i < i_end and j < j_end:
            if starts[j] < ends[i] and starts[i] < ends[j]:
                parent[root(i)] = root(j)
            if ends[i] < ends[j]:
                i += 1
            else:
                j += 1
    groups: dict[int, list[int]] = {}
    for i in range(len(rows)):
        groups.setdefault(root(i), []).append(i)
    parts = []
    for runs in groups.values():
        if sum(int(ends[i] - starts[i]) for i in runs) < min_pixels:
            continue
        part = np.zeros(mask.shape, dtype=bool)
        for i in runs:
            part[rows[i], starts[i] : ends[i]] = True
        parts.append(part)
    return parts


def erode(mask: np.ndarray) -> np.ndarray:
    """Pixels whose four neighbours are all in the mask."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    inner[0, :] = inner[-1, :] = inner[:, 0] = inner[:, -1] = False
    return inner


# ---- shape from geometry ---------------------------------------------------


# Each shape's (fill, solidity, symmetry) as drawn by shapes.render, from its ideal outline:
# fill = area / box area, solidity = area / convex-hull area, symmetry = IoU with the
# upside-down mask. Star (inner radius 0.5): area 1.47 R^2, box 1.90 R x 1.81 R, hull a
# pentagon of 2.38 R^2; its symmetry was measured on a 384 px render.
PROTOTYPES = {
    "square": (1.0, 1.0, 1.0),
    "circle": (math.pi / 4, 1.0, 1.0),
    "triangle": (0.5, 1.0, 1 / 3),  # apex up: its flip overlaps it in a diamond of area 1/4
    "star": (0.427, 0.618, 0.5),
    "cross": (5 / 9, 5 / 7, 1.0),  # arms a third wide; the hull cuts the four corners
}


def classify(crop: np.ndarray) -> str:
    """The shape whose ideal features are nearest. Pixelation moves small shapes towards
    their neighbours; on the renderer's output every shape stays nearest its own
    prototype from 48 px images up (the narrowest margin is cross vs star)."""
    found = features(crop)
    return min(PROTOTYPES, key=lambda label: math.dist(found, PROTOTYPES[label]))


def features(crop: np.ndarray) -> tuple[float, float, float]:
    """(fill, solidity, symmetry) of a mask cropped to its bounding box."""
    area = float(crop.sum())
    flipped = crop[::-1]
    symmetry = float((crop & flipped).sum()) / float((crop | flipped).sum())
    return area / crop.size, area / hull_area(crop), symmetry


def hull_area(crop: np.ndarray) -> float:
    """Convex hull area of the pixel squares (monotone chain over each row's outer corners)."""
    points = set()
    for y in np.nonzero(crop.any(axis=1))[0]:
        xs = np.nonzero(crop[y])[0]
        for x in (int(xs[0]), int(xs[-1]) + 1):
            points.update({(x, int(y)), (x, int(y) + 1)})
    pts = sorted(points)

    def half(seq):
        chain: list[tuple[int, int]] = []
        for p in seq:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    hull = half(pts) + half(reversed(pts))
    twice = sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(hull, hull[1:] + hull[:1]))
    return abs(twice) / 2


def _cross(o, a, b) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
