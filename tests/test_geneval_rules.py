"""GenEval's verdict rules on hand-made detections with known verdicts."""

import pytest

from milr_core.interfaces import PromptRecord
from milr_rewards_geneval.rules import Detection, judge, relative_position


def box(label, cx, cy, w=10, h=10, color=None, score=1.0):
    return Detection(label, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), score, color)


TWO_CIRCLES = PromptRecord(
    "a photo of two circles", "counting", [{"class": "circle", "count": 2}], [{"class": "circle", "count": 3}]
)


def position_record(relation):
    # "a photo of a circle <relation> a square": include[0] is the reference
    return PromptRecord(
        f"a photo of a circle {relation} a square",
        "position",
        [{"class": "square", "count": 1}, {"class": "circle", "count": 1, "position": [relation, 0]}],
    )


# ---- counts ----------------------------------------------------------------


def test_exact_count_is_correct():
    v = judge(TWO_CIRCLES, [box("circle", 10, 10), box("circle", 40, 10), box("square", 70, 10)])
    assert (v.correct, v.fraction, v.reason) == (True, 1.0, "")
    assert v.checks == [("count circle>=2", True), ("exclude circle<3", True)]


def test_one_too_many_fails_the_exclude_only():
    v = judge(TWO_CIRCLES, [box("circle", x, 10) for x in (10, 40, 70)])
    assert (v.correct, v.fraction, v.reason) == (False, 0.5, "expected circle<3, found 3")


def test_too_few_earn_count_credit_in_proportion():
    v = judge(TWO_CIRCLES, [box("circle", 10, 10)])
    # count: 1 of 2 found -> 0.5; the exclude holds -> 1; mean 0.75, and still incorrect
    assert (v.correct, v.fraction, v.reason) == (False, 0.75, "expected circle>=2, found 1")
    assert v.checks == [("count circle>=2", False), ("exclude circle<3", True)]
    four = {"tag": "counting", "include": [{"class": "star", "count": 4}], "exclude": [{"class": "star", "count": 5}]}
    fractions = [judge(four, [box("star", 10 + 30 * i, 10) for i in range(n)]).fraction for n in range(5)]
    assert fractions == [0.0, 0.625, 0.75, 0.875, 1.0]  # a slope for the search, 1.0 only when correct


def test_no_detections_score_zero():
    v = judge(TWO_CIRCLES, [])
    assert (v.correct, v.fraction) == (False, 0.0)


def test_counting_keeps_only_scores_above_0_9():
    dets = [box("circle", 10, 10, score=0.95), box("circle", 40, 10, score=0.9), box("circle", 70, 10, score=0.5)]
    v = judge(TWO_CIRCLES, dets)  # 0.9 is not > 0.9: one circle left
    assert v.reason == "expected circle>=2, found 1"


def test_other_tags_keep_scores_above_0_3():
    record = PromptRecord("a photo of a circle", "single_object", [{"class": "circle", "count": 1}])
    assert not judge(record, [box("circle", 10, 10, score=0.3)]).correct
    assert judge(record, [box("circle", 10, 10, score=0.31)]).correct


def test_at_most_16_objects_per_class_are_kept():
    record = {"prompt": "", "tag": "two_object", "include": [], "exclude": [{"class": "circle", "count": 17}]}
    v = judge(record, [box("circle", 5 * i, 10) for i in range(20)])  # dict metadata works too
    assert v.correct


# ---- colour ----------------------------------------------------------------


def test_colour_binding_with_two_classes():
    record = PromptRecord(
        "a photo of a red circle and a blue square",
        "color_attr",
        [{"class": "circle", "count": 1, "color": "red"}, {"class": "square", "count": 1, "color": "blue"}],
    )
    swapped = [box("circle", 10, 10, color="blue"), box("square", 40, 10, color="red")]
    v = judge(record, swapped)
    assert (v.correct, v.fraction) == (False, 0.5)
    assert v.checks == [
        ("count circle>=1", True),
        ("color red circle", False),
        ("count square>=1", True),
        ("color blue square", False),
    ]
    assert v.reason.startswith("expected red circle>=1, found 0 red; and 1 blue; ")
    right = [box("circle", 10, 10, color="red"), box("square", 40, 10, color="blue")]
    assert judge(record, right).correct


def test_colour_is_judged_on_the_most_confident_objects_only():
    record = PromptRecord("a photo of two red circles", "colors", [{"class": "circle", "count": 2, "color": "red"}])
    dets = [
        box("circle", 10, 10, color="red", score=0.9),
        box("circle", 40, 10, color="red", score=0.5),
        box("circle", 70, 10, color="blue", score=0.8),
    ]
    v = judge(record, dets)  # the top two are red and blue
    assert v.reason == "expected red circle>=2, found 1 red; and 1 red, 1 blue"


def test_colour_is_not_reached_when_the_count_fails():
    record = PromptRecord("a photo of a red circle", "colors", [{"class": "circle", "count": 1, "color": "red"}])
    v = judge(record, [])
    assert v.checks == [("count circle>=1", False), ("color red circle", False)]
    assert v.fraction == 0.0


# ---- position --------------------------------------------------------------


@pytest.mark.parametrize(
    "relation, dx, dy",
    [("left of", -20, 0), ("right of", 20, 0), ("above", 0, -20), ("below", 0, 20)],
)
def test_each_relation_holds_and_its_opposite_fails(relation, dx, dy):
    square = box("square", 50, 50)
    circle = box("circle", 50 + dx, 50 + dy)
    assert relative_position(circle, square) == {relation}
    assert judge(position_record(relation), [square, circle]).correct
    opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[relation]
    v = judge(position_record(opposite), [square, circle])
    assert (v.correct, v.fraction) == (False, 2 / 3)
    assert v.reason == f"expected circle {opposite} square, found {relation}"


def test_margin_edge_cases():
    # Two 10 px boxes: margin = 0.1 * (10 + 10) = 2 px. Along one axis the shrunk offset
    # must exceed half the offset, so the relation needs |offset| > 4 px.
    square = box("square", 50, 50)
    assert relative_position(box("circle", 48, 50), square) == set()  # inside the margin
    assert relative_position(box("circle", 46.1, 50), square) == set()  # 1.9 / 3.9 < 0.5
    assert relative_position(box("circle", 45.9, 50), square) == {"left of"}  # 2.1 / 4.1 > 0.5
    assert relative_position(box("circle", 50, 50), square) == set()  # same centre


def test_margin_uses_the_sizes_along_each_axis():
    square = box("square", 50, 50)
    wide = box("circle", 40, 50, w=90, h=10)  # x margin = 0.1 * (90 + 10) = 10 = |offset|
    assert relative_position(wide, square) == set()
    tall = box("circle", 40, 50, w=10, h=90)  # x margin = 2: clearly left
    assert relative_position(tall, square) == {"left of"}


def test_diagonals_can_hold_two_relations():
    square = box("square", 50, 50)
    assert relative_position(box("circle", 30, 30), square) == {"left of", "above"}
    assert relative_position(box("circle", 30, 45), square) == {"left of"}


def test_position_needs_its_target_to_have_matched():
    v = judge(position_record("left of"), [box("circle", 10, 10)])
    assert v.checks == [
        ("count square>=1", False),
        ("count circle>=1", True),
        ("position circle left of include[0]", False),
    ]
    assert v.reason == "expected square>=1, found 0; no target for circle to be left of"
    assert v.fraction == pytest.approx(1 / 3)


def test_every_object_pair_must_hold_the_relation():
    record = PromptRecord(
        "two circles left of a square",
        "position",
        [{"class": "square", "count": 1}, {"class": "circle", "count": 2, "position": ["left of", 0]}],
    )
    square = box("square", 50, 50)
    assert judge(record, [square, box("circle", 20, 50), box("circle", 30, 50)]).correct
    assert not judge(record, [square, box("circle", 20, 50), box("circle", 80, 50)]).correct


def test_a_position_that_points_forward_is_rejected():
    record = PromptRecord("x", "position", [{"class": "circle", "count": 1, "position": ["left of", 0]}])
    with pytest.raises(ValueError, match="include\\[0\\]"):
        judge(record, [box("circle", 10, 10)])
