"""The `mixed` critic: its combination formula on stubbed detections and answers, GroundingDINO's
label assignment, and the whole critic on tiny random GroundingDINO + BLIP models."""

import numpy as np
import pytest
from PIL import Image

from milr_core.errors import MissingWeights
from milr_core.interfaces import PromptRecord
from milr_rewards_geneval import random_models
from milr_rewards_geneval.grounding import Grounder, caption
from milr_rewards_geneval.mixed import MixedCritic
from milr_rewards_geneval.rules import Detection
from milr_rewards_geneval.vqa import BlipYesNo

pytest.importorskip("transformers")
pytest.importorskip("torchvision")


class StubGrounder:
    def __init__(self, found):
        self.found, self.asked = found, []

    def detect(self, images, labels):
        self.asked.append(labels)
        return [[Detection(d.label, d.box, d.score) for d in dets] for dets in self.found]


class StubVqa:
    """P(yes) from a table keyed by question; records what it was shown."""

    def __init__(self, answers):
        self.answers, self.seen = answers, []

    def p_yes(self, images, questions):
        self.seen += [(im.size, q) for im, qs in zip(images, questions) for q in qs]
        return [[self.answers[q] for q in qs] for qs in questions]


IMAGE = Image.new("RGB", (100, 80), "white")
COLOR_ATTR = PromptRecord(
    "a photo of a red car and a blue dog",
    "color_attr",
    [{"class": "car", "count": 1, "color": "red"}, {"class": "dog", "count": 1, "color": "blue"}],
)


def test_colour_atoms_are_soft_and_others_follow_the_rules():
    found = [[Detection("car", (0, 0, 40, 30), 0.8), Detection("dog", (50, 10, 90, 70), 0.6)]]
    vqa = StubVqa({"is the car red?": 0.9, "is the dog blue?": 0.2})
    score = MixedCritic(StubGrounder(found), vqa).score([IMAGE], COLOR_ATTR)[0]
    # atoms: count car 1, colour red car 0.9, count dog 1, colour blue dog 0.2
    assert score.value == pytest.approx((1 + 0.9 + 1 + 0.2) / 4)
    assert score.detail.startswith("incorrect: expected blue dog>=1, found 0 blue; and 1 not blue")
    assert sorted(vqa.seen) == [((40, 30), "is the car red?"), ((40, 60), "is the dog blue?")]  # crops of the boxes


def test_no_object_found_scores_zero_and_asks_nothing():
    vqa = StubVqa({})
    grounder = StubGrounder([[Detection("cat", (0, 0, 10, 10), 0.9)]])
    score = MixedCritic(grounder, vqa).score([IMAGE], COLOR_ATTR)[0]
    assert score.value == 0.0 and vqa.seen == []
    assert grounder.asked == [["car", "dog"]]


def test_counting_needs_the_exact_count_and_ignores_the_mask2former_threshold():
    record = PromptRecord(
        "a photo of two dogs", "counting", [{"class": "dog", "count": 2}], [{"class": "dog", "count": 3}]
    )
    two = [Detection("dog", (0, 0, 10, 10), 0.5), Detection("dog", (20, 0, 30, 10), 0.45)]
    three = two + [Detection("dog", (40, 0, 50, 10), 0.4)]
    critic = MixedCritic(StubGrounder([two, three]), StubVqa({}))
    assert [s.value for s in critic.score([IMAGE, IMAGE], record)] == [1.0, 0.5]


def test_position_atom_uses_geneval_relations():
    record = PromptRecord(
        "a photo of a dog right of a car",
        "position",
        [{"class": "car", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}],
    )
    right = [Detection("car", (0, 20, 30, 50), 0.9), Detection("dog", (60, 20, 90, 50), 0.9)]
    left = [Detection("car", (60, 20, 90, 50), 0.9), Detection("dog", (0, 20, 30, 50), 0.9)]
    critic = MixedCritic(StubGrounder([right, left]), StubVqa({}))
    assert [s.value for s in critic.score([IMAGE, IMAGE], record)] == [1.0, pytest.approx(2 / 3)]


def test_free_prompts_score_presence_attributes_and_relation():
    record = PromptRecord("a red book on the left of a vase")
    found = [
        [Detection("red book", (0, 10, 30, 40), 0.7), Detection("vase", (60, 10, 90, 40), 0.5)],
        [Detection("vase", (60, 10, 90, 40), 0.5)],
    ]
    vqa = StubVqa({"red book?": 0.6})
    grounder = StubGrounder(found)
    scores = MixedCritic(grounder, vqa).score([IMAGE, IMAGE], record)
    assert grounder.asked[0][:2] == ["red book", "vase"]
    # both present, attribute 0.6, the book left of the vase: position 1
    assert scores[0].value == pytest.approx((1 + 1 + 0.6 + 1) / 4)
    assert "red book on the left of vase 1.00" in scores[0].detail
    assert scores[1].value == pytest.approx((0 + 1 + 0.6 + 0) / 4)


def test_caption_joins_labels_and_knows_their_spans():
    text, spans = caption(["dog", "traffic light"])
    assert text == "dog. traffic light." and [text[a:b] for a, b in spans] == ["dog", "traffic light"]


@pytest.fixture(scope="module")
def tiny_models():
    return random_models.grounding_dino(small=True), random_models.blip_vqa(small=True)


def noise(n):
    rng = np.random.default_rng(2)
    return [Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 64, 3), dtype=np.uint8)) for i in range(n)]


def test_tiny_grounder_finds_labelled_boxes_inside_the_image(tiny_models):
    (model, processor), _ = tiny_models
    grounder = Grounder(model, processor, batch_size=2)
    images = noise(3)
    found = grounder.detect(images, ["Dog", "traffic light", "dog"])
    assert len(found) == 3
    for image, dets in zip(images, found):
        assert {d.label for d in dets} <= {"dog", "traffic light"}
        assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
        assert all(d.score > 0.35 for d in dets)
    alone = grounder.detect(images[2:], ["dog", "traffic light"])[0]
    assert [(d.label, round(d.score, 5)) for d in alone] == [(d.label, round(d.score, 5)) for d in found[2]]


def test_tiny_mixed_critic_scores_a_batch(tiny_models):
    (gd, gd_processor), (blip, blip_processor) = tiny_models
    critic = MixedCritic(Grounder(gd, gd_processor, batch_size=2), BlipYesNo(blip, blip_processor))
    images = noise(3)
    for record in (COLOR_ATTR, PromptRecord("a red book on the left of a vase")):
        scores = critic.score(images, record)
        assert len(scores) == 3
        assert all(0.0 <= s.value <= 1.0 and s.detail for s in scores)
        assert [s.value for s in critic.score(images, record)] == [s.value for s in scores]


def test_missing_weights_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.delenv("MILR_GROUNDING_DINO", raising=False)
    with pytest.raises(MissingWeights, match="hf download IDEA-Research/grounding-dino-base --local-dir DIR"):
        MixedCritic.load(detector=str(tmp_path), device="cpu")
