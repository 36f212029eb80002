"""One MILR step end to end on Janus-Pro-shaped models with random weights.

Builds 1B- and 7B-shaped `JanusForConditionalGeneration` models from the
published configs (no download), wraps them in milr's JanusBackbone, and
times: one 576-token image with CFG, reasoning text per token, and a whole
MILR JOINT step (update + text continuation + image + reward with the exact
shapes oracle), with peak GPU memory. Writes one JSON file.

    python benchmarks/janus_step.py --out benchmarks/results/janus_step.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

# Llama text configs of Janus-Pro (deepseek-community/Janus-Pro-{1B,7B} config.json).
TEXT_CONFIGS = {
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=16),
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=30, num_attention_heads=32, num_key_value_heads=32),
}


def build(shape: str, device: str, dtype: torch.dtype):
    from transformers import JanusConfig, JanusForConditionalGeneration, JanusProcessor
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    from milr_janus.backbone import JanusBackbone
    from milr_janus.tiny import BOI, CHAT_TEMPLATE, IMAGE, build_tokenizer

    if shape == "tiny":  # CPU smoke tests of the benchmark scripts: milr_janus's tiny checkpoint
        import tempfile

        from milr_janus.tiny import build_tiny

        return JanusBackbone.from_pretrained(str(build_tiny(tempfile.mkdtemp())), device=device, dtype=str(dtype).split(".")[-1])
    tok = build_tokenizer()
    hidden = TEXT_CONFIGS[shape]["hidden_size"]
    ids = {k: tok.convert_tokens_to_ids(getattr(tok, f"{k}_token")) for k in ("bos", "eos", "pad")}
    cfg = JanusConfig(
        text_config=dict(model_type="llama", vocab_size=102400, max_position_embeddings=16384,
                         bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"], **TEXT_CONFIGS[shape]),
        vision_config=dict(projection_dim=hidden),  # SigLIP-L defaults: 384 px, 16 px patches, 576 tokens
        vq_config=dict(projection_dim=hidden, image_token_embed_dim=hidden),
        image_token_id=tok.convert_tokens_to_ids(IMAGE),
    )
    with torch.device(device):
        model = JanusForConditionalGeneration._from_config(cfg, dtype=dtype)
    model.generation_config.generation_kwargs = {"boi_token_id": tok.convert_tokens_to_ids(BOI)}
    processor = JanusProcessor(
        image_processor=JanusImageProcessorPil(size={"height": 384, "width": 384}, image_mean=[0.5] * 3, image_std=[0.5] * 3),
        tokenizer=tok, chat_template=CHAT_TEMPLATE, num_image_tokens=576,
    )
    return JanusBackbone(model, processor, name=f"random-{shape}")


def timed(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t


def measure(shape: str, reasoning_tokens: int) -> dict:
    from milr_core.config import RunConfig
    from milr_core.engine import Milr
    from milr_core.interfaces import PromptRecord
    from milr_core.strategies import Joint
    from milr_rewards_geneval.shapes_oracle import ShapesOracle

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    bb, build_s = timed(lambda: build(shape, "cuda", torch.bfloat16))
    prompt = "a photo of a red cube left of a blue ball"
    g = torch.Generator("cuda").manual_seed(0)
    bb.draw(prompt, ["warm up"], None, cfg_scale=5, temperature=1, keep_hidden=12, generator=g)  # kernels, allocator
    _, image_s = timed(lambda: bb.draw(prompt, ["a red cube on the left"], None, cfg_scale=5, temperature=1, keep_hidden=12, generator=g))
    r, text_s = timed(lambda: bb.reason(prompt, None, reasoning_tokens))
    n_text = len(r.tokens[0])
    _, decode_s = timed(lambda: bb.decode(torch.zeros(1, 576, dtype=torch.long, device="cuda")))

    cfg = RunConfig(steps=1, threshold=1.0, max_reasoning_tokens=reasoning_tokens, seed=0)
    milr = Milr(bb, ShapesOracle(), Joint(), cfg)
    result, run_s = timed(lambda: milr.run(PromptRecord.from_dict(
        {"prompt": prompt, "tag": "position", "include": [{"class": "square", "count": 1, "color": "red"},
                                                          {"class": "circle", "count": 1, "color": "blue", "position": ["left of", 0]}]})))
    return {
        "shape": shape,
        "params_b": round(sum(p.numel() for p in bb.model.parameters()) / 1e9, 3),
        "build_s": round(build_s, 2),
        "image_s": round(image_s, 3),
        "image_ms_per_token": round(1000 * image_s / 576, 2),
        "reasoning_tokens": n_text,
        "reasoning_ms_per_token": round(1000 * text_s / max(1, n_text), 2),
        "vq_decode_s": round(decode_s, 3),
        "step0_s": round(result.steps[0].seconds, 3),
        "step1_s": round(result.steps[1].seconds, 3),
        "milr_run_s": round(run_s, 3),
        "step1_groups": result.steps[1].groups,
        "step1_loss": result.steps[1].loss,
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1b,7b")
    ap.add_argument("--reasoning-tokens", type=int, default=128)
    ap.add_argument("--out", default="janus_step.json")
    args = ap.parse_args()
    import transformers

    results = {
        "what": "one MILR JOINT step (update + reasoning continuation + 576-token CFG image + shapes-oracle reward), "
                "milr's eager KV-cached path, random weights, bfloat16",
        "device": torch.cuda.get_device_name(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()},
        "runs": [],
    }
    for shape in args.shapes.split(","):
        results["runs"].append(measure(shape, args.reasoning_tokens))
        print(json.dumps(results["runs"][-1]), flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
