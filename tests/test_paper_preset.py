"""`preset = "paper"` follows ../shared/MILR_REFERENCE.md: prompt ids, latents, policy, targets,
prefix lengths, continuation and the returned image, on a tiny random Janus and on janus-shapes."""

import math

import pytest
import torch

from fakes import FakeBackbone
from milr_core.config import RunConfig
from milr_core.engine import Milr, prefix_length
from milr_core.interfaces import IMAGE, TEXT, Critic, PromptRecord, Score
from milr_core.strategies import ImageOnly, Joint, TextOnly
from milr_janus.backbone import JanusBackbone

PROMPT = "a photo of a red cube left of a blue ball"
SYSTEM = "You are a helpful assistant that receives an image prompt and generate a visualization of the prompt."
INSTRUCTION = (
    f'You are asked to generate an image based on this prompt: "{PROMPT}"\n'
    "Provide a brief, precise visualization of all elements in the prompt. Your description should:\n"
    "1. Include every object mentioned in the prompt\n"
    "2. Specify visual attributes (color, number, shape, texture) if specified in the prompt\n"
    "3. Clarify relationships (e.g., spatial) between objects if specified in the prompt\n"
    "4. Be concise (50 words or less)\n"
    "5. Focus only on what's explicitly stated in the prompt\n"
    "6. Do not elaborate beyond the attributes or relationships specified in the prompt\n"
    "Do not miss objects. Output your visualization directly without explanation:"
)


class Wrong(Critic):
    """GenEval-like verdicts: always incorrect, with a graded score that binary shaping must ignore."""

    name = "wrong"

    def __init__(self):
        self.images = []

    def score(self, images, record):
        self.images += images
        return [Score(0.5, "incorrect", correct=False) for _ in images]


def paper(**kw):
    # tiny Janus has 16 image tokens: int(0.02 * 16) = 0 would mean no search, as in the reference
    return RunConfig(preset="paper", **{"steps": 2, "image_ratio": 0.2, "max_reasoning_tokens": 20, **kw})


@pytest.fixture(scope="module")
def bb(tiny_janus_dir):
    return JanusBackbone.from_pretrained(str(tiny_janus_dir), device="cpu")


def test_preset_settings_and_overrides():
    c = RunConfig(preset="paper")
    assert (c.lr, c.text_ratio, c.image_ratio, c.steps, c.threshold) == (0.03, 0.2, 0.02, 30, 0.9)
    assert (c.continuation_temperature, c.max_reasoning_tokens, c.continuation_tokens) == (0.0, 512, 513)
    assert (c.image_policy, c.loss_target, c.prefix_rule, c.reward_shaping, c.return_image) == (
        "guided", "argmax", "floor", "binary", "last")
    assert RunConfig(preset="paper", steps=5, lr=0.1).steps == 5  # a set field wins over the preset
    # milr is the paper but for the sampled continuation (measured; docs/concepts.md) and K
    milr = RunConfig().model_dump(exclude={"preset", "steps", "continuation_temperature", "seed", "strategy", "frozen"})
    assert milr == c.model_dump(exclude={"preset", "steps", "continuation_temperature", "seed", "strategy", "frozen"})
    assert (RunConfig().continuation_temperature, RunConfig().steps) == (0.7, 20)


def test_paper_prompt_ids_are_the_reference_strings(bb):
    tok = bb.tokenizer
    ids = bb._reasoning_ids(PROMPT)["input_ids"][0].tolist()
    assert ids == tok(f"{SYSTEM}\n\nUser: {INSTRUCTION}\n\nAssistant:")["input_ids"]
    assert ids[0] == tok.bos_token_id
    image_ids, mask = bb._image_prompt([f"{PROMPT}. {' A red cube.'}"])  # draw's "{prompt}. {reasoning}"
    cond = image_ids[0][mask[0].bool()].tolist()
    # the reasoning is not stripped: "{p}.  A ..." with two spaces, roles written as plain words
    assert cond == tok(f"User: {PROMPT}.  A red cube.\n\nAssistant:{tok.boi_token}")["input_ids"]
    strings = bb.prompt_strings(PROMPT)
    assert strings["reasoning"].startswith(SYSTEM + "\n\nUser: You are asked")
    assert strings["image"] == f"User: {PROMPT}. {{reasoning}}\n\nAssistant:{tok.boi_token}"


def test_janus_shapes_keeps_its_trained_chat():
    from milr_core.plugins import registry

    shapes = registry().create("backbone", "janus-shapes", device="cpu")
    assert shapes.prompt_strings("a photo of a red circle")["reasoning"].startswith("You are a helpful language")
    assert "<|User|>: Describe in detail" in shapes.prompt_strings("a photo of a red circle")["reasoning"]


def test_paper_prefix_lengths_are_int_and_count_the_end_token():
    assert prefix_length(0.2, 11, "floor") == 2 and prefix_length(0.2, 11) == 3
    assert prefix_length(0.02, 576, "floor") == 11
    assert prefix_length(0.02, 16, "floor") == 0
    bb = FakeBackbone(text_len=9)  # 9 tokens + the end token: T = 10, m_t = 2 (ceil without it: 2 as well)
    m = Milr(bb, Wrong(), Joint(), RunConfig(preset="paper", steps=0, text_ratio=0.3, image_ratio=0.1))
    m.run(PromptRecord(PROMPT))
    assert m.start[TEXT].shape[0] == 3  # int(0.3 * 10); ceil(0.3 * 9) would also be 3, int(0.3 * 9) is 2
    assert m.start[IMAGE].shape == (5, 2, 8)  # int(0.1 * 50), both CFG rows


def test_a_zero_prefix_means_no_search_and_the_first_image(bb, caplog):
    critic = Wrong()
    with caplog.at_level("WARNING"):
        result = Milr(bb, critic, Joint(), paper(image_ratio=0.02)).run(PromptRecord(PROMPT))
    assert len(result.steps) == 1 and result.final_step == 0
    assert any("no search: int(ratio x length) is 0 for the image prefix" in r.getMessage() for r in caplog.records)


def test_one_paper_step_equals_the_reference_formulas(bb):
    """One joint step recomputed in plain torch from MILR_REFERENCE.md section 3."""
    cfg = paper(steps=1)
    m = Milr(bb, Wrong(), Joint(), cfg)
    after = {}
    m.on_step = lambda step: after.update({g: z.detach().clone() for g, z in m.latents.items()})
    result = m.run(PromptRecord(PROMPT))
    assert len(result.steps) == 2
    z_t = m.start[TEXT].clone().requires_grad_(True)
    z_v = m.start[IMAGE].clone().requires_grad_(True)
    assert z_v.shape[1:] == (2, bb.hidden_size)  # (m, 2, d): both CFG rows are latents
    r = 0.0 - 1.0  # binary reward of an incorrect image, in the reference's [-1, 0]
    probs = torch.softmax(bb.model.lm_head(z_t), -1)
    loss_t = -r * torch.log(probs.gather(-1, probs.argmax(-1, keepdim=True)) + 1e-8).sum()
    logits = bb.model.model.generation_head(z_v)
    p = torch.softmax(logits[:, 1] + 5 * (logits[:, 0] - logits[:, 1]), -1)
    loss_v = -r * torch.log(p.gather(-1, p.argmax(-1, keepdim=True)) + 1e-10).sum()
    for z, loss in ((z_t, loss_t), (z_v, loss_v)):
        opt = torch.optim.Adam([z], lr=0.03)
        loss.backward()
        opt.step()
    torch.testing.assert_close(after[TEXT], z_t.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(after[IMAGE], z_v.detach(), atol=1e-6, rtol=1e-5)
    # the new text prefix is the argmax of the moved latents, continued greedily
    new_prefix = bb.model.lm_head(after[TEXT]).argmax(-1)
    again = bb.reason(PROMPT, new_prefix[None], cfg.continuation_tokens, 0.0)
    assert result.steps[1].reasoning[0] == again.text[0]
    assert result.steps[1].rewards == [0.0]  # binary shaping: the 0.5 graded score is not used


def test_the_last_image_or_the_best(bb):
    class Rising(Critic):
        name = "rising"
        values = iter([0.5, 0.1, 0.2])

        def score(self, images, record):
            return [Score(next(self.values), "") for _ in images]

    last = Milr(bb, Rising(), Joint(), paper(steps=2)).run(PromptRecord(PROMPT))
    assert (last.final_step, last.final_reward) == (2, 0.2)
    Rising.values = iter([0.5, 0.1, 0.2])
    best = Milr(bb, Rising(), Joint(), paper(steps=2, return_image="best")).run(PromptRecord(PROMPT))
    assert (best.final_step, best.final_reward) == (0, 0.5)


def test_paper_ablations_image_only_writes_no_text_and_text_only_forces_no_image_prefix():
    bb = FakeBackbone()
    Milr(bb, Wrong(), ImageOnly(), RunConfig(preset="paper", steps=2, image_ratio=0.1)).run(PromptRecord(PROMPT))
    assert bb.reason_calls == [] and all(r == [""] for r, _ in bb.draw_calls)
    bb = FakeBackbone()
    Milr(bb, Wrong(), TextOnly(), RunConfig(preset="paper", steps=2, image_ratio=0.1)).run(PromptRecord(PROMPT))
    assert [p is None for _, p in bb.draw_calls] == [True, True, True]
    bb = FakeBackbone()
    Milr(bb, Wrong(), TextOnly(), RunConfig(steps=2, ablations="milr")).run(PromptRecord(PROMPT))  # keeps the prefix
    assert [p is None for _, p in bb.draw_calls] == [True, False, False]


def test_frozen_latents_resample_without_moving(bb):
    m = Milr(bb, Wrong(), Joint(), paper(steps=2, frozen=True))
    result = m.run(PromptRecord(PROMPT))
    assert len(result.steps) == 3 and all(s.loss is not None and math.isfinite(s.loss) for s in result.steps[1:])
    for g in (TEXT, IMAGE):
        assert torch.equal(m.latents[g].detach(), m.start[g])
