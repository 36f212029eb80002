from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from milr_core.interfaces import PromptRecord

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def critic(tiny_janus_dir):
    from transformers import JanusForConditionalGeneration, JanusProcessor

    from milr_janus.self_critic import SelfCritic

    model = JanusForConditionalGeneration.from_pretrained(tiny_janus_dir)
    return SelfCritic(model, JanusProcessor.from_pretrained(tiny_janus_dir))


def noise(seed, size=32):
    return Image.fromarray((np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8))


RECORD = PromptRecord(prompt="a photo of a red cat")


def test_one_score_per_image_in_unit_interval(critic):
    scores = critic.score([noise(0), noise(1), noise(2)], RECORD)
    assert len(scores) == 3
    for score in scores:
        assert 0.0 <= score.value <= 1.0
        assert score.detail.startswith(f"P(yes)={score.value:.2f}")


def test_same_input_same_score(critic):
    images = [noise(3), noise(4)]
    assert [s.value for s in critic.score(images, RECORD)] == [s.value for s in critic.score(images, RECORD)]


def test_batch_equals_one_by_one(critic):
    images = [noise(5), noise(6, size=48), Image.new("L", (20, 40), 200)]  # other sizes and modes too
    batch = [s.value for s in critic.score(images, RECORD)]
    alone = [critic.score([image], RECORD)[0].value for image in images]
    assert batch == pytest.approx(alone, abs=1e-5)


def test_left_padding_does_not_change_the_answer(critic):
    images = [noise(7), noise(8)]
    questions = ["Is it red?", "Does this image show a large brown dog next to a small white cat on a bench?"]
    batch = [s.value for s in critic.judge(images, questions)]
    alone = [critic.judge([image], [question])[0].value for image, question in zip(images, questions)]
    assert batch == pytest.approx(alone, abs=1e-5)


def test_chunked_batches_agree(critic):
    from milr_janus.self_critic import SelfCritic

    images = [noise(9), noise(10), noise(11)]
    chunked = SelfCritic(critic.model, critic.processor, batch_size=2)
    assert [s.value for s in chunked.score(images, RECORD)] == pytest.approx(
        [s.value for s in critic.score(images, RECORD)], abs=1e-5
    )


def test_score_depends_on_the_image(critic):
    black, bright = Image.new("RGB", (32, 32)), noise(12)
    a, b = (s.value for s in critic.score([black, bright], RECORD))
    assert abs(a - b) > 1e-6


def test_score_depends_on_the_prompt(critic):
    image = [noise(13)]
    a = critic.score(image, RECORD)[0].value
    b = critic.score(image, PromptRecord(prompt="two green bicycles"))[0].value
    assert a != b


def test_answer_tokens_are_single_yes_and_no_tokens(critic):
    tokens = critic.processor.tokenizer.convert_ids_to_tokens(critic.yes_ids + critic.no_ids)
    assert {t.lstrip("Ġ").lower() for t in tokens} == {"yes", "no"}
    assert not set(critic.yes_ids) & set(critic.no_ids)


def test_from_backbone_and_empty_input(critic):
    from milr_janus.self_critic import SelfCritic

    made = SelfCritic.from_backbone(SimpleNamespace(model=critic.model, processor=critic.processor))
    assert made.name == "self"
    assert made.score([], RECORD) == []
    assert made.score([noise(14)], RECORD)[0].value == pytest.approx(critic.score([noise(14)], RECORD)[0].value)


def test_mismatched_questions_are_refused(critic):
    with pytest.raises(ValueError):
        critic.judge([noise(15)], [])
