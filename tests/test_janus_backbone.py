"""The Janus backbone on a tiny random-weight checkpoint: shapes, positions, forcing, the KV cache."""

import shutil

import pytest
import torch

from milr_core.errors import MissingWeights
from milr_core.hub import PROXIES
from milr_janus.backbone import JanusBackbone
from milr_janus.loading import resolve

PROMPT = "a photo of a red cube left of a blue ball"


@pytest.fixture(scope="module")
def bb(tiny_janus_dir):
    return JanusBackbone.from_pretrained(str(tiny_janus_dir), device="cpu")


def test_facts(bb):
    assert bb.hidden_size == 64 and bb.num_image_tokens == 16
    assert bb.device.type == "cpu" and bb.dtype == torch.float32


def test_reasoning_hidden_states_produce_their_tokens(bb):
    r = bb.reason(PROMPT, None, max_new_tokens=12)
    tokens, hidden = r.tokens[0], r.hidden[0]
    assert hidden.shape == (len(tokens), bb.hidden_size) and 0 < len(tokens) <= 12
    # greedy: hidden state i is the one that chose token i
    assert torch.equal(bb.text_logits(hidden).argmax(-1), tokens)


def test_reasoning_kv_cache_matches_a_full_rerun(bb):
    r = bb.reason(PROMPT, None, max_new_tokens=10)
    prompt_ids = bb._reasoning_ids(PROMPT)["input_ids"][0]
    ids = torch.cat([prompt_ids, r.tokens[0]])[None]
    with torch.no_grad():
        full = bb.lm(input_ids=ids).last_hidden_state[0, len(prompt_ids) - 1 : -1]
    torch.testing.assert_close(full, r.hidden[0], atol=1e-4, rtol=1e-4)


def test_forced_text_prefix_is_kept_and_continued(bb):
    prefix = torch.tensor([[5, 6, 7], [8, 9, 10]])
    r = bb.reason(PROMPT, prefix, max_new_tokens=6)
    for row, p in zip(r.tokens, prefix):
        assert torch.equal(row[:3], p) and len(row) > 3
    assert torch.equal(bb.text_logits(r.hidden[0][3:]).argmax(-1), r.tokens[0][3:])


def test_image_hidden_states_produce_their_tokens(bb):
    # cfg_scale 1 leaves the conditional logits; temperature 0 is argmax
    d = bb.draw(PROMPT, ["two objects"], None, cfg_scale=1.0, temperature=0.0, keep_hidden=5)
    assert d.tokens.shape == (1, 16) and d.hidden.shape == (1, 5, 2, 64)  # both CFG rows
    assert torch.equal(bb.image_logits(d.hidden[0]).argmax(-1), d.tokens[0, :5])


def test_guided_logits_of_both_rows_give_the_cfg_tokens(bb):
    d = bb.draw(PROMPT, ["two objects"], None, cfg_scale=5.0, temperature=0.0, keep_hidden=6)
    guided = bb.image_logits(d.hidden[0], 5.0)
    assert torch.equal(guided.argmax(-1), d.tokens[0, :6])
    cond, uncond = (bb.model.model.generation_head(d.hidden[0][:, r]).float() for r in (0, 1))
    torch.testing.assert_close(guided, uncond + 5.0 * (cond - uncond))


def test_forced_image_prefix_is_reproduced(bb):
    prefix = torch.tensor([[1, 2, 3], [4, 5, 6]])
    g = torch.Generator().manual_seed(0)
    d = bb.draw(PROMPT, ["x", "a longer reasoning text here"], prefix, cfg_scale=5, temperature=1, keep_hidden=3, generator=g)
    assert torch.equal(d.tokens[:, :3], prefix)


def test_left_padding_does_not_change_a_row(bb):
    alone = bb.draw(PROMPT, ["short"], None, cfg_scale=5, temperature=0.0, keep_hidden=4)
    batched = bb.draw(PROMPT, ["short", "a much longer reasoning text for the other row"], None, cfg_scale=5, temperature=0.0, keep_hidden=4)
    assert torch.equal(alone.tokens[0], batched.tokens[0])
    torch.testing.assert_close(alone.hidden[0], batched.hidden[0], atol=1e-4, rtol=1e-4)


def test_same_generator_seed_same_image(bb):
    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        return bb.draw(PROMPT, ["r"], None, cfg_scale=5, temperature=1.0, keep_hidden=1, generator=g).tokens

    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def test_decode_gives_pil_images(bb):
    images = bb.decode(torch.zeros(2, 16, dtype=torch.long))
    assert len(images) == 2 and images[0].size == (32, 32) and images[0].mode == "RGB"


def test_unreachable_hub_fails_at_once_with_what_to_download(monkeypatch):
    import socket

    from transformers import JanusForConditionalGeneration

    def refuse(*args, **kwargs):
        raise OSError("no network")

    def never(*args, **kwargs):
        raise AssertionError("from_pretrained would spend its retries on a hub that is not there")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(JanusForConditionalGeneration, "from_pretrained", never)
    for name in PROXIES:  # behind a proxy the hub would be asked
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingWeights, match=r"cannot be reached.*hf download deepseek-community/Janus-Pro-1B"):
        resolve("janus-pro-1b", torch.float32)


def test_behind_a_proxy_the_hub_is_asked_and_offline_mode_is_not(monkeypatch):
    import socket

    from milr_core.hub import hub_reachable

    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("no route")))
    assert not hub_reachable()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")  # direct connections fail there; the proxy may not
    assert hub_reachable()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hub_reachable()


def test_missing_weights_say_what_to_download(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: patch the value
    with pytest.raises(MissingWeights, match=r"hf download deepseek-community/Janus-Pro-7B --local-dir"):
        resolve("janus-pro-7b", torch.float32)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingWeights, match="missing preprocessor_config.json"):
        resolve(str(tmp_path), torch.float32)


@pytest.fixture(scope="module")
def eager(tiny_janus_dir):
    b = JanusBackbone.from_pretrained(str(tiny_janus_dir), device="cpu")
    b.fast = False
    return b


def test_fast_path_equals_eager_path_token_for_token(bb, eager):
    assert bb.fast and not eager.fast
    texts = ["short", "a much longer reasoning text for the other row", "short"]
    prefix = torch.tensor([[3, 1], [4, 1], [5, 9]])
    for prefixes in (None, prefix):
        args = dict(cfg_scale=5.0, temperature=0.0, keep_hidden=4)
        fast, ref = bb.draw(PROMPT, texts, prefixes, **args), eager.draw(PROMPT, texts, prefixes, **args)
        assert torch.equal(fast.tokens, ref.tokens)
        torch.testing.assert_close(fast.hidden, ref.hidden, atol=1e-4, rtol=1e-4)
    text_prefix = torch.tensor([[5, 6, 7], [5, 6, 7], [8, 9, 10]])
    fast, ref = bb.reason(PROMPT, text_prefix, 8), eager.reason(PROMPT, text_prefix, 8)
    assert all(torch.equal(a, b) for a, b in zip(fast.tokens, ref.tokens)) and fast.text == ref.text
    for a, b in zip(fast.hidden, ref.hidden):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="TorchInductor on the CPU needs a C++ compiler"
)
def test_compiled_fast_path_equals_eager_path(tiny_janus_dir, eager):
    """TorchInductor-compiled decoder calls (MILR_COMPILE) change no token."""
    compiled = JanusBackbone.from_pretrained(str(tiny_janus_dir), device="cpu", compile=False)
    compiled.compile = True  # pick_compile keeps the CPU eager; force it to test the compiled math
    texts = ["short", "a much longer reasoning text for the other row"]
    args = dict(cfg_scale=5.0, temperature=0.0, keep_hidden=2)
    assert torch.equal(compiled.draw(PROMPT, texts, None, **args).tokens, eager.draw(PROMPT, texts, None, **args).tokens)
    assert compiled.reason(PROMPT, None, 8).tokens[0].tolist() == eager.reason(PROMPT, None, 8).tokens[0].tolist()


def test_compile_is_asked_for_and_only_on_cuda(monkeypatch):
    from milr_core.hardware import pick_compile

    monkeypatch.delenv("MILR_COMPILE", raising=False)
    assert not pick_compile(torch.device("cuda"))
    monkeypatch.setenv("MILR_COMPILE", "1")
    assert pick_compile(torch.device("cuda")) and not pick_compile(torch.device("cpu"))
    assert not pick_compile(torch.device("cuda"), preferred=False)


def test_fast_path_reuses_prompt_kv_and_decoders_across_calls(bb):
    args = dict(cfg_scale=5.0, temperature=0.0, keep_hidden=2)
    first = bb.draw(PROMPT, ["same text"] * 4, None, **args)
    prompts, decoders = dict(bb._prompts), dict(bb._decoders)
    again = bb.draw(PROMPT, ["same text"] * 4, None, **args)
    assert torch.equal(first.tokens, again.tokens)
    assert bb._prompts.keys() == prompts.keys() and bb._decoders.keys() == decoders.keys()
    # four candidates of one text: the prompt ran once, as one conditional and one unconditional row
    assert any(h[0].shape[0] == 2 for h in bb._prompts.values())
    # a different prompt of similar length lands in the same decoder
    bb.draw(PROMPT, ["other text"] * 4, None, **args)
    assert bb._decoders.keys() == decoders.keys()
