"""unified-local: the UnifiedReward judge in this process, on a tiny random-weight Qwen2.5-VL and a fake VLM."""

import math

import pytest
from PIL import Image

from milr_core.errors import MissingWeights
from milr_core.hub import PROXIES
from milr_core.interfaces import PromptRecord
from milr_rewards_unified import plugin
from milr_rewards_unified.local import LocalJudgeCritic
from milr_rewards_unified.prompts import UNIFIED_SCALE
from milr_rewards_unified.settings import LocalJudgeSettings

RECORD = PromptRecord("a photo of a red cube")
IMAGES = [Image.new("RGB", (48, 48), c) for c in ("red", "blue", "green")]


def test_a_real_checkpoint_answers_every_image_and_unreadable_answers_are_nan(tiny_judge, tmp_path):
    critic = plugin.unified_local(model=str(tiny_judge), cache_dir=tmp_path, max_tokens=6, batch=2, device="cpu")
    scores = critic.score(IMAGES, RECORD)
    assert len(scores) == 3
    assert all(math.isnan(s.value) and "no score in the answer" in s.detail for s in scores)
    assert all(len(s.detail.split("; answer: ")[1]) > 2 for s in scores)  # words were generated


class FakeVLM:
    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def answer(self, images, text, system, max_tokens):
        self.calls.append((len(images), text))
        return [self.answers.pop(0) for _ in images]


def _critic(tmp_path, answers, batch=2):
    lo, hi = UNIFIED_SCALE
    settings = LocalJudgeSettings(model="judge", template="Rate: {prompt}", scale_min=lo, scale_max=hi,
                                  batch=batch, cache_dir=tmp_path)
    return LocalJudgeCritic("unified-local", settings, FakeVLM(answers))


def test_scores_are_read_batched_and_cached(tmp_path):
    lo, hi = UNIFIED_SCALE
    critic = _critic(tmp_path, ["Final Score: 4", "I cannot tell", f"Final Score: {hi:g}"])
    first = critic.score(IMAGES, RECORD)
    assert [n for n, _ in critic.vlm.calls] == [2, 1]  # three images, two per generate call
    assert critic.vlm.calls[0][1] == "Rate: a photo of a red cube"
    assert first[0].value == pytest.approx((4 - lo) / (hi - lo)) and first[2].value == 1.0
    assert math.isnan(first[1].value) and "I cannot tell" in first[1].detail
    critic.vlm.answers = ["Final Score: 1"]
    again = critic.score(IMAGES, RECORD)  # only the unreadable one is asked again
    assert [n for n, _ in critic.vlm.calls] == [2, 1, 1]
    assert again[0].value == first[0].value and again[0].detail.endswith("(cached)")
    assert again[1].value == pytest.approx((1 - lo) / (hi - lo))


def test_missing_weights_say_what_to_download(tmp_path, monkeypatch):
    import socket

    with pytest.raises(MissingWeights, match="has no config.json"):
        plugin.unified_local(model=str(tmp_path), device="cpu")

    def refuse(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("MILR_CACHE", str(tmp_path / "c"))
    for name in PROXIES:  # behind a proxy the hub would be asked
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingWeights, match=r"hf download CodeGoat24/UnifiedReward-qwen-7b .*MILR_UNIFIED_LOCAL_MODEL"):
        plugin.unified_local(device="cpu")
