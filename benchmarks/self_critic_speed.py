"""Images per second of the `self` critic (Janus's own understanding branch) at Janus-Pro 1B and 7B shapes.

Random weights from the published configs (janus_step.build), bfloat16 on CUDA; one warm-up call,
then the median of --repeats calls of `SelfCritic.score` on a batch of 384 px images. Writes JSON.

    python benchmarks/self_critic_speed.py --out benchmarks/results/self_critic_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from PIL import Image

from janus_step import build


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1b,7b")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="self_critic_speed.json")
    args = ap.parse_args()
    from milr_core.interfaces import PromptRecord
    from milr_janus.self_critic import SelfCritic

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (384, 384, 3), dtype=np.uint8)) for _ in range(args.batch)]
    record = PromptRecord("a photo of a red cube left of a blue ball")
    gpu = args.device == "cuda"
    results = {"device": torch.cuda.get_device_name() if gpu else "cpu", "batch": args.batch, "runs": []}
    for shape in args.shapes.split(","):
        critic = SelfCritic.from_backbone(build(shape, args.device, torch.bfloat16 if gpu else torch.float32))
        critic.score(images, record)
        times = []
        for _ in range(args.repeats):
            if gpu:
                torch.cuda.synchronize()
            t = time.perf_counter()
            scores = critic.score(images, record)
            if gpu:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        s = statistics.median(times)
        run = {"shape": shape, "seconds_per_batch": round(s, 4), "images_per_s": round(args.batch / s, 2),
               "values_in_range": all(0 <= x.value <= 1 for x in scores)}
        if gpu:
            run["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        results["runs"].append(run)
        print(json.dumps(run), flush=True)
        del critic
        if gpu:
            torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
