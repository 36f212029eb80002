"""janus-shapes: the shipped weights load by name, draw shapes-world images that follow easy
prompts, and the training command runs end to end at toy scale."""

import json
from pathlib import Path

import pytest
import torch
from milr_janus import plugin as janus_plugin
from milr_janus.backbone import JanusBackbone
from milr_janus.shapes_eval import evaluate
from milr_janus.train_shapes import main as train_main

from milr_core.interfaces import PromptRecord
from milr_core.plugins import registry

WEIGHTS = Path(janus_plugin.__file__).parent / "weights" / "janus-shapes"
MiB = 2**20


@pytest.fixture(scope="module")
def shapes():
    return registry().backbone("janus-shapes", device="cpu")


def test_shipped_files_stay_within_the_repository_limits():
    sizes = {f.name: f.stat().st_size for f in WEIGHTS.iterdir()}
    assert any(name.endswith(".safetensors") for name in sizes)
    assert max(sizes.values()) <= 16 * MiB and sum(sizes.values()) <= 40 * MiB


def test_loads_by_name_through_the_registry(shapes):
    assert isinstance(shapes, JanusBackbone) and shapes.name == "janus-shapes"
    assert type(shapes.model).__name__ == "JanusForConditionalGeneration"
    assert shapes.num_image_tokens == 64 and shapes.hidden_size == 384


def test_one_draw_decodes_to_a_64_px_image(shapes):
    g = torch.Generator().manual_seed(0)
    drawing = shapes.draw("a photo of a red circle", ["A large red circle in the centre, on a white background."],
                          None, cfg_scale=5.0, temperature=1.0, keep_hidden=2, generator=g)
    assert drawing.tokens.shape == (1, 64) and drawing.hidden.shape == (1, 2, 2, 384)
    (image,) = shapes.decode(drawing.tokens)
    assert image.size == (64, 64) and image.mode == "RGB"


def test_follows_easy_prompts_far_better_than_chance(shapes):
    # chance of the right shape in the right colour is about 1 in 40 per image
    prompts = [("circle", "red"), ("square", "blue"), ("star", "yellow"), ("cross", "green"), ("square", "purple"),
               ("circle", "black")]
    records = [
        PromptRecord(f"a photo of a {color} {shape}", "colors", [{"class": shape, "count": 1, "color": color}])
        for shape, color in prompts
    ]
    results = evaluate(shapes, records, seed=0)
    assert sum(r["correct"] for r in results) >= 4, results


def test_training_runs_end_to_end_at_toy_scale(tmp_path):
    out = tmp_path / "toy"
    train_main(["--preset", "toy", "--out", str(out), "--device", "cpu", "--eval-prompts", "0",
                "--workers", "1", "--eval-workers", "1"])
    report = json.loads((out / "training.json").read_text())
    assert report["data"]["leaks"] == 0 and report["chosen_step"] == report["settings"]["lm_steps"]
    toy = JanusBackbone.from_pretrained(str(out), device="cpu")
    assert toy.num_image_tokens == 16
    drawing = toy.draw("a photo of a star", ["x"], None, cfg_scale=5.0, temperature=1.0, keep_hidden=0)
    assert toy.decode(drawing.tokens)[0].size == (32, 32)
