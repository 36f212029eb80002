"""Training data for the small Janus models: examples of a synthetic world, seeded, kept apart
from the held-out prompts.

An example is a GenEval-format prompt record, a scene that satisfies it, the
scene's reasoning text (the layout plan in words) and its render. Examples come
in fixed-size chunks, each from its own seed (TRAIN_SEED, chunk index), so the
data are the same however many worker processes make them.

The held-out set is the one `milr bench <world>` scores: world.held_out(200).
Training draws from TRAIN_SEED instead, and for the tags whose prompt space is
large (world.unseen_tags; in the shapes world position: 80 prompts, color_attr:
1120) it never uses a held-out prompt, so those tags measure composition on
unseen prompts. The other tags have few distinct prompts (5 to 40), all of
which training must see; there it skips the held-out prompt with its reference
layout (the scene world.scene_for draws for it under the held-out seed), which
a single-object scene would otherwise repeat pixel for pixel now and then.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from milr_rewards_geneval.plugin import HELD_OUT_PROMPTS
from milr_rewards_geneval.shapes import Scene, reasoning_for, render
from milr_rewards_geneval.worlds import SHAPES, WORLDS, World

from milr_core.interfaces import PromptRecord

TRAIN_SEED = 1
CHUNK = 500  # a multiple of each world's number of tags, so that tags stay balanced overall


@dataclass
class Examples:
    records: list[PromptRecord]
    reasoning: list[str]
    images: np.ndarray  # (n, size, size, 3) uint8
    scenes: list[Scene]

    def __len__(self) -> int:
        return len(self.records)


def held_out(n: int = HELD_OUT_PROMPTS, world: World = SHAPES) -> list[PromptRecord]:
    """The prompts `milr bench <world>` scores (n of them, balanced over the tags)."""
    return world.held_out(n)


def _chunk(world: str, index: int, n: int, banned: frozenset[str], layouts: frozenset[bytes]) -> Examples:
    w = WORLDS[world]  # by name: worker processes get a picklable argument
    rng = np.random.default_rng([TRAIN_SEED, index])
    records, texts, scenes = [], [], []
    images = np.empty((n, w.image_size, w.image_size, 3), np.uint8)
    for i in range(n):
        tag = w.tags[i % len(w.tags)]
        while True:
            record = w.sample_record(rng, tag)
            if tag in w.unseen_tags and record.prompt in banned:
                continue
            scene = w.scene_for(record, rng)
            image = np.asarray(render(scene, w.image_size))
            if _layout_key(record.prompt, image) not in layouts:
                break
        records.append(record)
        texts.append(reasoning_for(scene))
        scenes.append(scene)
        images[i] = image
    return Examples(records, texts, images, scenes)


def make_examples(n: int, world: World = SHAPES, workers: int | None = None) -> Examples:
    """The first n training examples (chunk after chunk)."""
    held = held_out(world=world)
    banned = frozenset(r.prompt for r in held if r.tag in world.unseen_tags)
    layouts = frozenset(_reference_layouts(held, world))
    sizes = [min(CHUNK, n - start) for start in range(0, n, CHUNK)]
    workers = min(len(sizes), workers or os.cpu_count() or 1)
    args = [(world.name, i, k, banned, layouts) for i, k in enumerate(sizes)]
    if workers <= 1:
        parts = [_chunk(*a) for a in args]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_chunk, *zip(*args)))
    return Examples(
        [r for p in parts for r in p.records],
        [t for p in parts for t in p.reasoning],
        np.concatenate([p.images for p in parts]),
        [s for p in parts for s in p.scenes],
    )


def _layout_key(prompt: str, image: np.ndarray) -> bytes:
    return hashlib.sha1(prompt.encode() + image.tobytes()).digest()


def reference_images(held: list[PromptRecord], world: World = SHAPES, size: int | None = None) -> np.ndarray:
    """A correct render for each held-out prompt (its reference layout), (n, size, size, 3) uint8,
    at the world's size unless `size` says otherwise."""
    rng = np.random.default_rng(world.held_out_seed)
    return np.stack([np.asarray(render(world.scene_for(r, rng), size or world.image_size)) for r in held])


def _reference_layouts(held: list[PromptRecord], world: World) -> dict[bytes, str]:
    return {_layout_key(r.prompt, image): r.prompt for r, image in zip(held, reference_images(held, world))}


def leaks(examples: Examples, held: list[PromptRecord], world: World = SHAPES) -> list[str]:
    """Held-out prompts found in training where they must not be: any prompt of the world's
    unseen tags, or any prompt with its reference layout. Empty when the sets are apart."""
    reference = _reference_layouts(held, world)
    unseen = {r.prompt for r in held if r.tag in world.unseen_tags}
    found = {
        record.prompt
        for record, image in zip(examples.records, examples.images)
        if record.prompt in unseen or _layout_key(record.prompt, image) in reference
    }
    return sorted(found)


def tokenizer_lines(examples: Examples, extra: tuple[str, ...] = ()) -> list[str]:
    """Every distinct prompt and reasoning text, plus fixed texts the chats contain."""
    return sorted({r.prompt for r in examples.records} | set(examples.reasoning) | set(extra))
