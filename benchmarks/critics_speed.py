"""Images per second of each detector critic, at real size with random weights.

Builds every critic of milr_rewards_geneval from its published architecture
(random_models.py: Mask2Former Swin-S + CLIP ViT-L-14, GroundingDINO Swin-B +
BLIP VQA base, CLIP ViT-L-14, CLIP ViT-B-32, DPT-hybrid MiDaS) with no download, and times
`critic.score` on a batch of 384 px images (one warm-up call, then the median
of --repeats calls), with the critics' own dtypes (detectors and BLIP float32,
CLIP under fp16 autocast on CUDA). The Mask2Former class head is biased towards
"dog" so that every image has confident objects and GenEval's colour path runs
as on real pictures; the other critics see what their random weights find.
Writes one JSON file.

    python benchmarks/critics_speed.py --out benchmarks/results/critics_speed.json
    python benchmarks/critics_speed.py --critics t2i-numeracy t2i-3d-spatial --update --out benchmarks/results/critics_speed.json
    python benchmarks/critics_speed.py --device cpu --small --out /tmp/critics_smoke.json   # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch
from PIL import Image

from milr_core.interfaces import PromptRecord
from milr_rewards_geneval import random_models as rm

COLOR_ATTR = PromptRecord(
    "a photo of a red dog and a blue car",
    "color_attr",
    [{"class": "dog", "count": 1, "color": "red"}, {"class": "car", "count": 1, "color": "blue"}],
)
RECORDS = {
    "geneval": COLOR_ATTR,
    "mixed": COLOR_ATTR,
    "clipscore": COLOR_ATTR,
    "t2i-clip": PromptRecord("A man is holding a book and reading on a park bench."),
    "t2i-blip-vqa": PromptRecord("a red book and a yellow vase"),
    "t2i-spatial": PromptRecord("a bag on the left of a chair"),
    "t2i-numeracy": PromptRecord("three bags and a chair"),
    "t2i-3d-spatial": PromptRecord("a bag in front of a chair"),
}


def build(name: str, small: bool, device: torch.device):
    """(critic, the torch modules it runs)."""
    from milr_rewards_geneval.clip_score import CLIPSCORE, T2I_CLIP, ClipScore
    from milr_rewards_geneval.geneval_oracle import CLASSES, ColorClassifier, GenevalOracle
    from milr_rewards_geneval.grounding import Grounder
    from milr_rewards_geneval.mixed import MixedCritic
    from milr_rewards_geneval.depth import DepthEstimator
    from milr_rewards_geneval.t2i import T2I3DSpatial, T2IBlipVqa, T2INumeracy, T2ISpatial
    from milr_rewards_geneval.vqa import BlipYesNo

    modules = []

    def on_device(model_and_processor):
        model, processor = model_and_processor
        modules.append(model.to(device))
        return model, processor

    def clip(arch):
        model, preprocess, tokenizer = rm.open_clip(None if small else arch)
        modules.append(model.to(device))
        return model, preprocess, tokenizer

    if name == "geneval":
        model, processor = on_device(rm.mask2former(small))
        with torch.no_grad():
            model.class_predictor.bias[CLASSES.index("dog")] = 12.0
        critic = GenevalOracle(model, processor, ColorClassifier(*clip("ViT-L-14"), device=device))
    elif name == "mixed":
        critic = MixedCritic(Grounder(*on_device(rm.grounding_dino(small))), BlipYesNo(*on_device(rm.blip_vqa(small))))
    elif name in ("clipscore", "t2i-clip"):
        arch, _, scale = CLIPSCORE if name == "clipscore" else T2I_CLIP
        critic = ClipScore(*clip(arch), scale=scale, name=name)
    elif name == "t2i-blip-vqa":
        critic = T2IBlipVqa(BlipYesNo(*on_device(rm.blip_vqa(small))))
    elif name == "t2i-numeracy":
        critic = T2INumeracy(Grounder(*on_device(rm.grounding_dino(small))))
    elif name == "t2i-3d-spatial":
        critic = T2I3DSpatial(Grounder(*on_device(rm.grounding_dino(small))), DepthEstimator(*on_device(rm.dpt(small))))
    else:
        critic = T2ISpatial(Grounder(*on_device(rm.grounding_dino(small))))
    return critic, modules


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, small: bool, device: torch.device, images: list, repeats: int) -> dict:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    critic, modules = build(name, small, device)
    sync(device)
    build_s = time.perf_counter() - start
    record = RECORDS[name]
    scores = critic.score(images, record)  # warm-up: kernels, allocator, cached text weights
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        critic.score(images, record)
        sync(device)
        times.append(time.perf_counter() - start)
    batch_s = statistics.median(times)
    result = {
        "images_per_s": round(len(images) / batch_s, 3),
        "seconds_per_batch": round(batch_s, 4),
        "all_seconds": [round(t, 4) for t in times],
        "build_s": round(build_s, 2),
        "parameters_m": round(sum(p.numel() for m in modules for p in m.parameters()) / 1e6, 1),
        "example": {"value": round(scores[0].value, 4), "detail": scores[0].detail[:200]},
    }
    if device.type == "cuda":
        result["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(f"{name:14s} {result['images_per_s']:8.2f} images/s  ({batch_s:.3f} s per {len(images)})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="tiny models (a CPU smoke test, not a measurement)")
    parser.add_argument("--critics", nargs="*", default=list(RECORDS), choices=list(RECORDS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--update", action="store_true", help="add to the critics already in --out")
    args = parser.parse_args()

    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)) for _ in range(args.batch)
    ]
    results = {name: measure(name, args.small, device, images, args.repeats) for name in args.critics}

    import open_clip
    import transformers

    out = {
        "what": "critic.score on a batch of random-noise images, random weights, real architectures"
        + (" (SMALL test models)" if args.small else ""),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "batch": args.batch,
        "image_size": args.size,
        "repeats": args.repeats,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "open_clip": open_clip.__version__,
        },
        "critics": results,
    }
    if args.update:
        with open(args.out) as f:
            earlier = json.load(f)
        if earlier["device"] != out["device"]:
            raise SystemExit(f"{args.out} was measured on {earlier['device']}, this is {out['device']}")
        out["critics"] = {**earlier["critics"], **results}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
