"""`clipscore` and `t2i-clip`: cosine, scale and clamp, on a tiny random open_clip model."""

import numpy as np
import pytest
import torch
from PIL import Image

from milr_core.errors import MissingWeights
from milr_core.interfaces import PromptRecord
from milr_rewards_geneval import random_models
from milr_rewards_geneval.clip_score import ClipScore

pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def clip():
    return random_models.open_clip(None)


def images(n):
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (40 + 10 * i, 64, 3), dtype=np.uint8)) for i in range(n)]


def test_scores_are_scaled_clamped_cosines(clip):
    record = PromptRecord("a photo of a red dog")
    raw = ClipScore(*clip, scale=1.0, name="t2i-clip", batch_size=2)
    cos = raw.cosines(images(3), record.prompt)
    assert len(cos) == 3 and all(-1 <= c <= 1 for c in cos)
    for scale in (1.0, 2.5, 400.0, -1.0):
        scores = ClipScore(*clip, scale=scale).score(images(3), record)
        assert [s.value for s in scores] == pytest.approx([min(max(scale * c, 0), 1) for c in cos], abs=1e-5)
        assert all(0 <= s.value <= 1 and "cosine" in s.detail for s in scores)


def test_cosine_matches_a_direct_computation(clip):
    model, preprocess, tokenizer = clip
    image = images(1)[0]
    with torch.no_grad():
        a = model.encode_image(preprocess(image)[None])
        b = model.encode_text(tokenizer(["two cats"]))
    expected = torch.nn.functional.cosine_similarity(a, b).item()
    assert ClipScore(*clip, scale=1.0).cosines([image], "two cats")[0] == pytest.approx(expected, abs=1e-5)


def test_missing_weights_name_the_variable(tmp_path):
    with pytest.raises(MissingWeights, match="MILR_CLIP_VIT_B_32_OPENAI=DIR"):
        ClipScore.load("t2i-clip", weights=str(tmp_path / "nowhere.pt"), device="cpu")
