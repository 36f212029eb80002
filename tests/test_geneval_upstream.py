"""GenEval's rules where milr once disagreed with upstream (issue 15), pinned to upstream's outputs.

Expected values are derived by reading djghosh13/geneval @ af4902f,
evaluation/evaluate_images.py `evaluate_image`: per class,
`ordering = np.argsort(bbox[:, 4])[::-1]`, then `bbox[ordering, 4] > threshold` on
mmdet's float32 array, then `[:max_objects]`, then greedy NMS with `compute_iou`
(+1-pixel areas) when `max_overlap != 1`.
"""

import numpy as np

from milr_rewards_geneval.rules import Detection, Options, confident, iou_plus_one, judge

RED_DOG = {"tag": "colors", "prompt": "a photo of a red dog", "include": [{"class": "dog", "count": 1, "color": "red"}]}
A_DOG = {"tag": "single_object", "prompt": "a photo of a dog", "include": [{"class": "dog", "count": 1}]}
TWO_DOGS = {
    "tag": "counting",
    "prompt": "a photo of two dogs",
    "include": [{"class": "dog", "count": 2}],
    "exclude": [{"class": "dog", "count": 3}],
}


def dog(x0, score, color=None, width=10):
    return Detection("dog", (x0, 0, x0 + width, 10), score, color)


def test_tied_scores_come_out_in_reverse_detector_order():
    # argsort([0.8, 0.8]) = [0, 1]; reversed: [1, 0] -> the second (blue) dog is the top-1 that gets judged
    first, second = dog(0, 0.8, "red"), dog(50, 0.8, "blue")
    assert confident([first, second], "colors")["dog"] == [second, first]
    verdict = judge(RED_DOG, [first, second])
    assert (verdict.correct, verdict.reason) == (False, "expected red dog>=1, found 0 red; and 1 blue")
    assert judge(RED_DOG, [second, first]).correct  # the red dog detected second is upstream's top-1


def test_ties_among_more_boxes_and_distinct_scores():
    dets = [dog(0, 0.5), dog(20, 0.9), dog(40, 0.5), dog(60, 0.7), dog(80, 0.5)]
    # scores [.5 .9 .5 .7 .5]: stable argsort [0 2 4 3 1]; reversed [1 3 4 2 0]
    assert [d.box[0] for d in confident(dets, None)["dog"]] == [20, 60, 80, 40, 0]


def test_a_score_of_exactly_float32_threshold_is_dropped():
    at = float(np.float32(0.3))  # 0.30000001192..., what mmdet's float32 array holds
    assert at > 0.3  # in float64 it would pass ...
    verdict = judge(A_DOG, [dog(0, at)])  # ... but float32(0.3) > float32(0.3) is False upstream
    assert (verdict.correct, verdict.reason) == (False, "expected dog>=1, found 0")
    assert judge(A_DOG, [dog(0, float(np.nextafter(np.float32(0.3), np.float32(1))))]).correct
    nine = float(np.float32(0.9))
    assert judge(TWO_DOGS, [dog(0, 0.95), dog(50, nine)]).reason == "expected dog>=2, found 1"


def test_upstream_iou_counts_the_last_pixel():
    # areas (9-0+1)*(9-0+1) = 100 each; intersection (9-1+1)*(9-0+1) = 90; 90 / 110
    assert iou_plus_one((0, 0, 9, 9), (1, 0, 10, 9)) == 90 / 110
    # touching boxes share a one-pixel column: 2 / (4 + 4 - 2); plain IoU would say 0
    assert iou_plus_one((0, 0, 1, 1), (1, 0, 2, 1)) == 2 / 6


def test_max_overlap_turns_on_upstream_nms():
    overlapping = [dog(0, 0.95, width=9), dog(1, 0.94, width=9)]  # +1-pixel IoU 90/110 = 0.82
    assert judge(TWO_DOGS, overlapping).correct  # default max_overlap 1.0: no NMS, two dogs
    nms = Options(max_overlap=0.5)
    verdict = judge(TWO_DOGS, overlapping, nms)
    assert (verdict.correct, verdict.reason) == (False, "expected dog>=2, found 1")
    touching = [dog(0, 0.95, width=1), dog(1, 0.94, width=1)]  # IoU 1/3 only with the +1 convention
    assert len(confident(touching, "counting", Options(max_overlap=0.3))["dog"]) == 1
    assert len(confident(touching, "counting", Options(max_overlap=0.34))["dog"]) == 2
    assert nms.recorded() == {"max_overlap": 0.5} and Options().recorded() == {}


def test_other_options_as_upstream():
    many = [dog(20 * i, 0.5) for i in range(20)]
    assert len(confident(many, None)["dog"]) == 16  # max_objects default
    assert len(confident(many, None, Options(max_objects=3))["dog"]) == 3
    assert "dog" not in confident(many, None, Options(threshold=0.5))  # strictly greater
