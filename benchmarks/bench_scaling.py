"""Speed-up of `milr bench` from 1 GPU to N GPUs under torchrun (issue 7).

Saves a random-weight Janus-Pro-shaped checkpoint once (1B or 7B text config, the
real 384 px / 576-token vision and VQ parts; no download), then runs the same
`milr bench shapes` MILR command under `torchrun --standalone --nproc-per-node W`
for W = 1 and W = N, each on its own empty output folder, and reports wall time
(process start to merged summary, model loading included), the busiest rank's
compute time (sum of its prompts' result.json seconds), the speed-ups, and
whether both runs wrote byte-identical images. The critic is the shapes oracle
and the threshold 1.0, so every prompt runs all K steps: equal work per prompt.

    python benchmarks/bench_scaling.py --shape 1b --gpus 2 --out benchmarks/results/bench_scaling.json

`--shape tiny` runs the same thing on the CPU with gloo, in a minute (a smoke test of this script).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch


def checkpoint(shape: str, folder: Path) -> Path:
    """The random-weight checkpoint folder, built on first use."""
    if (folder / "config.json").exists():
        return folder
    from milr_janus.tiny import build_tiny, save_checkpoint

    if shape == "tiny":
        return build_tiny(folder)
    sys.path.insert(0, str(Path(__file__).parent))
    from janus_step import build  # the published 1B/7B text configs

    backbone = build(shape, "cuda", torch.bfloat16)
    save_checkpoint(backbone.model, backbone.tokenizer, folder)
    del backbone
    torch.cuda.empty_cache()
    return folder


def bench_command(world: int, args, ckpt: Path, config: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world),
        "-m", "milr_core", "bench", "shapes", "--limit", str(args.prompts), "--mode", "milr",
        "--steps", str(args.steps), "--critic", "shapes-oracle", "--backbone", str(ckpt),
        "--config", str(config), "--out", str(out), "--json",
    ]


def run(world: int, args, ckpt: Path, config: Path) -> dict:
    out = args.work / f"run-{world}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ)
    if torch.cuda.is_available():
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(world))
    cmd = bench_command(world, args, ckpt, config, out)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"world {world} failed:\n{done.stderr[-4000:]}")
    seconds = {i: json.loads((out / f"{i:05d}" / "result.json").read_text())["seconds"] for i in range(args.prompts)}
    per_rank = [round(sum(s for i, s in seconds.items() if i % world == r), 2) for r in range(world)]
    return {
        "world": world,
        "wall_s": round(wall, 2),
        "compute_s_per_rank": per_rank,
        "compute_s": max(per_rank),
        "mean_prompt_s": round(sum(seconds.values()) / len(seconds), 3),
        "command": " ".join(cmd),
        "out": str(out),
    }


def images(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob("*/samples/*.png"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="1b", choices=("1b", "7b", "tiny"))
    ap.add_argument("--gpus", type=int, default=2, help="N: processes of the parallel run")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1, help="K of MILR")
    ap.add_argument("--reasoning-tokens", type=int, default=64)
    ap.add_argument("--work", type=Path, default=Path("/tmp/milr-scaling"))
    ap.add_argument("--out", default="benchmarks/results/bench_scaling.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint(args.shape, args.work / f"random-{args.shape}")
    config = args.work / "run.toml"
    config.write_text(f"max_reasoning_tokens = {args.reasoning_tokens}\nthreshold = 1.0\n")

    one, many = run(1, args, ckpt, config), run(args.gpus, args, ckpt, config)
    import transformers

    result = {
        "what": f"`milr bench shapes` MILR (K={args.steps}, {args.reasoning_tokens} reasoning tokens, shapes-oracle, "
                f"no early stop) on {args.prompts} prompts, random-weight {args.shape} Janus, 1 vs {args.gpus} "
                "torchrun processes; wall includes start-up and model loading",
        "devices": [torch.cuda.get_device_name(i) for i in range(args.gpus)] if torch.cuda.is_available() else ["cpu"],
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "runs": [one, many],
        "speedup_wall": round(one["wall_s"] / many["wall_s"], 3),
        "speedup_compute": round(one["compute_s"] / many["compute_s"], 3),
        "identical_images": images(Path(one["out"])) == images(Path(many["out"])),
        "same_summary": json.loads((Path(one["out"]) / "summary.json").read_text())
        == json.loads((Path(many["out"]) / "summary.json").read_text()),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
