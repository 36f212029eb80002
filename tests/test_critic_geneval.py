"""The `geneval` critic: Mask2Former post-processing, GenEval's colour crop and classifier, the rules
on stubbed detections with known verdicts, the whole critic on tiny random models, and weight errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from milr_core.errors import MilrError, MissingWeights
from milr_core.interfaces import PromptRecord
from milr_rewards_geneval import geneval_oracle as go
from milr_rewards_geneval import random_models
from milr_rewards_geneval.rules import Detection

pytest.importorskip("open_clip")
pytest.importorskip("transformers")


RGB = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "white": (250, 250, 250)}


def test_detector_labels_map_to_geneval_names():
    coco = dict(enumerate(go.CLASSES))
    coco.update({64: "mouse", 65: "remote", 66: "keyboard", 3: "motorbike"})  # COCO/detectron2 spellings
    coco[200] = "sky-other-merged"  # a panoptic stuff class: ignored
    mapping = go.geneval_labels(coco)
    assert mapping[64] == "computer mouse" and mapping[65] == "tv remote" and mapping[66] == "computer keyboard"
    assert mapping[3] == "motorcycle" and 200 not in mapping
    with pytest.raises(MilrError, match="toothbrush"):
        go.geneval_labels({i: n for i, n in enumerate(go.CLASSES[:-1])})


def test_instances_follow_mmdet_postprocessing():
    # 2 queries, 3 classes + no-object; query 0 is class 2, query 1 class 0 (less sure)
    class_logits = torch.tensor([[0.0, 0.0, 9.0, 0.0], [5.0, 0.0, 0.0, 4.0]])
    masks = torch.full((2, 4, 4), -8.0)
    masks[0, 1:3, 0:2] = 8.0  # left-middle block
    masks[1, 0, 3] = 8.0  # one corner cell
    labels, scores, binary, boxes = go.instances(
        class_logits, masks, padded=(16, 16), valid=(16, 16), size=(8, 8), top_k=3
    )
    assert labels.tolist()[:2] == [2, 0]
    p = class_logits.softmax(-1)
    assert scores[0] == pytest.approx(float(p[0, 2]) * float(torch.sigmoid(masks[0]).max()), rel=0.05)
    # block rows 1-2, cols 0-1 of a 4x4 map -> rows 2-5, cols 0-3 of the 8x8 original (bilinear, logit > 0)
    assert boxes[0].tolist() == [0.0, 2.0, 4.0, 6.0]
    assert binary[0].sum() == 16
    assert boxes[1][0] >= 6 and boxes[1][1] == 0  # the corner cell is top right


def test_instances_crop_the_padding_before_resizing():
    class_logits = torch.tensor([[9.0, 0.0]])
    masks = torch.full((1, 4, 8), -8.0)
    masks[0, :, :4] = 8.0  # the image fills the left half of a padded 16x32 input
    _, _, binary, boxes = go.instances(class_logits, masks, padded=(16, 32), valid=(16, 16), size=(10, 10))
    assert binary[0].all() and boxes[0].tolist() == [0.0, 0.0, 10.0, 10.0]


def test_mask_boxes_of_an_empty_mask_are_zero():
    masks = torch.zeros(2, 5, 5, dtype=torch.bool)
    masks[1, 4, 4] = True
    assert go.mask_boxes(masks).tolist() == [[0, 0, 0, 0], [4, 4, 5, 5]]


def test_color_crop_masks_background_grey_and_crops_to_box():
    pixels = np.zeros((10, 12, 3), dtype=np.uint8)
    pixels[:, :] = RGB["red"]
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:6, 3:8] = True
    mask[2, 3] = False  # a notch inside the box is background too
    crop = np.asarray(go.color_crop(Image.fromarray(pixels), Detection("dog", (3, 2, 8, 6), 0.9, mask=mask)))
    assert crop.shape == (4, 5, 3)
    assert tuple(crop[0, 0]) == (0x99, 0x99, 0x99)
    assert (crop.reshape(-1, 3)[1:] == RGB["red"]).all()
    original = np.asarray(
        go.color_crop(Image.fromarray(pixels), Detection("dog", (3, 2, 8, 6), 0.9, mask=mask), "original")
    )
    assert (original.reshape(-1, 3) == RGB["red"]).all()


class FakeClip:
    """Text embeds the colour word of a template; images embed their mean colour as colour scores,
    so the classifier's argmax is the crop's nearest colour if templates and weights are right."""

    names = list(go.COLORS)

    def encode_text(self, tokens):
        rows = []
        for text in tokens:
            hits = [k for k, c in enumerate(self.names) if f" {c} " in f" {text.replace('-colored', '')} "]
            rows.append(torch.nn.functional.one_hot(torch.tensor(hits[0]), len(self.names)).float() + 0.01)
        return torch.stack(rows)

    def encode_image(self, pixels):
        return pixels

    def preprocess(self, image):
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3)
        kept = pixels[np.abs(pixels - 0x99).sum(1) > 0]  # ignore the grey background
        mean = kept.mean(0)
        scores = torch.full((len(self.names),), -1.0)
        for name, ref in RGB.items():
            scores[self.names.index(name)] = -float(np.linalg.norm(mean - np.array(ref)))
        return scores


class Texts(list):
    def to(self, device):
        return self


def fake_classifier():
    fake = FakeClip()
    return go.ColorClassifier(fake, fake.preprocess, Texts)


def test_color_classifier_builds_one_column_per_colour_and_picks_the_nearest():
    clf = fake_classifier()
    weights = clf.weights("dog")
    assert weights.shape == (len(go.COLORS), len(go.COLORS))
    assert torch.allclose(weights.norm(dim=0), torch.ones(len(go.COLORS)))
    crops = [Image.new("RGB", (4, 4), RGB[c]) for c in ("blue", "red", "white")]
    assert clf.classify(crops, ["dog", "car", "dog"]) == ["blue", "red", "white"]
    assert set(clf._weights) == {"dog", "car"}  # one cached classifier per class


def scene(objects):
    """A grey 64x64 picture with coloured rectangles; returns (image, detections with masks)."""
    pixels = np.full((64, 64, 3), 0x40, dtype=np.uint8)
    dets = []
    for label, color, (x0, y0, x1, y1), score in objects:
        pixels[y0:y1, x0:x1] = RGB[color]
        mask = np.zeros((64, 64), dtype=bool)
        mask[y0:y1, x0:x1] = True
        dets.append(Detection(label, (x0, y0, x1, y1), score, mask=mask))
    return Image.fromarray(pixels), dets


class StubbedOracle(go.GenevalOracle):
    """The real colour and judging path on detections given by the test."""

    def __init__(self, found):
        self.found, self.colors, self.bgcolor, self.batch_size = found, fake_classifier(), go.BGCOLOR, 8
        self.options = go.UPSTREAM

    def detect(self, images):
        return [[Detection(d.label, d.box, d.score, mask=d.mask) for d in dets] for dets in self.found]


def test_color_attr_verdicts_on_stubbed_detections():
    record = PromptRecord(
        "a photo of a red car and a blue dog",
        "color_attr",
        [{"class": "car", "count": 1, "color": "red"}, {"class": "dog", "count": 1, "color": "blue"}],
    )
    good, good_dets = scene([("car", "red", (2, 2, 20, 20), 0.8), ("dog", "blue", (30, 30, 60, 60), 0.7)])
    swapped, swapped_dets = scene([("car", "blue", (2, 2, 20, 20), 0.8), ("dog", "red", (30, 30, 60, 60), 0.7)])
    oracle = StubbedOracle([good_dets, swapped_dets])
    scores = oracle.score([good, swapped], record)
    assert scores[0].value == 1.0 and scores[0].detail.startswith("correct") and "1 red car" in scores[0].detail
    assert scores[1].value == 0.5
    assert "expected red car>=1, found 0 red; and 1 blue" in scores[1].detail


def test_only_confident_objects_get_colours_and_low_scores_are_filtered():
    record = PromptRecord("a photo of a white dog", "colors", [{"class": "dog", "count": 1, "color": "white"}])
    # the most confident dog is green; a white one scores 0.25 (below GenEval's 0.3) and must not count
    image, dets = scene([("dog", "green", (2, 2, 30, 30), 0.95), ("dog", "white", (34, 34, 60, 60), 0.25)])
    oracle = StubbedOracle([dets])
    verdict = oracle.verdict(image, record)
    assert not verdict.correct and "found 0 white; and 1 green" in verdict.reason
    found = oracle.detect([image])[0]
    oracle.assign_colors([image], [found], record)
    assert [d.color for d in found] == ["green", None]


def test_counting_uses_the_counting_threshold_and_exclude():
    record = PromptRecord(
        "a photo of two dogs", "counting", [{"class": "dog", "count": 2}], [{"class": "dog", "count": 3}]
    )
    boxes = [(2, 2, 12, 12), (20, 2, 30, 12), (40, 2, 50, 12)]
    two, two_dets = scene(
        [("dog", "red", boxes[0], 0.95), ("dog", "red", boxes[1], 0.93), ("dog", "red", boxes[2], 0.85)]
    )
    three, three_dets = scene([("dog", "red", b, 0.95) for b in boxes])
    verdicts = [StubbedOracle([d]).verdict(im, record) for im, d in ((two, two_dets), (three, three_dets))]
    assert verdicts[0].correct  # the 0.85 dog is below the counting threshold 0.9
    assert not verdicts[1].correct and "expected dog<3, found 3" in verdicts[1].reason


def test_position_verdict_on_stubbed_detections():
    record = PromptRecord(
        "a photo of a dog right of a car",
        "position",
        [{"class": "car", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}],
    )
    right, right_dets = scene([("car", "red", (2, 20, 20, 40), 0.9), ("dog", "blue", (40, 20, 60, 40), 0.9)])
    left, left_dets = scene([("car", "red", (40, 20, 60, 40), 0.9), ("dog", "blue", (2, 20, 20, 40), 0.9)])
    oracle = StubbedOracle([right_dets, left_dets])
    assert [s.value for s in oracle.score([right, left], record)] == [1.0, 2 / 3]


@pytest.fixture(scope="module")
def tiny_oracle():
    model, processor = random_models.mask2former(small=True)
    with torch.no_grad():  # make every query a confident dog, so that the colour path runs
        model.class_predictor.bias[go.CLASSES.index("dog")] = 12.0
    clip = go.ColorClassifier(*random_models.open_clip(None))
    return go.GenevalOracle(model, processor, clip, batch_size=2)


def test_tiny_random_oracle_scores_a_batch(tiny_oracle):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 64, 3), dtype=np.uint8)) for i in range(3)]
    record = PromptRecord("a photo of a red dog", "colors", [{"class": "dog", "count": 1, "color": "red"}])
    scores = tiny_oracle.score(images, record)
    assert len(scores) == 3
    for score, image in zip(scores, images):
        assert score.value in (0.5, 1.0)  # the dog is found; its colour is random
        assert "dog" in score.detail
    found = tiny_oracle.detect(images[:1])[0]
    assert found and all(d.label == "dog" and d.mask.shape == (48, 64) for d in found)
    ordered = go.confident(found, "colors")["dog"]  # detect keeps top-k order; the rules sort, as upstream
    assert [d.score for d in ordered] == sorted((d.score for d in found if d.score > 0.3), reverse=True)[:16]
    assert all(0 <= d.box[0] < d.box[2] <= 64 and 0 <= d.box[1] < d.box[3] <= 48 for d in found)
    assert [s.value for s in tiny_oracle.score(images, record)] == [s.value for s in scores]  # deterministic
    missing = PromptRecord("a photo of a cat", "single_object", [{"class": "cat", "count": 1}])
    assert tiny_oracle.verdict(images[0], missing).reason == "expected cat>=1, found 0"


def test_missing_detector_folder_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.delenv(go.DETECTOR_ENV, raising=False)
    with pytest.raises(MissingWeights, match="hf download facebook/mask2former-swin-small-coco-instance") as err:
        go.GenevalOracle.load(detector=str(tmp_path), device="cpu")
    assert "MILR_GENEVAL_DETECTOR=DIR" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv(go.DETECTOR_ENV, str(tmp_path))
    with pytest.raises(MissingWeights, match="no config.json"):
        go.GenevalOracle.load(device="cpu")


def test_missing_clip_weights_say_what_to_download(tmp_path):
    from milr_rewards_geneval.weights import load_open_clip

    with pytest.raises(MissingWeights, match="timm/vit_large_patch14_clip_224.openai") as err:
        load_open_clip("ViT-L-14", "openai", weights=str(tmp_path))
    assert "MILR_CLIP_VIT_L_14_OPENAI=DIR" in str(err.value)
    with pytest.raises(MilrError, match="unknown open_clip architecture"):
        load_open_clip("ViT-Nope", "openai")


def test_plugin_registers_geneval():
    from milr_core.plugins import build_registry

    entry = build_registry().get("critic", "geneval")
    assert "Mask2Former" in entry.description
