"""The synthetic shapes world: prompts, scenes, rendering and reasoning text."""

import re
from collections import Counter

import numpy as np
import pytest

from milr_core.interfaces import PromptRecord
from milr_rewards_geneval.shapes import (
    BACKGROUND,
    CLASSES,
    MIN_GAP,
    PALETTE,
    TAGS,
    Scene,
    Shape,
    box_of,
    prompt_set,
    reasoning_for,
    render,
    sample_record,
    scene_for,
)
from milr_rewards_geneval.shapes_oracle import ShapesOracle

CLASS = "|".join(CLASSES)
COLOR = "|".join(PALETTE)
ART = r"an? "
WORDING = {  # GenEval's phrasings (prompts/create_prompts.py)
    "single_object": rf"a photo of {ART}({CLASS})",
    "two_object": rf"a photo of {ART}({CLASS}) and {ART}({CLASS})",
    "counting": rf"a photo of (two|three|four) ({CLASS})e?s",
    "colors": rf"a photo of {ART}({COLOR}) ({CLASS})",
    "position": rf"a photo of {ART}({CLASS}) (left of|right of|above|below) {ART}({CLASS})",
    "color_attr": rf"a photo of {ART}({COLOR}) ({CLASS}) and {ART}({COLOR}) ({CLASS})",
}


def test_prompt_set_is_deterministic_and_seeded():
    first = [r.to_dict() for r in prompt_set(60, seed=7)]
    assert first == [r.to_dict() for r in prompt_set(60, seed=7)]
    assert first != [r.to_dict() for r in prompt_set(60, seed=8)]


def test_prompt_set_is_balanced_in_contiguous_tag_blocks():
    tags = [r.tag for r in prompt_set(60, seed=0)]
    assert tags == [t for t in TAGS for _ in range(10)]
    assert Counter(r.tag for r in prompt_set(8, seed=0)) == {
        "single_object": 2, "two_object": 2, "counting": 1, "colors": 1, "position": 1, "color_attr": 1
    }


@pytest.mark.parametrize("tag", TAGS)
def test_records_are_worded_and_structured_like_geneval(tag):
    rng = np.random.default_rng(0)
    for _ in range(30):
        record = sample_record(rng, tag)
        match = re.fullmatch(WORDING[tag], record.prompt)
        assert match, record.prompt
        words = match.groups()
        inc = record.include
        assert record.tag == tag
        if tag == "single_object":
            assert inc == [{"class": words[0], "count": 1}] and not record.exclude
        elif tag == "two_object":
            assert inc == [{"class": words[0], "count": 1}, {"class": words[1], "count": 1}]
            assert words[0] != words[1]
        elif tag == "counting":
            n = ["two", "three", "four"].index(words[0]) + 2
            assert inc == [{"class": words[1], "count": n}]
            assert record.exclude == [{"class": words[1], "count": n + 1}]
        elif tag == "colors":
            assert inc == [{"class": words[1], "count": 1, "color": words[0]}]
        elif tag == "position":  # "a photo of A rel B": B is the reference, include[0]
            a, relation, b = words
            assert inc == [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [relation, 0]}]
            assert a != b
        else:
            ca, a, cb, b = words
            assert inc == [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}]
            assert a != b and ca != cb


def test_plurals_and_articles_follow_geneval():
    rng = np.random.default_rng(1)
    prompts = {sample_record(rng, t).prompt for t in ("counting", "colors") for _ in range(200)}
    assert {"a photo of two crosses", "a photo of an orange star"} <= prompts
    assert not any(re.search(r"\ba [aeiou]|crosss|\ban [^aeiou]", p) for p in prompts)


def test_every_generated_scene_satisfies_its_record_per_the_oracle():
    """The key consistency check: the world and the oracle agree on 200 examples at 64 px."""
    oracle = ShapesOracle()
    rng = np.random.default_rng(123)
    records = prompt_set(200, seed=123)
    for record in records:
        scene = scene_for(record, rng)
        assert len(scene.objects) == sum(req["count"] for req in record.include)
        verdict = oracle.verdict(render(scene, 64), record)
        assert (verdict.correct, verdict.fraction) == (True, 1.0), (record.prompt, verdict.reason, scene)
    assert {r.tag for r in records} == set(TAGS)


@pytest.mark.parametrize("size", [96, 384])
def test_scenes_stay_correct_at_larger_sizes(size):
    oracle = ShapesOracle()
    rng = np.random.default_rng(size)
    for record in prompt_set(24, seed=size):
        assert oracle.verdict(render(scene_for(record, rng), size), record).correct, record.prompt


def test_generated_objects_never_overlap():
    rng = np.random.default_rng(5)
    for record in prompt_set(120, seed=5):
        boxes = [box_of(s, 1) for s in scene_for(record, rng).objects]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                gap = max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])
                assert gap >= MIN_GAP - 1e-9, (record.prompt, a, b)
        assert all(0 < v < 1 for b in boxes for v in b)


def test_scene_for_is_deterministic_under_its_rng():
    record = prompt_set(30, seed=2)[20]
    assert scene_for(record, np.random.default_rng(9)) == scene_for(record, np.random.default_rng(9))


def test_impossible_records_are_refused():
    record = PromptRecord("x", "counting", [{"class": "star", "count": 2}], [{"class": "star", "count": 2}])
    with pytest.raises(ValueError, match="no 3x3 layout"):
        scene_for(record, np.random.default_rng(0), tries=5)
    with pytest.raises(ValueError, match="unknown tag"):
        sample_record(np.random.default_rng(0), "texture")


@pytest.mark.parametrize("size", [64, 384])
def test_render_uses_only_palette_colours(size):
    scene = Scene([Shape(label, color, ((i + 0.5) / 5, 0.5), "small") for i, (label, color) in
                   enumerate(zip(CLASSES, PALETTE))])
    image = render(scene, size)
    assert image.size == (size, size) and image.mode == "RGB"
    colours = {tuple(c) for c in np.asarray(image).reshape(-1, 3)}
    assert colours == {BACKGROUND, *(PALETTE[c] for c in list(PALETTE)[:5])}


def test_reasoning_text_is_a_layout_plan():
    scene = Scene([
        Shape("circle", "red", (0.2, 0.2), "large"),
        Shape("circle", "red", (0.8, 0.2), "small"),
        Shape("square", "blue", (0.5, 0.8), "small"),
        Shape("star", "orange", (0.5, 0.5), "small"),
        Shape("cross", "green", (0.1, 0.5), "small"),
    ])
    assert reasoning_for(scene) == (
        "Two circles. A large red circle at the top left, a small red circle at the top right, "
        "a small blue square at the bottom, a small orange star in the centre and "
        "a small green cross on the left, on a white background."
    )
    assert reasoning_for(Scene([Shape("star", "pink", (0.5, 0.9), "small")])) == (
        "A small pink star at the bottom, on a white background."
    )
