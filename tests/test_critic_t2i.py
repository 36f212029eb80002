"""T2I-CompBench critics: the noun-phrase chunker, BLIP's question handling and P(yes), the 2D spatial
formula on hand-made boxes, and `t2i-blip-vqa` / `t2i-spatial` on tiny random models."""

import math

import numpy as np
import pytest
from PIL import Image

from milr_core.errors import MilrError, MissingWeights
from milr_core.interfaces import PromptRecord, Score
from milr_rewards_geneval import phrases, random_models, t2i
from milr_rewards_geneval.rules import Detection
from milr_rewards_geneval.vqa import BlipYesNo, pre_question

pytest.importorskip("transformers")


@pytest.mark.parametrize("prompt, expected", [
    ("a red book and a yellow vase", ["a red book", "a yellow vase"]),
    ("fluffy clouds and a glass table", ["fluffy clouds", "a glass table"]),
    ("a metallic fork and leather gloves", ["a metallic fork", "leather gloves"]),
    ("a bathroom with green tile and a red shower curtain", ["a bathroom", "green tile", "a red shower curtain"]),
    ("The black chair was on the left of the white table.", ["the black chair", "the left", "the white table"]),
    ("A man is holding a book and reading on a park bench.", ["a man", "a book", "reading", "a park bench"]),
    ("two cats", ["two cats"]),
])  # fmt: skip
def test_noun_phrases(prompt, expected):
    assert phrases.noun_phrases(prompt) == expected


def test_questions_skip_upstreams_chunks_and_stop_at_eight():
    assert phrases.questions("a bag on the left of a chair") == ["a bag?", "a chair?"]
    assert phrases.questions("a frog on the top of a bowl") == ["a frog?", "the top?", "a bowl?"]  # as upstream
    many = " and ".join(f"a {c} {n}" for c, n in zip(["red"] * 10, "abcdefghij"))
    assert len(phrases.questions(many)) == 8


@pytest.mark.parametrize("prompt, expected", [
    ("a bag on the left of a chair", ("bag", "on the left of", "chair")),
    ("a teddy bear next to a traffic light", ("teddy bear", "next to", "traffic light")),
    ("The green plant was on top of the wooden shelf.", ("green plant", "on top of", "wooden shelf")),
    ("a dog near a cat on side of a car", ("cat", "on side of", "car")),  # upstream's list order decides
    ("a dog above a cat", None),
])  # fmt: skip
def test_spatial_parse(prompt, expected):
    assert phrases.spatial(prompt) == expected


def test_pre_question_cleans_like_blip():
    assert pre_question('A (Red) "Book"; on: the #table!? ') == "a red book on the table?"
    assert len(pre_question("word " * 80).split()) == 50


BOX = (100, 100, 200, 200)


@pytest.mark.parametrize("relation, other, expected", [
    ("on the left of", (300, 100, 400, 200), 1.0),
    ("on the left of", (150, 100, 250, 200), 0.1 / (50 * 100 / (2 * 100 * 100 - 50 * 100))),  # IoU 1/3
    ("on the left of", (0, 100, 50, 200), 0.0),
    ("on the right of", (0, 100, 50, 200), 1.0),
    ("on the top of", (100, 300, 200, 400), 1.0),
    ("on the bottom of", (100, 0, 200, 50), 1.0),
    ("on the bottom of", (300, 0, 400, 50), 0.0),  # mostly sideways
    ("next to", (220, 400, 320, 500), 1.0),  # |dx| 120 < 150
    ("near", (400, 500, 500, 600), 150 / 400),
    ("on top of", (100, 300, 200, 400), 0.0),  # no branch upstream
    (None, (300, 100, 400, 200), 0.0),
])  # fmt: skip
def test_position_score(relation, other, expected):
    assert t2i.position_score(relation, BOX, other) == pytest.approx(expected)


def test_spatial_score_combines_and_cuts_below_half():
    a, b = Detection("bag", (10, 10, 50, 50), 0.8), Detection("chair", (200, 10, 240, 50), 0.6)
    assert t2i.spatial_score("on the left of", a, b, 1.0) == pytest.approx(0.25 * 0.8 + 0.25 * 0.6 + 0.5)
    assert t2i.spatial_score("on the right of", a, b, 1.0) == 0.0  # 0.35 < 0.5
    assert t2i.spatial_score("on the left of", a, None, 1.0) == 0.0
    # 150 px apart in UniDet's 479 px space, not in the 384 px image
    near_a, near_b = Detection("a", (0, 0, 10, 10), 1.0), Detection("b", (0, 130, 10, 140), 1.0)
    far = Detection("b", (130, 130, 140, 140), 1.0)
    scale = t2i.unidet_scale(384, 384)
    assert scale == pytest.approx(479 / 384)
    assert t2i.spatial_score("near", near_a, near_b, scale) == 1.0
    assert t2i.spatial_score("near", near_a, far, scale) == pytest.approx(0.5 + 0.5 * 150 / (130 * scale))


class StubGrounder:
    def __init__(self, found):
        self.found = found

    def detect(self, images, labels):
        return self.found


def test_t2i_spatial_on_stubbed_detections():
    record = PromptRecord("a bag on the left of a chair")
    found = [[Detection("chair", (300, 0, 380, 80), 0.9), Detection("bag", (0, 0, 80, 80), 0.7),
              Detection("bag", (320, 0, 380, 80), 0.5)],  # the most confident bag counts
             [Detection("chair", (0, 0, 80, 80), 0.9)]]  # fmt: skip
    image = Image.new("RGB", (384, 384))
    scores = t2i.T2ISpatial(StubGrounder(found)).score([image, image], record)
    assert scores[0].value == pytest.approx(0.25 * 0.7 + 0.25 * 0.9 + 0.5)
    assert scores[1].value == 0.0 and "found chair 0.90" in scores[1].detail
    assert t2i.T2ISpatial(StubGrounder([[]])).score([image], PromptRecord("a dog and a cat"))[0].value == 0.0


@pytest.fixture(scope="module")
def tiny_blip():
    return BlipYesNo(*random_models.blip_vqa(small=True), batch_size=2)


def noise(n):
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 56, 3), dtype=np.uint8)) for i in range(n)]


def test_blip_yes_no_uses_bert_ids_and_is_batch_invariant(tiny_blip):
    assert (tiny_blip.yes, tiny_blip.no, tiny_blip.bos, tiny_blip.enc) == (2748, 2053, 30522, 30523)
    images = noise(2)
    together = tiny_blip.p_yes(images, [["a red dog?", "is the dog red?"], ["a car?", "x?", "the top?"]])
    alone = [tiny_blip.p_yes([images[1]], [[q]])[0][0] for q in ("a car?", "x?", "the top?")]
    assert together[1] == pytest.approx(alone, abs=1e-6)
    assert all(0 < p < 1 for row in together for p in row)


def test_t2i_blip_vqa_is_the_product_of_phrase_answers(tiny_blip):
    critic = t2i.T2IBlipVqa(tiny_blip)
    images = noise(3)
    record = PromptRecord("a red book and a yellow vase")
    scores = critic.score(images, record)
    answers = tiny_blip.p_yes(images, [["a red book?", "a yellow vase?"]] * 3)
    assert [s.value for s in scores] == pytest.approx([math.prod(a) for a in answers], abs=1e-4)  # 4 decimals
    assert all(0 <= s.value <= 1 and "a yellow vase?" in s.detail for s in scores)
    assert critic.score(images[:1], PromptRecord("on and with"))[0].value == 1.0


def test_tiny_t2i_spatial_runs_on_grounding_dino():
    from milr_rewards_geneval.grounding import Grounder

    critic = t2i.T2ISpatial(Grounder(*random_models.grounding_dino(small=True), batch_size=2))
    scores = critic.score(noise(3), PromptRecord("a bag on the left of a chair"))
    assert len(scores) == 3 and all(s.value == 0.0 or 0.5 <= s.value <= 1.0 for s in scores)
    assert all("bag on the left of chair" in s.detail for s in scores)


def test_missing_vqa_weights_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.delenv(t2i.T2I_VQA_ENV, raising=False)
    (tmp_path / "config.json").write_text("{}")  # a folder with a config but no weights
    with pytest.raises(MissingWeights, match="hf download Salesforce/blip-vqa-capfilt-large --local-dir DIR") as err:
        t2i.T2IBlipVqa.load(vqa_model=str(tmp_path), device="cpu")
    assert "MILR_T2I_VQA=DIR" in str(err.value)


class Fixed:
    def __init__(self, value):
        self.value, self.calls = value, 0

    def score(self, images, record):
        self.calls += 1
        return [Score(self.value, "fixed") for _ in images]


def test_t2i_compbench_picks_the_scorer_of_each_category():
    made = []
    scorers = {"blip-vqa": Fixed(0.9), "spatial": Fixed(0.6), "clip": Fixed(0.3)}
    critic = t2i.T2ICompBench({k: (lambda k=k: made.append(k) or scorers[k]) for k in scorers})
    image = Image.new("RGB", (8, 8))
    assert critic.score([image], PromptRecord("a red book and a blue cup", "color"))[0].value == 0.9
    assert made == ["blip-vqa"]  # the others are not loaded
    assert critic.score([image], PromptRecord("a bag on the left of a cup", "spatial"))[0].value == 0.6
    assert critic.score([image], PromptRecord("a man reading", "non_spatial"))[0].value == 0.3
    complex_score = critic.score([image, image], PromptRecord("the red book was on the left of the cup", "complex"))
    assert [s.value for s in complex_score] == pytest.approx([0.6, 0.6]) and "spatial: 0.6000" in complex_score[
        0
    ].detail
    assert sorted(made) == ["blip-vqa", "clip", "spatial"] and scorers["blip-vqa"].calls == 2
    with pytest.raises(MilrError, match="this prompt's tag is 'action'"):
        critic.score([image], PromptRecord("a cat chasing a dog", "action"))


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("three dogs and a cat", [("dog", 3), ("cat", 1)]),
        ("two boxes, four berries and one glass", [("box", 2), ("berry", 4), ("glass", 1)]),
        ("an apple on the left of two red cars", [("apple", 1), ("car", 2)]),
        ("the cat and some dogs", []),
    ],
)
def test_counted_objects(prompt, expected):
    assert t2i.counted_objects(prompt) == expected


def test_counts_merge_boxes_that_are_one_object():
    boxes = [Detection("dog", (0, 0, 100, 100)), Detection("dog", (2, 2, 100, 100)),  # IoU 0.96: one dog
             Detection("dog", (10, 10, 50, 50)),  # inside the first: covered by more than 0.9, one dog
             Detection("dog", (200, 0, 300, 100)), Detection("cat", (0, 0, 100, 100))]  # fmt: skip
    assert t2i.count_objects(boxes, "dog") == 2 and t2i.count_objects(boxes, "cat") == 1
    assert t2i.count_objects(boxes, "bird") == 0


def test_t2i_numeracy_weighs_presence_and_exact_count():
    record = PromptRecord("three dogs and a cat")
    two_dogs = [Detection("dog", (0, 0, 50, 50)), Detection("dog", (100, 0, 150, 50)), Detection("cat", (200, 0, 250, 50))]
    three_dogs = two_dogs + [Detection("dog", (300, 0, 350, 50))]
    image = Image.new("RGB", (384, 384))
    scores = t2i.T2INumeracy(StubGrounder([three_dogs, two_dogs, []])).score([image] * 3, record)
    assert [s.value for s in scores] == [1.0, 0.75, 0.0]  # 1/2 each: dog (found, count) + cat (found, count)
    assert scores[1].detail == "dog 2/3, cat 1/1"
    assert t2i.T2INumeracy(StubGrounder([[]])).score([image], PromptRecord("the dogs"))[0].value == 0.0


def test_tiny_t2i_numeracy_runs_on_grounding_dino():
    from milr_rewards_geneval.grounding import Grounder

    critic = t2i.T2INumeracy(Grounder(*random_models.grounding_dino(small=True), batch_size=2))
    scores = critic.score(noise(3), PromptRecord("two bags and a chair"))
    assert len(scores) == 3 and all(0.0 <= s.value <= 1.0 and "bag" in s.detail for s in scores)


class StubDepth:
    def __init__(self, maps):
        self.maps = maps

    def nearness(self, images):
        return self.maps


def test_depth_score_orders_by_nearness_and_weighs_overlap():
    a, b = Detection("cat", (0, 0, 100, 100), 0.8), Detection("dog", (0, 0, 100, 100), 0.6)
    half = Detection("dog", (50, 0, 150, 100), 0.6)  # IoU 1/3 with a
    apart = Detection("dog", (200, 0, 300, 100), 0.6)
    assert t2i.depth_score("in front of", a, b, 0.9, 0.2) == 1.0
    assert t2i.depth_score("in front of", a, half, 0.9, 0.2) == pytest.approx((1 / 3) / 0.5)
    assert t2i.depth_score("in front of", a, apart, 0.9, 0.2) == 0.0  # upstream: no overlap, no score
    assert t2i.depth_score("in front of", a, b, 0.2, 0.9) == 0.0
    assert t2i.depth_score("behind", a, b, 0.2, 0.9) == 1.0 and t2i.depth_score("hidden", a, b, 0.2, 0.9) == 1.0


def test_t2i_3d_spatial_on_stubbed_boxes_and_depth():
    record = PromptRecord("a cat in front of a dog")
    near = np.zeros((100, 200))
    near[:, :100] = 1.0  # the left half is near
    cat, dog = Detection("cat", (0, 0, 100, 100), 0.8), Detection("dog", (40, 0, 140, 100), 0.6)  # IoU 0.43
    found = [[cat, dog], [Detection("cat", (100, 0, 200, 100), 0.8), Detection("dog", (0, 0, 100, 100), 0.6)], [dog]]
    image = Image.new("RGB", (200, 100))
    # milr's [row, column] reading (upstream's transposed one: tests/test_t2i_upstream.py)
    critic = t2i.T2I3DSpatial(StubGrounder(found), StubDepth([near] * 3), depth_indexing="row-column")
    scores = critic.score([image] * 3, record)
    overlap = t2i.iou(cat.box, dog.box)
    assert scores[0].value == pytest.approx(0.25 * 0.8 + 0.25 * 0.6 + 0.5 * overlap / 0.5)
    assert scores[1].value == pytest.approx(0.25 * 0.8 + 0.25 * 0.6)  # the cat is behind: no position score
    assert scores[2].value == pytest.approx(0.25 * 0.6) and "found dog" in scores[2].detail
    assert "in front of dog" in scores[0].detail and scores[0].detail.endswith("(depth read row-column)")
    assert phrases.spatial("a cat hidden by a dog", phrases.SPATIAL_3D) == ("cat", "hidden", "dog")


def test_tiny_t2i_3d_spatial_runs_on_dpt_and_grounding_dino():
    from milr_rewards_geneval.depth import DepthEstimator
    from milr_rewards_geneval.grounding import Grounder

    estimator = DepthEstimator(*random_models.dpt(small=True), side=64, batch_size=2)
    maps = estimator.nearness(noise(3))
    assert [m.shape for m in maps] == [(40, 56), (48, 56), (56, 56)]
    assert all(m.min() == 0.0 and m.max() == pytest.approx(1.0) for m in maps)
    critic = t2i.T2I3DSpatial(Grounder(*random_models.grounding_dino(small=True), batch_size=2), estimator)
    scores = critic.score(noise(3), PromptRecord("a bag in front of a chair"))
    assert len(scores) == 3 and all(0.0 <= s.value <= 1.0 and "bag in front of chair" in s.detail for s in scores)
