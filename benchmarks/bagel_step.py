"""BAGEL-7B-MoT's plan, image and one MILR step on random weights: milr's fast path against a
reference-style loop, in one run on one GPU.

Builds the BAGEL-7B-MoT shape (Qwen2-7B mixture-of-transformers, two experts: 14B parameters;
FLUX VAE; 1024 px = 64 x 64 latent tokens) with random bfloat16 weights, no download, and runs
milr's engine for step 0 (plan + image) and one MILR step (text-latent update, plan continued
after the new prefix, image redrawn) with the reference's settings: 50 flow steps, timestep
shift 3, text CFG 4 inside (0.4, 1], greedy text, text ratio 0.1, lr 0.01. A zero-reward critic
keeps the search going and costs nothing.

`fast`: prompt and plan KV reused across flow steps and MILR steps, forced prefix in one call,
the two guidance branches in one batch. `reference-style`: the data flow of ByteDance's
inferencer and of the MILR authors' BAGEL script (prompt and plan run again at every step,
forced tokens one at a time, guidance branches one after the other), on the same modules.

    python benchmarks/bagel_step.py --out benchmarks/results/bagel_step.json
    python benchmarks/bagel_step.py --shape tiny --device cpu --flow-steps 4 --plan-tokens 8   # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

SHAPES = {
    # llm_config.json of ByteDance-Seed/BAGEL-7B-MoT (Qwen2.5-7B); FLUX's VAE; 1024 px images
    "7b-mot": dict(
        llm=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                 num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768, rope_theta=1000000.0,
                 rms_norm_eps=1e-6, tie_word_embeddings=False),
        vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16),
        max_latent_side=64,
        resolution=1024,
    ),
    "tiny": dict(llm=None, vae=dict(block_out_channels=(32, 32), layers_per_block=1, latent_channels=4),
                 max_latent_side=8, resolution=32),
}


def build(shape: str, device: torch.device, dtype: torch.dtype):
    from diffusers import AutoencoderKL
    from transformers import Qwen2Config

    from milr_bagel.model import random_bagel
    from milr_bagel.tiny import LLM, build_tokenizer
    from milr_bagel.vae import SCALE, SHIFT

    spec = SHAPES[shape]
    tokenizer = build_tokenizer()
    llm = Qwen2Config(**(spec["llm"] or dict(LLM, vocab_size=len(tokenizer))))
    vae_spec = spec["vae"]
    model = random_bagel(llm, vae_spec["latent_channels"], 2, spec["max_latent_side"], device, dtype)
    levels = len(vae_spec["block_out_channels"])
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
                        norm_num_groups=32, scaling_factor=SCALE, shift_factor=SHIFT, use_quant_conv=False,
                        use_post_quant_conv=False, **vae_spec)
    return model, vae.to(device).eval().requires_grad_(False), tokenizer


class ZeroCritic:
    """Reward 0 for every image: the search never stops early, and scoring costs nothing."""

    name = "zero"

    def check(self, record) -> None:
        return None

    def score(self, images, record):
        from milr_core.interfaces import Score

        return [Score(0.0, "benchmark") for _ in images]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_calls(backbone, device: torch.device) -> dict[str, list[float]]:
    """Wrap `reason` and `draw` so that each call's seconds are recorded."""
    seconds: dict[str, list[float]] = {"reason": [], "draw": []}
    for name in seconds:
        original = getattr(backbone, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            sync(device)
            t = time.perf_counter()
            out = _original(*args, **kwargs)
            sync(device)
            seconds[_name].append(time.perf_counter() - t)
            return out

        setattr(backbone, name, wrapper)
    return seconds


def measure(parts, fast: bool, device: torch.device, flow_steps: int, plan_tokens: int, resolution: int) -> dict:
    from milr_bagel.backbone import BagelBackbone
    from milr_core.config import RunConfig
    from milr_core.engine import Milr
    from milr_core.interfaces import PromptRecord
    from milr_core.strategies import TextOnly

    model, vae, tokenizer = parts
    bb = BagelBackbone(model, vae, tokenizer, name="random-bagel", resolution=resolution, flow_steps=flow_steps, fast=fast)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    seconds = timed_calls(bb, device)
    config = RunConfig(steps=1, lr=0.01, text_ratio=0.1, threshold=1.0, cfg_scale=4.0, text_temperature=0.0,
                       continuation_temperature=0.0, max_reasoning_tokens=plan_tokens, seed=0)
    prompt = "a photo of a red cube left of a blue ball"
    sync(device)
    t = time.perf_counter()
    result = Milr(bb, ZeroCritic(), TextOnly(), config).run(PromptRecord(prompt))
    sync(device)
    return {
        "path": "fast" if fast else "reference-style",
        "plan_s": round(seconds["reason"][0], 3),
        "plan_tokens": plan_tokens,
        "image_s": round(seconds["draw"][0], 3),
        "milr_step_s": round(result.steps[1].seconds, 3),
        "milr_step_plan_s": round(seconds["reason"][1], 3),
        "milr_step_image_s": round(seconds["draw"][1], 3),
        "step0_s": round(result.steps[0].seconds, 3),
        "run_s": round(time.perf_counter() - t, 3),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="7b-mot", choices=sorted(SHAPES))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--flow-steps", type=int, default=50)
    ap.add_argument("--plan-tokens", type=int, default=128)
    ap.add_argument("--dtype", default=None, choices=["bfloat16", "float32"], help="default: bfloat16 on CUDA, else float32")
    ap.add_argument("--out", default="bagel_step.json")
    args = ap.parse_args()
    import diffusers
    import transformers

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    sync(device)
    t = time.perf_counter()
    parts = build(args.shape, device, dtype)
    sync(device)
    build_s = time.perf_counter() - t
    resolution = SHAPES[args.shape]["resolution"]
    from milr_bagel.backbone import BagelBackbone

    # untimed warm-up on the real shapes (kernels, allocator): a whole plan, and two flow steps down each path
    plan = BagelBackbone(*parts, resolution=resolution).reason("warm up", None, args.plan_tokens).text[0]
    for fast in (True, False):
        warm = BagelBackbone(*parts, resolution=resolution, flow_steps=2, fast=fast)
        warm.draw("warm up", [plan], None, cfg_scale=4.0, temperature=1.0, keep_hidden=0)
    results = {
        "what": "BAGEL think-then-generate with random weights: the plan, one image (CFG, flow steps below), and one MILR "
                "text-only step (update + plan continued after the new prefix + image), through milr's engine",
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype).split(".")[-1],
        "shape": args.shape,
        "params_b": round(sum(p.numel() for p in parts[0].parameters()) / 1e9, 3),
        "resolution": resolution,
        "flow_steps": args.flow_steps,
        "cfg": {"text_scale": 4.0, "interval": [0.4, 1.0], "timestep_shift": 3.0},
        "build_s": round(build_s, 2),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "diffusers": diffusers.__version__, "python": platform.python_version()},
        "runs": [],
    }
    for fast in (True, False):
        results["runs"].append(measure(parts, fast, device, args.flow_steps, args.plan_tokens, resolution))
        print(json.dumps(results["runs"][-1]), flush=True)
    fast_run, ref_run = results["runs"]
    results["speedup"] = {k: round(ref_run[k] / fast_run[k], 2) for k in ("plan_s", "image_s", "milr_step_s")}
    print(json.dumps(results["speedup"]))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
