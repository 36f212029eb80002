"""The exact oracle for the scenes world: the shapes oracle's detection, scenes.judge_scene's rules."""

from __future__ import annotations

from .scenes import judge_scene, parse_prompt
from .shapes_oracle import ShapesOracle


class ScenesOracle(ShapesOracle):
    """GenEval's rules plus the relative-size rule on objects found exactly in scenes-world images."""

    name = "scenes-oracle"
    parse = staticmethod(parse_prompt)
    rules = staticmethod(judge_scene)
