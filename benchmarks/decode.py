"""milr's fast decode path against a reference-style loop, at Janus-Pro 1B and 7B shapes.

Random weights built from the published configs (no download), bfloat16, one GPU,
both paths in the same process:
- reference style: eager loop over a dynamic KV cache, one CFG pair per call, the
  image regenerated from scratch, reasoning text continued by re-running the whole
  sequence for every new token (no KV cache) -- how the MILR reference code works;
- milr: static KV cache + CUDA-graph replay, prompt KV computed once per distinct
  row, candidates batched, reasoning text continued with the KV cache.
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
        hidden = bb.lm(input_ids=ids, use_cache=False).last_hidden_state[:, -1]
        ids = torch.cat([ids, bb.model.lm_head(hidden).argmax(-1, keepdim=True)], 1)
    return ids


def reference_step(bb, critic, record, text_tokens: int, m_v: int):
    """One reference-style MILR step: continue the text without a cache, redraw the image eagerly, score."""
    from milr_core.interfaces import PromptRecord

    bb.fast = False
    try:
        prefix = torch.arange(10, 10 + max(1, text_tokens // 4), device=bb.device)
        ids = reference_text(bb, PROMPT, prefix, text_tokens)
        text = bb.tokenizer.decode(ids[0], skip_special_tokens=True)
        g = torch.Generator(bb.device).manual_seed(0)
        d = bb.draw(PROMPT, [text], None, cfg_scale=5, temperature=1, keep_hidden=m_v, generator=g)
        critic.score(bb.decode(d.tokens), PromptRecord.from_dict(record))
    finally:
        bb.fast = True


@torch.no_grad()
def warm_eager(bb, steps: int = 16) -> None:
    from milr_janus.backbone import _EagerDecoder

    ids, mask = bb._image_prompt(PROMPT, ["warm up"])
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


def measure(shape: str, text_tokens: int, candidates: int) -> dict:
    from milr_core.config import RunConfig
    from milr_core.engine import Milr, prefix_length
    from milr_core.interfaces import PromptRecord
    from milr_core.strategies import Joint
    from milr_rewards_geneval.shapes_oracle import ShapesOracle

    res: dict = {"shape": shape}
    critic = ShapesOracle()
    gpu = DEVICE == "cuda"
    if shape != "7b":  # the equality check, in float32 first
        torch.backends.cuda.matmul.allow_tf32 = False
        bb32 = build(shape, DEVICE, torch.float32)
        res["float32_greedy"] = agreement(bb32)
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

    # milr
    draw(1)  # capture the graph for one candidate
    _, res["image_s"] = timed(lambda: draw(1))
    draw(candidates)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    _, res[f"image_{candidates}_candidates_s"] = timed(lambda: draw(candidates))
    if gpu:
        res[f"peak_gpu_gib_{candidates}_candidates"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    res["candidates_per_s"] = round(candidates / res[f"image_{candidates}_candidates_s"], 3)
    res["ref_candidates_per_s"] = round(1 / res["ref_image_s"], 3)
    bb.reason(PROMPT, None, text_tokens)  # graph for text
    r, t = timed(lambda: bb.reason(PROMPT, None, text_tokens))
    res["text_tokens"] = len(r.tokens[0])
    res["text_ms_per_token"] = round(1000 * t / max(1, len(r.tokens[0])), 2)

    record = PromptRecord.from_dict(RECORD)
    for samples in (1, candidates):
        cfg = RunConfig(steps=2, threshold=1.0, max_reasoning_tokens=text_tokens + text_tokens // 4, samples=samples, seed=0)
        result = Milr(bb, critic, Joint(), cfg).run(record)
        res[f"milr_step_s_samples_{samples}"] = round(result.steps[-1].seconds, 3)  # the second step: graphs warm
    if gpu:
        res["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    res["speedup_image"] = round(res["ref_image_s"] / res["image_s"], 2)
    res["speedup_8_vs_1_cost"] = round(res[f"image_{candidates}_candidates_s"] / res["image_s"], 2)
    res["speedup_text"] = round(res["ref_text_ms_per_token"] / res["text_ms_per_token"], 2)
    res["speedup_step"] = round(res["ref_step_s"] / res["milr_step_s_samples_1"], 2)
    if shape == "1b" and gpu:
        res["bfloat16_greedy"] = agreement(bb)
    for k, v in list(res.items()):
        if isinstance(v, float):
            res[k] = round(v, 3)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1b,7b")
    ap.add_argument("--text-tokens", type=int, default=64, help="reasoning tokens continued in one step")
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--out", default="decode.json")
    ap.add_argument("--device", default="cuda", help="cpu only for a smoke test, with --shapes tiny")
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
            results["runs"].append(measure(shape, args.text_tokens, args.candidates))
        except Exception:  # keep what the other shape measured
            results["runs"].append({"shape": shape, "error": traceback.format_exc()})
        print(json.dumps(results["runs"][-1]), flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
