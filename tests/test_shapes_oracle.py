"""The shapes oracle on hand-built scenes, including ones the generator never makes."""

import itertools

import numpy as np
import pytest
from PIL import Image

from milr_core.interfaces import Critic, PromptRecord
from milr_rewards_geneval import plugin
from milr_rewards_geneval.shapes import BACKGROUND, CLASSES, PALETTE, SIZES, Scene, Shape, render
from milr_rewards_geneval.shapes_oracle import ShapesOracle

ORACLE = ShapesOracle()


def found(image):
    return sorted((d.label, d.color) for d in ORACLE.detect(image))


def counting(label, n, plural):
    return PromptRecord(f"a photo of {n} {plural}", "counting",
                        [{"class": label, "count": n}], [{"class": label, "count": n + 1}])


@pytest.mark.parametrize("size", [64, 96, 384])
@pytest.mark.parametrize("label", CLASSES)
def test_every_class_colour_and_size_is_recognised(label, size):
    for color, size_name in itertools.product(PALETTE, SIZES):
        image = render(Scene([Shape(label, color, (0.47, 0.52), size_name)]), size)
        assert found(image) == [(label, color)], (color, size_name)


def touching(a, b, relation, size):
    """a (red) and b (blue, placed `relation` a) pushed together until their pixels touch."""
    side = SIZES["large"]
    red, blue = np.array(PALETTE["red"]), np.array(PALETTE["blue"])
    for step in range(size // 4):
        gap = side - step / size
        where = (0.5 + gap / 2, 0.5) if relation == "right of" else (0.5, 0.5 + gap / 2)
        image = render(Scene([Shape(a, "red", (1 - where[0], 1 - where[1]), "large"),
                              Shape(b, "blue", where, "large")]), size)
        pixels = np.asarray(image)
        is_red, is_blue = (pixels == red).all(-1), (pixels == blue).all(-1)
        if (is_red[:, :-1] & is_blue[:, 1:]).any() or (is_red[:-1] & is_blue[1:]).any():
            return image
    raise AssertionError(f"{a} and {b} never touch")


@pytest.mark.parametrize("size", [64, 384])
@pytest.mark.parametrize("relation", ["right of", "below"])
@pytest.mark.parametrize("a, b", list(itertools.permutations(CLASSES, 2)))
def test_touching_objects_of_different_colours_are_told_apart(a, b, relation, size):
    image = touching(a, b, relation, size)
    assert found(image) == sorted([(a, "red"), (b, "blue")])
    record = PromptRecord(f"a photo of a {b} {relation} a {a}", "position",
                          [{"class": a, "count": 1}, {"class": b, "count": 1, "position": [relation, 0]}])
    assert ORACLE.verdict(image, record).correct


def test_same_colour_objects_apart_are_counted():
    scene = Scene([Shape("star", "purple", (x, 0.5), "small") for x in (0.2, 0.5, 0.8)])
    assert found(render(scene, 64)) == [("star", "purple")] * 3
    [score] = ORACLE.score([render(scene, 64)], counting("star", 3, "three stars"))
    assert (score.value, score.detail) == (1.0, "correct (found: 3 purple star)")


def test_same_colour_objects_that_touch_merge_into_one():
    """Documented limit: one colour, one connected blob, one object."""
    side = SIZES["small"]
    scene = Scene([Shape("square", "red", (0.5, 0.5), "small"), Shape("square", "red", (0.5 + side, 0.5), "small")])
    assert found(render(scene, 64)) == [("square", "red")]


def test_counting_with_exclusion():
    record = counting("star", 2, "two stars")
    two = Scene([Shape("star", "red", (0.2, 0.2), "small"), Shape("star", "blue", (0.8, 0.8), "large"),
                 Shape("circle", "red", (0.8, 0.2), "small")])
    three = Scene(two.objects + [Shape("star", "yellow", (0.2, 0.8), "small")])
    assert ORACLE.verdict(render(two, 64), record).correct
    [score] = ORACLE.score([render(three, 64)], record)
    assert score.value == 0.5
    assert score.detail.startswith("incorrect: expected star<3, found 3 (found: ")


def test_an_object_of_the_wrong_colour():
    record = PromptRecord("a photo of a red circle", "colors", [{"class": "circle", "count": 1, "color": "red"}])
    image = render(Scene([Shape("circle", "blue", (0.5, 0.5), "large")]), 64)
    [score] = ORACLE.score([image], record)
    assert score.value == 0.5
    assert score.detail == "incorrect: expected red circle>=1, found 0 red; and 1 blue (found: 1 blue circle)"


def test_a_wrong_shape_of_the_right_colour():
    record = PromptRecord("a photo of a red circle", "colors", [{"class": "circle", "count": 1, "color": "red"}])
    image = render(Scene([Shape("square", "red", (0.5, 0.5), "large")]), 64)
    assert ORACLE.score([image], record)[0].value == 0.0


@pytest.mark.parametrize("record", [
    PromptRecord("a photo of a circle", "single_object", [{"class": "circle", "count": 1}]),
    counting("cross", 2, "two crosses"),
    PromptRecord("a photo of a star above a square", "position",
                 [{"class": "square", "count": 1}, {"class": "star", "count": 1, "position": ["above", 0]}]),
])
def test_a_blank_image_scores_zero(record):
    blank = Image.new("RGB", (64, 64), BACKGROUND)
    [score] = ORACLE.score([blank], record)
    assert score.value == 0.0
    assert score.detail.startswith("incorrect: ") and score.detail.endswith("(found: nothing)")


def test_specks_and_thin_lines_are_noise():
    pixels = np.full((64, 64, 3), BACKGROUND, dtype=np.uint8)
    rng = np.random.default_rng(0)
    for y, x in rng.integers(0, 64, size=(30, 2)):
        pixels[y, x] = PALETTE["red"]
    pixels[40, 5:60] = PALETTE["blue"]  # a 1 px line, as a blended edge can leave
    pixels[50:52, 5:60] = PALETTE["green"]  # a 2 px one
    assert ORACLE.detect(Image.fromarray(pixels)) == []


def test_scores_are_batched_and_ordered():
    record = PromptRecord("a photo of a square", "single_object", [{"class": "square", "count": 1}])
    square = render(Scene([Shape("square", "pink", (0.5, 0.5), "large")]), 64)
    circle = render(Scene([Shape("circle", "pink", (0.5, 0.5), "large")]), 64)
    assert [s.value for s in ORACLE.score([square, circle, square], record)] == [1.0, 0.0, 1.0]


def test_plugin_registers_the_oracle_lazily():
    registered = {}
    plugin.register_critics(register=lambda name, factory, description="", options=None: registered.update({name: factory}))
    oracle = registered["shapes-oracle"]()
    assert isinstance(oracle, Critic) and isinstance(oracle, ShapesOracle) and oracle.name == "shapes-oracle"


def test_bare_prompts_are_read_into_geneval_metadata():
    from milr_core.errors import MilrError
    from milr_rewards_geneval.shapes import parse_prompt, prompt_set
    from milr_rewards_geneval.shapes_oracle import with_metadata

    # every generated prompt parses back to its own metadata
    for record in prompt_set(60, seed=3):
        parsed = parse_prompt(record.prompt)
        assert (parsed.tag, parsed.include, parsed.exclude) == (record.tag, record.include, record.exclude), record.prompt
    compound = parse_prompt("a photo of two red circles above a blue square")
    assert compound.include == [
        {"class": "square", "count": 1, "color": "blue"},
        {"class": "circle", "count": 2, "color": "red", "position": ["above", 0]},
    ]
    assert compound.exclude == [{"class": "circle", "count": 3}] and compound.tag == "position"
    assert parse_prompt("a dog on a skateboard") is None
    with pytest.raises(MilrError, match="shapes-oracle cannot read 'a dog on a skateboard'"):
        with_metadata(PromptRecord("a dog on a skateboard"))


def test_generate_prompt_is_judged_by_its_words():
    from milr_rewards_geneval.shapes import Scene, Shape, render

    two_red_above_blue = Scene([Shape("circle", "red", (0.25, 0.2), "small"), Shape("circle", "red", (0.75, 0.2), "small"),
                                Shape("square", "blue", (0.5, 0.8), "small")])
    oracle = ShapesOracle()
    image = render(two_red_above_blue, 64)
    assert oracle.score([image], PromptRecord("a photo of two red circles above a blue square"))[0].value == 1.0
    assert oracle.score([image], PromptRecord("a photo of two red circles below a blue square"))[0].value < 1.0
