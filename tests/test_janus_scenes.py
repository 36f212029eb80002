"""janus-scenes: the shipped weights load by name and draw 128 px images from 256 tokens; their
understanding branch answers yes or no but does not yet look at the image (a strict xfail says so
until it does); the scenes recipe (question pairs included) runs end to end at toy scale."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from milr_janus import plugin as janus_plugin
from milr_janus.backbone import JanusBackbone
from milr_janus.self_critic import SelfCritic
from milr_janus.shapes_eval import agreement
from milr_janus.train_shapes import main as train_main
from milr_rewards_geneval.scenes import IMAGE_SIZE, prompt_set, scene_for
from milr_rewards_geneval.shapes import render

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


@pytest.mark.xfail(strict=True, reason="the shipped understanding branch is image-blind: its P(yes) depends on the "
                   "prompt only (training stopped at step 900 with the answer loss still at ln 2); docs/research.md")
def test_self_critic_prefers_matching_images_to_swapped_ones(scenes):
    # each held-out prompt against its own correct render and against the render made for the next
    # prompt of the same tag: a critic at chance ranks them either way half the time
    records = prompt_set(40, seed=123)
    rng = np.random.default_rng(0)
    images = [render(scene_for(r, rng), IMAGE_SIZE) for r in records]
    critic = SelfCritic.from_backbone(scenes)
    own = [critic.score([image], record)[0].value for image, record in zip(images, records)]
    swapped = [critic.score([images[i ^ 1]], records[i])[0].value for i in range(len(records))]
    wins = sum(a > b for a, b in zip(own, swapped))
    assert wins >= 26, (wins, own, swapped)  # P(>= 26 of 40 | chance) < 0.05


def test_agreement_counts_both_kinds_of_error():
    result = agreement([0.9, 0.8, 0.7, 0.2], [1, 0, 1, 0])
    assert result["accuracy"] == 0.75 and result["yes_when_correct"] == 1.0 and result["no_when_incorrect"] == 0.5
    assert result["auc"] == 0.75
    assert agreement([0.9, 0.9], [1, 1])["auc"] is None


def test_scenes_recipe_runs_end_to_end_at_toy_scale(tmp_path):
    out = tmp_path / "toy"
    train_main(["--preset", "toy-scenes", "--out", str(out), "--device", "cpu", "--eval-prompts", "0",
                "--workers", "1", "--eval-workers", "1"])
    report = json.loads((out / "training.json").read_text())
    assert report["world"] == "scenes" and report["pairs"]["pairs"] == 8
    assert "answer_loss" in report["lm"]
    toy = JanusBackbone.from_pretrained(str(out), device="cpu")
    assert toy.model.model.vision_model.config.num_hidden_layers == 1
    (score,) = SelfCritic.from_backbone(toy).score([render(scene_for(prompt_set(1)[0], np.random.default_rng(0)), 32)],
                                                    prompt_set(1)[0])
    assert 0.0 <= score.value <= 1.0
