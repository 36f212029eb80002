"""The synthetic worlds a small Janus is trained on, each described once for data, training and scoring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from milr_core.interfaces import Critic, PromptRecord

from . import scenes, shapes
from .plugin import HELD_OUT_SEED, SCENES_HELD_OUT_SEED
from .rules import Verdict


@dataclass(frozen=True)
class World:
    name: str
    tags: tuple[str, ...]
    sample_record: Callable[[np.random.Generator, str], PromptRecord]
    prompt_set: Callable[[int, int], list[PromptRecord]]  # (n, seed)
    scene_for: Callable[[PromptRecord, np.random.Generator], shapes.Scene]
    truth: Callable[[PromptRecord, shapes.Scene, int], Verdict]  # the verdict on a scene's geometry
    held_out_seed: int
    # tags whose prompt space is large enough that training never sees a held-out prompt of them
    unseen_tags: tuple[str, ...]
    image_size: int
    oracle: Callable[[], Critic]

    def held_out(self, n: int) -> list[PromptRecord]:
        """The first n prompts `milr bench <world>` scores (balanced over the tags)."""
        return self.prompt_set(n, seed=self.held_out_seed)


def _shapes_truth(record: PromptRecord, scene: shapes.Scene, size: int) -> Verdict:
    from .rules import judge

    return judge(record, shapes.detections(scene, size))


def _shapes_oracle() -> Critic:
    from .shapes_oracle import ShapesOracle

    return ShapesOracle()


def _scenes_oracle() -> Critic:
    from .scenes_oracle import ScenesOracle

    return ScenesOracle()


SHAPES = World(
    "shapes", shapes.TAGS, shapes.sample_record, shapes.prompt_set, shapes.scene_for, _shapes_truth,
    HELD_OUT_SEED, ("position", "color_attr"), 64, _shapes_oracle,
)
SCENES = World(
    "scenes", scenes.TAGS, scenes.sample_record, scenes.prompt_set, scenes.scene_for, scenes.judge_truth,
    SCENES_HELD_OUT_SEED, ("position", "color_attr", "three_color_attr", "color_counting", "two_position"), scenes.IMAGE_SIZE,
    _scenes_oracle,
)
WORLDS = {world.name: world for world in (SHAPES, SCENES)}
