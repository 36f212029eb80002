"""janus-scenes: the shipped weights load by name and draw 128 px images from 256 tokens; their
understanding branch answers yes or no, and (from the recipe with captions on) prefers a prompt's own
render to a swapped one; the question and caption rows are what the self critic sends; the scenes
recipe (question pairs, captions, scoring and the pick included) runs end to end at toy scale."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from milr_janus import plugin as janus_plugin
from milr_janus.backbone import JanusBackbone
from milr_janus.self_critic import SelfCritic
from milr_janus.shapes_data import make_examples
from milr_janus.shapes_eval import agreement, matched_vs_swapped
from milr_janus.shapes_lm import IGNORE
from milr_janus.train_shapes import main as train_main
from milr_janus.understanding import build_pairs, draw_pairs
from milr_rewards_geneval.scenes import IMAGE_SIZE, prompt_set, scene_for
from milr_rewards_geneval.shapes import render
from milr_rewards_geneval.worlds import SCENES
from PIL import Image

from milr_core.plugins import registry

WEIGHTS = Path(janus_plugin.__file__).parent / "weights" / "janus-scenes"
MiB = 2**20


@pytest.fixture(scope="module")
def scenes():
    return registry().backbone("janus-scenes", device="cpu")


def test_shipped_files_stay_within_the_repository_limits():
    sizes = {f.name: f.stat().st_size for f in WEIGHTS.iterdir()}
    assert any(name.endswith(".safetensors") for name in sizes)
    assert max(sizes.values()) <= 16 * MiB and sum(sizes.values()) <= 40 * MiB
    report = json.loads((WEIGHTS / "training.json").read_text())
    assert report["world"] == "scenes" and report["data"]["leaks"] == 0


def test_loads_by_name_and_draws_a_128_px_image_from_256_tokens(scenes):
    assert isinstance(scenes, JanusBackbone) and scenes.name == "janus-scenes"
    assert scenes.num_image_tokens == 256
    g = torch.Generator().manual_seed(0)
    drawing = scenes.draw("a photo of a red circle", ["A large red circle in the centre, on a white background."],
                          None, cfg_scale=5.0, temperature=1.0, keep_hidden=0, generator=g)
    (image,) = scenes.decode(drawing.tokens)
    assert image.size == (IMAGE_SIZE, IMAGE_SIZE)


def test_self_critic_learned_to_answer_yes_or_no(scenes):
    record = prompt_set(1, seed=123)[0]
    image = render(scene_for(record, np.random.default_rng(0)), IMAGE_SIZE)
    (score,) = SelfCritic.from_backbone(scenes).score([image], record)
    mass = float(score.detail.split("answer mass ")[1].rstrip(")"))
    assert mass >= 0.99, score.detail  # nearly all next-token mass on the two answers


def test_self_critic_prefers_matching_images_to_swapped_ones(scenes):
    # each prompt against its own correct render and against the render made for another prompt of
    # its tag that fails it: a critic blind to the image wins half of the pairs
    result = matched_vs_swapped(scenes, prompt_set(40, seed=123), SCENES)
    assert result["pairs"] >= 30
    assert result["win_rate"] >= 0.65, result  # >= 0.65 of >= 30 pairs: P < 0.05 for a critic at chance


def test_question_and_caption_rows_are_what_the_critic_sends(scenes):
    data = make_examples(10, SCENES, workers=1)
    prompts, images, match = draw_pairs(SCENES, data, 10, seed=0)
    assert (prompts[1::2] == images[1::2]).all() and match[1::2].all()  # odd pairs keep their own image
    assert (prompts[::2] == prompts[1::2]).all()  # ... and ask about the same prompt as the pair before
    processor = scenes.processor
    pairs = build_pairs(processor, [data.records[p].prompt for p in prompts], [data.reasoning[i] for i in images],
                        data.images[images], match)
    critic = SelfCritic.from_backbone(scenes)
    assert not match.all() and match.any()
    for k in (*np.flatnonzero(~match)[:1], 3):
        question = critic.question.format(prompt=data.records[prompts[k]].prompt)
        chat = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
            add_generation_prompt=True,
        )
        sent = processor(text=[chat], images=[Image.fromarray(data.images[images[k]])], return_tensors="pt")
        assert pairs.ids[k][pairs.mask[k].bool()].tolist() == sent["input_ids"][0].tolist()
        pixels = (pairs.images[k].permute(2, 0, 1).float() / 127.5 - 1)
        assert torch.allclose(pixels, sent["pixel_values"][0], atol=1e-5)
        # the caption row feeds "Describe this image." and then the scene's reasoning text, each label
        # being the next token fed, and EOS last
        fed, labels = pairs.caption_ids[k][pairs.caption_mask[k].bool()], pairs.caption_labels[k]
        labels = labels[-len(fed):]
        answer = labels != IGNORE
        assert (labels[:-1][answer[:-1]] == fed[1:][answer[:-1]]).all()
        assert labels[-1] == processor.tokenizer.eos_token_id
        assert processor.tokenizer.decode(labels[answer][:-1]).strip() == data.reasoning[images[k]]
        # a question's text after the image is predicted too where the image matches, never elsewhere
        ids, described = pairs.ids[k], pairs.labels[k]
        if match[k]:
            assert (described[:-1][described[:-1] != IGNORE] == ids[1:][described[:-1] != IGNORE]).all()
            text = processor.tokenizer.decode(described[described != IGNORE])
            assert text.endswith("Answer yes or no.\n\n<|Assistant|>:")
        else:
            assert (described == IGNORE).all()


def test_agreement_counts_both_kinds_of_error():
    result = agreement([0.9, 0.8, 0.7, 0.2], [1, 0, 1, 0])
    assert result["accuracy"] == 0.75 and result["yes_when_correct"] == 1.0 and result["no_when_incorrect"] == 0.5
    assert result["auc"] == 0.75
    assert agreement([0.9, 0.9], [1, 1])["auc"] is None


def test_scenes_recipe_runs_end_to_end_at_toy_scale(tmp_path):
    out = tmp_path / "toy"
    train_main(["--preset", "toy-scenes", "--out", str(out), "--work", str(tmp_path / "work"), "--device", "cpu",
                "--eval-prompts", "20", "--workers", "1", "--eval-workers", "1", "--lm-steps", "3",
                "--snapshots", "2"])
    report = json.loads((out / "training.json").read_text())
    assert report["world"] == "scenes" and report["pairs"]["pairs"] == 8
    assert {"answer_loss", "description_loss", "caption_loss", "answer_accuracy"} <= set(report["lm"])
    assert [s["step"] for s in report["snapshots"]] == [2, 3] and report["chosen_step"] in (2, 3)
    assert "self_agreement" in report["baseline"] and report["self_matched_vs_swapped"]["pairs"] > 0
    toy = JanusBackbone.from_pretrained(str(out), device="cpu")
    assert toy.model.model.vision_model.config.num_hidden_layers == 1
    (score,) = SelfCritic.from_backbone(toy).score([render(scene_for(prompt_set(1)[0], np.random.default_rng(0)), 32)],
                                                    prompt_set(1)[0])
    assert 0.0 <= score.value <= 1.0
