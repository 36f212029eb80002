"""T2I-CompBench scores where milr once disagreed with upstream (issue 15), pinned to upstream's outputs.

Expected values are derived by reading Karine-Huang/T2I-CompBench @ 1b70949:
UniDet_eval/3D_spatial_eval.py `determine_position` (depth_map[int(x_min):int(x_max),
int(y_min):int(y_max)], then `iou > 0.5` -> 1 if nearer; `0 < iou < 0.5` -> iou / 0.5 if
nearer; anything else 0), UniDet_eval/numeracy_eval.py `calculate_iou` (+1-pixel
areas; merged when IoU > 0.9 or the intersection covers > 0.9 of either box) and
BLIPvqa_eval/BLIP_vqa.py (each answer a 4-decimal string, put in a float32 tensor,
multiplied slot by slot, the product written as '{:.4f}').
"""

import math

import numpy as np
import pytest
from PIL import Image

from milr_core.errors import MilrError
from milr_core.interfaces import PromptRecord
from milr_rewards_geneval import t2i
from milr_rewards_geneval.rules import Detection


class Stub:
    def __init__(self, found, maps):
        self.found, self.maps = found, maps

    def detect(self, images, labels):
        return self.found

    def nearness(self, images):
        return self.maps


def test_iou_of_exactly_half_scores_no_position():
    a = Detection("cat", (0, 0, 30, 10), 0.8)
    b = Detection("dog", (10, 0, 40, 10), 0.6)  # intersection 200, union 400: IoU 0.5 exactly
    assert t2i.iou(a.box, b.box) == 0.5
    assert t2i.depth_score("in front of", a, b, 0.9, 0.1) == 0.0  # neither `> 0.5` nor `< 0.5`
    assert t2i.depth_score("behind", a, b, 0.1, 0.9) == 0.0
    c = Detection("dog", (9, 0, 39, 10), 0.6)  # IoU 210/390, just above
    assert t2i.depth_score("in front of", a, c, 0.9, 0.1) == 1.0


def test_the_depth_map_is_read_as_upstream_indexes_it():
    near = np.zeros((100, 100))
    near[:50, :] = 1.0  # the top half of the picture is near
    cat = Detection("cat", (0, 60, 40, 100), 0.8)  # bottom-left: far in the picture
    dog = Detection("dog", (10, 0, 50, 40), 0.6)  # top: near in the picture; IoU 0 with the cat
    # upstream reads rows x0:x1 and columns y0:y1: cat -> rows 0:40 (near), dog -> rows 10:50 (near)
    assert t2i.mean_inside(near, cat.box) == 1.0 and t2i.mean_inside(near, dog.box) == 1.0
    assert t2i.mean_inside(near, cat.box, "row-column") == 0.0 and t2i.mean_inside(near, dog.box, "row-column") == 1.0
    wide = Detection("cat", (0, 0, 100, 10), 0.8)  # rows 0:100, columns 0:10
    assert t2i.mean_inside(near, wide.box) == 0.5 and t2i.mean_inside(near, wide.box, "row-column") == 1.0
    assert math.isnan(t2i.mean_inside(near, (5.2, 5.0, 5.9, 9.0)))  # int(5.2):int(5.9) is empty upstream


def test_3d_score_uses_upstreams_reading_by_default():
    near = np.zeros((100, 100))
    near[:, :50] = 1.0  # the left half is near
    cat, dog = Detection("cat", (0, 0, 50, 50), 0.8), Detection("dog", (25, 0, 75, 50), 0.6)
    overlap = t2i.iou(cat.box, dog.box)  # 1250 / 3750 = 1/3
    record, image = PromptRecord("a cat in front of a dog"), Image.new("RGB", (100, 100))
    # upstream: cat -> rows 0:50, columns 0:50 -> near 1.0; dog -> rows 25:75, columns 0:50 -> 1.0: a tie, 0
    upstream = t2i.T2I3DSpatial(Stub([[cat, dog]], None), Stub(None, [near])).score([image], record)[0]
    assert upstream.value == pytest.approx(0.25 * 0.8 + 0.25 * 0.6) and "(depth read" not in upstream.detail
    # row-column: cat columns 0:50 -> 1.0, dog columns 25:75 -> 0.5: the cat is nearer, IoU 1/3
    milr = t2i.T2I3DSpatial(Stub([[cat, dog]], None), Stub(None, [near]), "row-column").score([image], record)[0]
    assert milr.value == pytest.approx(0.25 * 0.8 + 0.25 * 0.6 + 0.5 * overlap / 0.5)
    with pytest.raises(MilrError, match="depth_indexing 'xy': expected one of upstream, row-column"):
        t2i.T2I3DSpatial(None, None, "xy")


def test_numeracy_merges_with_upstreams_plus_one_pixel_overlap():
    a, b = (0, 0, 10, 10), (1, 0, 11, 10)
    # plain: intersection 9*10 of areas 100: cover 0.9, not > 0.9 -> two objects
    # upstream: intersection (10-1+1)*(10-0+1) = 110 of areas 11*11 = 121: cover 0.909 -> one object
    assert t2i.one_object(a, b)
    c, d = (0, 0, 19, 9), (2, 0, 21, 9)  # upstream: intersection 18*10 of areas 200: cover 0.9 -> two
    assert not t2i.one_object(c, d)
    e, f = (0, 0, 19, 0), (1, 0, 20, 0)  # zero height: plain IoU 0; upstream 19*1 of 20*1 -> 0.95, one object
    assert t2i.one_object(e, f) and t2i.iou(e, f) == 0.0
    dogs = [Detection("dog", a), Detection("dog", b), Detection("dog", (50, 0, 60, 10))]
    assert t2i.count_objects(dogs, "dog") == 2


def test_blip_vqa_rounds_as_upstream():
    assert t2i.blip_product([0.12344, 0.5]) == 0.0617  # 0.1234 * 0.5; full precision would be 0.06172
    assert t2i.blip_product([0.33333, 0.33333]) == 0.1111  # 0.3333 ** 2 = 0.11108889
    assert t2i.blip_product([0.99996, 1.0]) == 1.0  # "1.0000"
    assert t2i.blip_product([]) == 1.0
