"""BAGEL as a backbone, on a tiny random checkpoint in the published layout: what it reads,
which latents it hands out, how it continues a forced plan, and that its fast path (KV reuse,
batched guidance) computes what the reference-style loop computes."""

import json

import pytest
import torch
from safetensors import safe_open

pytest.importorskip("diffusers")

from milr_bagel.backbone import THINK_PROMPT, BagelBackbone  # noqa: E402
from milr_core.interfaces import IMAGE, TEXT  # noqa: E402

PROMPT = "a photo of two cats"


@pytest.fixture(scope="module")
def bagel(tiny_bagel_dir):
    return BagelBackbone.from_pretrained(str(tiny_bagel_dir), device="cpu", flow_steps=4)


@pytest.fixture(scope="module")
def reference_style(bagel):
    return BagelBackbone(bagel.model, bagel.vae, bagel.tokenizer, flow_steps=4, fast=False)


def test_the_tiny_folder_has_the_published_files_and_names(tiny_bagel_dir):
    for name in ("llm_config.json", "vit_config.json", "ema.safetensors", "ae.safetensors", "tokenizer_config.json"):
        assert (tiny_bagel_dir / name).exists(), name
    assert json.loads((tiny_bagel_dir / "llm_config.json").read_text())["model_type"] == "qwen2"
    with safe_open(tiny_bagel_dir / "ema.safetensors", "pt") as f:
        keys = set(f.keys())
    for key in ("language_model.model.layers.1.self_attn.q_proj_moe_gen.weight", "language_model.model.norm_moe_gen.weight",
                "language_model.model.layers.0.mlp_moe_gen.down_proj.weight", "language_model.lm_head.weight",
                "time_embedder.mlp.2.bias", "vae2llm.weight", "llm2vae.weight", "latent_pos_embed.pos_embed"):
        assert key in keys, key
    with safe_open(tiny_bagel_dir / "ae.safetensors", "pt") as f:
        assert {"encoder.down.0.block.0.conv1.weight", "decoder.up.1.upsample.conv.weight", "decoder.mid.attn_1.q.weight"} <= set(f.keys())


def test_it_declares_text_latents_only(bagel):
    assert bagel.latent_groups == {TEXT: None}
    assert IMAGE not in bagel.latent_groups
    with pytest.raises(NotImplementedError):
        bagel.image_logits(torch.zeros(1, bagel.hidden_size))


def test_plan_latents_are_the_hidden_states_that_emitted_the_plan(bagel):
    r = bagel.reason(PROMPT, None, 12)
    tokens, hidden = r.tokens[0], r.hidden[0]
    assert tokens.shape == (12,) and hidden.shape == (12, bagel.hidden_size)
    assert torch.equal(bagel.text_logits(hidden).argmax(-1), tokens)  # greedy: each latent's argmax is its token
    assert r.text[0] == bagel.tokenizer.decode(tokens)


def test_a_forced_plan_prefix_is_continued(bagel):
    plan = bagel.reason(PROMPT, None, 12).tokens[0]
    same = bagel.reason(PROMPT, plan[:3][None].expand(2, -1), 9)
    assert all(torch.equal(t, plan) for t in same.tokens)  # the plan's own prefix: the same greedy plan
    other = torch.tensor([[7, 8, 9]])
    moved = bagel.reason(PROMPT, other, 9).tokens[0]
    assert moved[:3].tolist() == [7, 8, 9] and not torch.equal(moved, plan)


def test_the_fast_path_computes_what_the_reference_style_loop_does(bagel, reference_style):
    fast, slow = bagel.reason(PROMPT, None, 10), reference_style.reason(PROMPT, None, 10)
    assert torch.equal(fast.tokens[0], slow.tokens[0])
    assert torch.allclose(fast.hidden[0], slow.hidden[0], atol=1e-5)
    prefix = fast.tokens[0][:4][None].expand(2, -1)
    assert torch.allclose(
        torch.cat(bagel.reason(PROMPT, prefix, 6).hidden), torch.cat(reference_style.reason(PROMPT, prefix, 6).hidden), atol=1e-5
    )
    noise = torch.randn(2, bagel.side**2, bagel.model.llm2vae.out_features, generator=torch.Generator().manual_seed(0))

    def latents(bb):
        head = bb._prompt_ids(PROMPT)
        conds = [bb.contexts.get(head + bb._block(t)) for t in (fast.text[0], "two cats")]
        return bb.denoise(noise, conds, bb.contexts.get(bb._block(THINK_PROMPT)), 4.0)

    out = latents(bagel)
    assert torch.allclose(out, latents(reference_style), atol=1e-5)
    assert not torch.allclose(out[0], out[1])  # each row follows its own plan


def test_draw_returns_one_image_per_plan_and_guidance_matters(bagel):
    texts = bagel.reason(PROMPT, None, 6).text * 2
    kw = dict(temperature=1.0, keep_hidden=0)
    one = bagel.draw(PROMPT, texts, None, cfg_scale=4.0, generator=torch.Generator().manual_seed(1), **kw)
    assert one.tokens is None and one.hidden is None
    assert len(one.images) == 2 and one.images[0].size == (bagel.resolution, bagel.resolution)
    again = bagel.draw(PROMPT, texts, None, cfg_scale=4.0, generator=torch.Generator().manual_seed(1), **kw)
    plain = bagel.draw(PROMPT, texts, None, cfg_scale=1.0, generator=torch.Generator().manual_seed(1), **kw)
    pixels = [torch.tensor(list(i.tobytes())) for i in (one.images[0], again.images[0], plain.images[0])]
    assert torch.equal(pixels[0], pixels[1]) and not torch.equal(pixels[0], pixels[2])
    with pytest.raises(ValueError, match="no image tokens"):
        bagel.draw(PROMPT, texts, torch.zeros(2, 1, dtype=torch.long), cfg_scale=4.0, **kw)


def test_the_prompt_is_run_once_and_then_read_from_the_cache(bagel):
    starts = []  # first position of every text call the model runs
    original = bagel.model.run

    def run(embeds, positions, *args, gen=None, **kwargs):
        if gen is None:
            starts.append(int(positions[0, 0]))
        return original(embeds, positions, *args, gen=gen, **kwargs)

    bagel.model.run = run
    try:
        r = bagel.reason("a new prompt", None, 5)
        bagel.reason("a new prompt", r.tokens[0][:2][None], 3)
        bagel.draw("a new prompt", r.text, None, cfg_scale=4.0, temperature=1.0, keep_hidden=0)
    finally:
        bagel.model.run = original
    plan_start = len(bagel._prompt_ids("a new prompt")) + 1
    assert starts[0] < plan_start and all(s >= plan_start for s in starts[1:])


def test_the_paper_settings_are_a_valid_run_config():
    from pathlib import Path

    from milr_core.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "plugins" / "milr_bagel" / "paper.toml")
    assert (config.strategy, config.steps, config.lr, config.text_ratio, config.cfg_scale) == ("text-only", 10, 0.01, 0.1, 4.0)
    assert config.text_temperature == config.continuation_temperature == 0.0
    assert (config.prefix_rule, config.loss_target, config.return_image) == ("floor", "argmax", "last")
    assert config.max_reasoning_tokens == config.continuation_tokens == 1000


def test_a_milr_run_moves_the_plan_redraws_the_image_and_resumes_exactly(bagel):
    import io

    from fakes import ScriptedCritic
    from milr_core.config import RunConfig
    from milr_core.engine import SearchState, run_milr
    from milr_core.interfaces import PromptRecord
    from milr_core.strategies import Joint

    record = PromptRecord(PROMPT)
    cfg = RunConfig(steps=3, lr=5.0, threshold=1.0, max_reasoning_tokens=10, continuation_temperature=0.0, seed=3)
    rewards = [0.1, 0.3, 0.2, 0.4]
    whole = run_milr(bagel, ScriptedCritic(rewards), Joint(), record, cfg)
    assert [s.groups for s in whole.steps] == [[], ["text"], ["text"], ["text"]]
    assert whole.steps[1].reasoning != whole.steps[0].reasoning  # the update moved the plan's prefix
    pixels = [s.images[0].tobytes() for s in whole.steps]
    assert len(set(pixels)) == 4 and whole.steps[0].images[0].size == (bagel.resolution,) * 2

    states, kept = [], []

    def stop(step):
        kept.append(step)
        if step.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_milr(bagel, ScriptedCritic(rewards), Joint(), record, cfg, on_step=stop, on_state=states.append)
    buf = io.BytesIO()
    torch.save(states[-1].to_dict(), buf)
    buf.seek(0)
    state = SearchState.from_dict(torch.load(buf, weights_only=True))
    critic = ScriptedCritic(rewards)
    critic.calls = 2
    resumed = run_milr(bagel, critic, Joint(), record, cfg, resume=state, earlier=kept[:2])
    assert [s.reasoning for s in resumed.steps] == [s.reasoning for s in whole.steps]
    assert [s.images[0].tobytes() for s in resumed.steps] == pixels


def test_the_recorded_chat_strings_are_what_the_model_reads(bagel):
    strings = bagel.prompt_strings(PROMPT)
    encode = lambda text: bagel.tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    assert encode(strings["reasoning"]) == bagel._prompt_ids(PROMPT) + [bagel.im_start]
    plan = "two cats on a mat"
    assert encode(strings["image"].format(reasoning=plan)) == bagel._prompt_ids(PROMPT) + bagel._block(plan) + [bagel.vision_start]
    assert encode(strings["image without guidance"]) == bagel._block(THINK_PROMPT) + [bagel.vision_start]
