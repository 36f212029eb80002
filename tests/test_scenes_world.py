"""The scenes world: its ten prompt forms, scenes that satisfy them, the size rule, the oracle,
hand-typed prompts, and training data kept apart from the held-out set."""

import re
from collections import Counter

import numpy as np
import pytest

from milr_core.interfaces import PromptRecord
from milr_rewards_geneval import scenes
from milr_rewards_geneval.plugin import SCENES_HELD_OUT_SEED
from milr_rewards_geneval.rules import Detection
from milr_rewards_geneval.scenes import TAGS, judge_scene, parse_prompt, prompt_set, sample_record, scene_for
from milr_rewards_geneval.scenes_oracle import ScenesOracle
from milr_rewards_geneval.shapes import CLASSES, PALETTE, Scene, Shape, render
from milr_rewards_geneval.worlds import SCENES

CLASS = "|".join(CLASSES)
COLOR = "|".join(PALETTE)
NEW_FORMS = {
    "three_color_attr": rf"a photo of an? ({COLOR}) ({CLASS}), an? ({COLOR}) ({CLASS}) and an? ({COLOR}) ({CLASS})",
    "color_counting": rf"a photo of (two|three|four|five|six) ({COLOR}) ({CLASS})e?s",
    "two_position": rf"a photo of an? ({CLASS}) (left of|right of|above|below) an? ({CLASS}) and an? ({CLASS}) "
                    rf"(left of|right of|above|below) the ({CLASS})",
    "relative_size": rf"a photo of an? ({CLASS}) (larger than|smaller than) an? ({CLASS})",
}


def test_prompt_sets_are_seeded_balanced_and_cover_ten_forms():
    first = [r.to_dict() for r in prompt_set(100, seed=3)]
    assert first == [r.to_dict() for r in prompt_set(100, seed=3)]
    assert first != [r.to_dict() for r in prompt_set(100, seed=4)]
    assert len(TAGS) == 10 and Counter(r["tag"] for r in first) == {t: 10 for t in TAGS}


@pytest.mark.parametrize("tag", list(NEW_FORMS))
def test_new_forms_are_worded_as_documented(tag):
    rng = np.random.default_rng(0)
    counts = set()
    for _ in range(60):
        record = sample_record(rng, tag)
        match = re.fullmatch(NEW_FORMS[tag], record.prompt)
        assert match, record.prompt
        if tag == "color_counting":
            counts.add(record.include[0]["count"])
            assert record.exclude == [{"class": match.group(3), "count": record.include[0]["count"] + 1}]
        if tag == "two_position":
            assert match.group(3) == match.group(6) and len({match.group(1), match.group(3), match.group(4)}) == 3
    if tag == "color_counting":
        assert counts == {2, 3, 4, 5, 6}


def test_every_scene_satisfies_its_record_per_the_pixel_oracle():
    oracle, rng = ScenesOracle(), np.random.default_rng(1)
    for record in prompt_set(80, seed=11):
        image = render(scene_for(record, rng), scenes.IMAGE_SIZE)
        verdict = oracle.verdict(image, record)
        assert verdict.correct and verdict.fraction == 1.0, (record.prompt, verdict.reason)


def _pair(size_a: str, size_b: str, relation: str):
    record = PromptRecord(f"a photo of a circle {relation} a square", "relative_size",
                          [{"class": "square", "count": 1}, {"class": "circle", "count": 1, "size": [relation, 0]}])
    scene = Scene([Shape("circle", "red", (0.2, 0.5), size_a), Shape("square", "blue", (0.8, 0.5), size_b)])
    return record, render(scene, scenes.IMAGE_SIZE)


@pytest.mark.parametrize(
    "size_a, size_b, relation, correct",
    [
        ("large", "small", "larger than", True),
        ("small", "large", "larger than", False),
        ("large", "large", "larger than", False),  # equal sizes are neither larger nor smaller
        ("small", "large", "smaller than", True),
        ("small", "small", "smaller than", False),
    ],
)
def test_the_size_rule_reads_box_areas(size_a, size_b, relation, correct):
    record, image = _pair(size_a, size_b, relation)
    verdict = ScenesOracle().verdict(image, record)
    assert verdict.correct is correct, verdict.reason
    assert verdict.checks[-1][0] == f"size circle {relation} include[0]"
    assert verdict.fraction == (1.0 if correct else 2 / 3)


def test_the_size_atom_fails_without_the_objects_and_partial_credit_stays_geneval_s():
    record, _ = _pair("large", "small", "larger than")
    only_square = [Detection("square", (0, 0, 10, 10), 1.0, "blue")]
    verdict = judge_scene(record, only_square)
    assert not verdict.correct and verdict.fraction == 1 / 3  # the square's count; circle count and size fail
    assert "no circle and square to compare" in verdict.reason


@pytest.mark.parametrize("tag", TAGS)
def test_generated_prompts_parse_back_to_their_records(tag):
    rng = np.random.default_rng(5)
    for _ in range(20):
        record = sample_record(rng, tag)
        parsed = parse_prompt(record.prompt)
        assert parsed is not None, record.prompt
        assert (parsed.tag, parsed.include, parsed.exclude or []) == (tag, record.include, record.exclude or [])


@pytest.mark.parametrize("prompt", ["a photo of a dog", "a photo of a circle larger than two squares",
                                    "a photo of a circle left of a square and a star below the triangle"])
def test_prompts_outside_the_world_are_not_read(prompt):
    assert parse_prompt(prompt) is None


def test_the_oracle_judges_a_bare_prompt_by_its_words():
    record = PromptRecord("a photo of a red circle, a blue square and a green star")
    scene = scene_for(parse_prompt(record.prompt), np.random.default_rng(0))
    good = render(scene, scenes.IMAGE_SIZE)
    wrong = render(Scene([Shape(s.label, "black", s.center, s.size) for s in scene.objects]), scenes.IMAGE_SIZE)
    # the wrong colours: the three counts pass, the three colours fail
    assert [s.value for s in ScenesOracle().score([good, wrong], record)] == [1.0, 0.5]


def test_held_out_set_is_the_registered_benchmark():
    from milr_core.plugins import registry

    bench = registry().create("benchmark", "scenes")
    assert (bench.critic, bench.backbone) == ("scenes-oracle", "janus-scenes")
    loaded = bench.load(None, 30)
    assert [r.prompt for r in loaded] == [r.prompt for r in prompt_set(30, seed=SCENES_HELD_OUT_SEED)]


def test_training_data_never_hold_a_held_out_composition():
    from milr_janus.shapes_data import held_out, leaks, make_examples

    data = make_examples(300, SCENES, workers=1)
    held = held_out(world=SCENES)
    assert leaks(data, held, SCENES) == []
    assert data.images.shape == (300, 128, 128, 3)
    unseen = {r.prompt for r in held if r.tag in SCENES.unseen_tags}
    assert not unseen & {r.prompt for r in data.records}
    # the check can fail: a held-out prompt slipped into the data is found
    data.records[0] = next(r for r in held if r.tag == "three_color_attr")
    assert leaks(data, held, SCENES) == [data.records[0].prompt]
