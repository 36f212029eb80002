"""Training data for janus-shapes: shapes-world examples, seeded, kept apart from the held-out prompts.

An example is a GenEval-format prompt record, a scene that satisfies it, the
scene's reasoning text (the layout plan in words) and its render. Examples come
in fixed-size chunks, each from its own seed (TRAIN_SEED, chunk index), so the
data are the same however many worker processes make them.

The held-out set is the one `milr bench shapes` scores: prompt_set(200,
seed=HELD_OUT_SEED). Training draws from TRAIN_SEED instead, and for the two
tags whose prompt space is large (position: 80 prompts, color_attr: 1120) it
never uses a held-out prompt, so those tags measure composition on unseen
prompts. The other tags have 5 to 40 distinct prompts, all of which training
must see; there it skips the held-out prompt with its reference layout (the
scene scene_for draws for it under HELD_OUT_SEED), which at 64 px a
single-object scene would otherwise repeat pixel for pixel now and then.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from milr_rewards_geneval.plugin import HELD_OUT_PROMPTS, HELD_OUT_SEED
from milr_rewards_geneval.shapes import TAGS, prompt_set, reasoning_for, render, sample_record, scene_for

from milr_core.interfaces import PromptRecord

TRAIN_SEED = 1
IMAGE_SIZE = 64
CHUNK = 500
UNSEEN_TAGS = ("position", "color_attr")


@dataclass
class Examples:
    records: list[PromptRecord]
    reasoning: list[str]
    images: np.ndarray  # (n, size, size, 3) uint8

    def __len__(self) -> int:
        return len(self.records)


def held_out(n: int = HELD_OUT_PROMPTS) -> list[PromptRecord]:
    """The prompts `milr bench shapes` scores (n of them, balanced over the tags)."""
    return prompt_set(n, seed=HELD_OUT_SEED)


def _chunk(index: int, n: int, size: int, banned: frozenset[str], layouts: frozenset[bytes]) -> Examples:
    rng = np.random.default_rng([TRAIN_SEED, index])
    records, texts, images = [], [], np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        tag = TAGS[i % len(TAGS)]  # CHUNK is a multiple of 6: tags stay balanced overall
        while True:
            record = sample_record(rng, tag)
            if tag in UNSEEN_TAGS and record.prompt in banned:
                continue
            scene = scene_for(record, rng)
            image = np.asarray(render(scene, size))
            if _layout_key(record.prompt, image) not in layouts:
                break
        records.append(record)
        texts.append(reasoning_for(scene))
        images[i] = image
    return Examples(records, texts, images)


def make_examples(n: int, size: int = IMAGE_SIZE, workers: int | None = None) -> Examples:
    """The first n training examples (chunk after chunk)."""
    held = held_out()
    banned = frozenset(r.prompt for r in held if r.tag in UNSEEN_TAGS)
    layouts = frozenset(_reference_layouts(held, size))
    sizes = [min(CHUNK, n - start) for start in range(0, n, CHUNK)]
    workers = min(len(sizes), workers or os.cpu_count() or 1)
    args = [(i, k, size, banned, layouts) for i, k in enumerate(sizes)]
    if workers <= 1:
        parts = [_chunk(*a) for a in args]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_chunk, *zip(*args)))
    return Examples(
        [r for p in parts for r in p.records],
        [t for p in parts for t in p.reasoning],
        np.concatenate([p.images for p in parts]),
    )


def _layout_key(prompt: str, image: np.ndarray) -> bytes:
    return hashlib.sha1(prompt.encode() + image.tobytes()).digest()


def reference_images(held: list[PromptRecord], size: int = IMAGE_SIZE) -> np.ndarray:
    """A correct render for each held-out prompt (its reference layout), (n, size, size, 3) uint8."""
    rng = np.random.default_rng(HELD_OUT_SEED)
    return np.stack([np.asarray(render(scene_for(r, rng), size)) for r in held])


def _reference_layouts(held: list[PromptRecord], size: int) -> dict[bytes, str]:
    return {_layout_key(r.prompt, image): r.prompt for r, image in zip(held, reference_images(held, size))}


def leaks(examples: Examples, held: list[PromptRecord], size: int = IMAGE_SIZE) -> list[str]:
    """Held-out prompts found in training where they must not be: any prompt of UNSEEN_TAGS, or
    any prompt with its reference layout. Empty when the sets are apart."""
    reference = _reference_layouts(held, size)
    unseen = {r.prompt for r in held if r.tag in UNSEEN_TAGS}
    found = {
        record.prompt
        for record, image in zip(examples.records, examples.images)
        if record.prompt in unseen or _layout_key(record.prompt, image) in reference
    }
    return sorted(found)


def tokenizer_lines(examples: Examples, extra: tuple[str, ...] = ()) -> list[str]:
    """Every distinct prompt and reasoning text, plus fixed texts the chats contain."""
    return sorted({r.prompt for r in examples.records} | set(examples.reasoning) | set(extra))
