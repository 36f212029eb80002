"""milr's fast decode path against a reference-style loop, at Janus-Pro 1B and 7B shapes.

Random weights built from the published configs (no download), bfloat16, one GPU,
both paths in the same process:
- reference style: eager loop over a dynamic KV cache, one CFG pair per call, the
  image regenerated from scratch, reasoning text continued by re-running the whole
  sequence (all hidden states returned) for every new token, then
  `torch.cuda.empty_cache()` before the image -- how the MILR reference code's
  optimisation loop works (its text branch empties the allocator after every
  continuation, so each image's dynamic cache is allocated afresh). The same
  step without the `empty_cache()` is reported too (`ref_step_warm_s`);
- milr: static KV cache + CUDA-graph replay, prompt KV computed once per distinct
  row, candidates batched, reasoning text continued with the KV cache; then the
  same with every decoder call compiled by TorchInductor (`compiled` block).
Also checks that the fast path equals the eager path token for token under greedy
decoding at 1B shape (float32, so that the check is about the algorithm, not
bfloat16 rounding), and reports the bfloat16 agreement too.

    python benchmarks/decode.py --out benchmarks/results/decode.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import traceback

import torch

from janus_step import build  # same random-weight Janus-Pro shapes as the step benchmark

PROMPT = "a photo of a red cube left of a blue ball"
RECORD = {
    "prompt": PROMPT,
    "tag": "position",
    "include": [{"class": "square", "count": 1, "color": "red"}, {"class": "circle", "count": 1, "color": "blue", "position": ["left of", 0]}],
}


DEVICE = "cuda"


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn):
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t


@torch.no_grad()
def reference_text(bb, prompt: str, prefix: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """The reference's text continuation: the whole sequence re-run for every new token."""
    ids = bb._chat([bb.instruction.format(prompt=prompt)], "text")["input_ids"]
    ids = torch.cat([ids, prefix[None].to(ids.device)], 1)
    for _ in range(new_tokens):
        hidden = bb.lm(input_ids=ids, use_cache=False, output_hidden_states=True).last_hidden_state[:, -1]
        ids = torch.cat([ids, bb.model.lm_head(hidden).argmax(-1, keepdim=True)], 1)
    return ids


def reference_step(bb, critic, record, text_tokens: int, m_v: int, empty_cache: bool = True):
    """One reference-style MILR step: continue the text without a cache, redraw the image eagerly, score."""
    from milr_core.interfaces import PromptRecord

    bb.fast = False
    try:
        prefix = torch.arange(10, 10 + max(1, text_tokens // 4), device=bb.device)
        ids = reference_text(bb, PROMPT, prefix, text_tokens)
        text = bb.tokenizer.decode(ids[0], skip_special_tokens=True)
        if empty_cache and DEVICE == "cuda":
            torch.cuda.empty_cache()
        g = torch.Generator(bb.device).manual_seed(0)
        d = bb.draw(PROMPT, [text], None, cfg_scale=5, temperature=1, keep_hidden=m_v, generator=g)
        critic.score(bb.decode(d.tokens), PromptRecord.from_dict(record))
    finally:
        bb.fast = True


@torch.no_grad()
def warm_eager(bb, steps: int = 16) -> None:
    from milr_janus.backbone import _EagerDecoder

    ids, mask = bb._image_prompt([f"{PROMPT}. warm up"])
    hidden, cache = bb._forward(bb.model.get_input_embeddings()(ids), mask)
    decoder = _EagerDecoder(bb, cache, mask)
    for _ in range(steps):
        tok = bb.model.model.generation_head(hidden[:, -1]).argmax(-1)
        hidden = decoder.step(bb.model.prepare_embeddings_for_image_generation(tok[:, None]))[:, None]
    reference_text(bb, PROMPT, torch.arange(10, 12, device=bb.device), 2)


def agreement(bb, rows: int = 2) -> dict:
    """Greedy fast path vs eager path: image and text tokens equal?"""
    out = {}
    args = dict(cfg_scale=5.0, temperature=0.0, keep_hidden=1)
    texts = ["a red cube on the left", "a blue ball on the right of a red cube, on a white table"][:rows]
    fast = bb.draw(PROMPT, texts, None, **args).tokens
    bb.fast = False
    eager = bb.draw(PROMPT, texts, None, **args).tokens
    eager_text = bb.reason(PROMPT, None, 48).tokens[0]
    bb.fast = True
    fast_text = bb.reason(PROMPT, None, 48).tokens[0]
    first_diff = (fast != eager).any(0).nonzero()
    out["image_tokens_equal"] = bool(torch.equal(fast, eager))
    out["image_first_difference"] = int(first_diff[0]) if len(first_diff) else None
    out["image_token_agreement"] = round(float((fast == eager).float().mean()), 4)
    out["text_tokens_equal"] = bool(torch.equal(fast_text, eager_text))
    return out


def milr_block(bb, critic, draw, text_tokens: int, candidates: int) -> dict:
    """milr's numbers: one image, `candidates` images in one call, text per token, whole steps."""
    from milr_core.config import RunConfig
    from milr_core.engine import Milr
    from milr_core.interfaces import PromptRecord
    from milr_core.strategies import Joint

    res: dict = {}
    gpu = DEVICE == "cuda"
    draw(1)  # capture the graph for one candidate
    _, res["image_s"] = timed(lambda: draw(1))
    draw(candidates)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    _, res[f"image_{candidates}_candidates_s"] = timed(lambda: draw(candidates))
    if gpu:
        res[f"peak_gpu_gib_{candidates}_candidates"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    res["candidates_per_s"] = round(candidates / res[f"image_{candidates}_candidates_s"], 3)
    bb.reason(PROMPT, None, text_tokens)  # graph for text
    r, t = timed(lambda: bb.reason(PROMPT, None, text_tokens))
    res["text_tokens"] = len(r.tokens[0])
    res["text_ms_per_token"] = round(1000 * t / max(1, len(r.tokens[0])), 2)
    tokens = draw(1).tokens
    _, res["vq_decode_s"] = timed(lambda: bb.decode(tokens))

    record = PromptRecord.from_dict(RECORD)
    for samples in (1, candidates):
        cfg = RunConfig(steps=2, threshold=1.0, max_reasoning_tokens=text_tokens + text_tokens // 4, samples=samples, seed=0)
        result = Milr(bb, critic, Joint(), cfg).run(record)
        res[f"milr_step_s_samples_{samples}"] = round(result.steps[-1].seconds, 3)  # the second step: graphs warm
    if gpu:
        res["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    res["speedup_8_vs_1_cost"] = round(res[f"image_{candidates}_candidates_s"] / res["image_s"], 2)
    return res


def measure(shape: str, text_tokens: int, candidates: int, compile: bool) -> dict:
    from milr_core.engine import prefix_length
    from milr_rewards_geneval.shapes_oracle import ShapesOracle

    res: dict = {"shape": shape}
    critic = ShapesOracle()
    gpu = DEVICE == "cuda"
    if shape != "7b":  # the equality check, in float32 first
        torch.backends.cuda.matmul.allow_tf32 = False
        bb32 = build(shape, DEVICE, torch.float32)
        res["float32_greedy"] = agreement(bb32)
        if compile and gpu:
            bb32.compile = True
            res["float32_greedy_compiled"] = agreement(bb32)
        del bb32
    if gpu:
        torch.cuda.empty_cache()
    bb = build(shape, DEVICE, torch.bfloat16 if gpu else torch.float32)
    res["max_rows_chosen"] = bb.max_rows()
    m_v = prefix_length(0.02, bb.num_image_tokens)
    g = torch.Generator(DEVICE).manual_seed(0)

    def draw(n, fast=True):
        bb.fast = fast
        try:
            return bb.draw(PROMPT, ["a red cube on the left"] * n, None, cfg_scale=5, temperature=1, keep_hidden=m_v, generator=g)
        finally:
            bb.fast = True

    # reference style, after a short warm-up of its kernels (the first CUDA calls of a process are slow)
    warm_eager(bb)
    _, res["ref_image_s"] = timed(lambda: draw(1, fast=False))
    pre = torch.arange(10, 20, device=DEVICE)
    _, t = timed(lambda: reference_text(bb, PROMPT, pre, 32))
    res["ref_text_ms_per_token"] = round(1000 * t / 32, 2)
    _, res["ref_step_s"] = timed(lambda: reference_step(bb, critic, RECORD, text_tokens, m_v))
    _, res["ref_step_warm_s"] = timed(lambda: reference_step(bb, critic, RECORD, text_tokens, m_v, empty_cache=False))

    res.update(milr_block(bb, critic, draw, text_tokens, candidates))
    res["ref_candidates_per_s"] = round(1 / res["ref_image_s"], 3)
    res["speedup_image"] = round(res["ref_image_s"] / res["image_s"], 2)
    res["speedup_text"] = round(res["ref_text_ms_per_token"] / res["text_ms_per_token"], 2)
    res["speedup_step"] = round(res["ref_step_s"] / res["milr_step_s_samples_1"], 2)
    res["speedup_step_vs_warm"] = round(res["ref_step_warm_s"] / res["milr_step_s_samples_1"], 2)
    if compile:
        bb.compile, bb._decoders = True, {}
        if gpu:
            torch.cuda.empty_cache()
        t = time.perf_counter()
        draw(1)
        res["compile_first_image_s"] = round(time.perf_counter() - t, 1)
        c = res["compiled"] = milr_block(bb, critic, draw, text_tokens, candidates)
        c["speedup_image"] = round(res["ref_image_s"] / c["image_s"], 2)
        c["speedup_text"] = round(res["ref_text_ms_per_token"] / c["text_ms_per_token"], 2)
        c["speedup_step"] = round(res["ref_step_s"] / c["milr_step_s_samples_1"], 2)
        c["speedup_step_vs_warm"] = round(res["ref_step_warm_s"] / c["milr_step_s_samples_1"], 2)
        if shape == "1b" and gpu:
            c["bfloat16_greedy"] = agreement(bb)
        bb.compile, bb._decoders = False, {}
    if shape == "1b" and gpu:
        res["bfloat16_greedy"] = agreement(bb)
    for block in (res, res.get("compiled", {})):
        for k, v in list(block.items()):
            if isinstance(v, float):
                block[k] = round(v, 3)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1b,7b")
    ap.add_argument("--text-tokens", type=int, default=64, help="reasoning tokens continued in one step")
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--out", default="decode.json")
    ap.add_argument("--device", default="cuda", help="cpu only for a smoke test, with --shapes tiny")
    ap.add_argument("--no-compile", action="store_true", help="skip the TorchInductor-compiled block")
    args = ap.parse_args()
    import transformers

    global DEVICE
    DEVICE = args.device

    results = {
        "what": __doc__.strip().splitlines()[0],
        "device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()},
        "settings": {"text_tokens_per_step": args.text_tokens, "candidates": args.candidates, "dtype": "bfloat16", "cfg_scale": 5},
        "runs": [],
    }
    for shape in args.shapes.split(","):
        try:
            results["runs"].append(measure(shape, args.text_tokens, args.candidates, not args.no_compile))
        except Exception:  # keep what the other shape measured
            results["runs"].append({"shape": shape, "error": traceback.format_exc()})
        print(json.dumps(results["runs"][-1]), flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
