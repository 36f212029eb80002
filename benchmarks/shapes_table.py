"""Collect `milr bench shapes` folders into one JSON: accuracy per category, mean images per prompt.

The folders come from (2-core CPU, janus-shapes, shapes-oracle, 200 held-out prompts, seeds 0 + index;
`--seed 100000` for the *-seed2 replicates; bon07.toml holds `text_temperature = 0.7`, nograd.toml
`lr = 1e-9`, lr03.toml `lr = 0.3`, greedy.toml `continuation_temperature = 0`, nograd-greedy.toml both
`lr = 1e-9` and `continuation_temperature = 0`):

    milr bench shapes --mode baseline --backbone janus-shapes --out runs/shapes-baseline
    milr bench shapes --mode baseline --backbone janus-shapes --seed 100000 --out runs/shapes-baseline-seed2
    milr bench shapes --mode baseline --backbone janus-shapes --config bon07.toml --out runs/shapes-baseline-sampled-text
    milr bench shapes --mode milr --backbone janus-shapes --steps 10 --out runs/shapes-milr-joint-v3
    milr bench shapes --mode milr --backbone janus-shapes --steps 10 --seed 100000 --out runs/shapes-milr-joint-v3-seed2
    milr bench shapes --mode milr --backbone janus-shapes --steps 10 --samples 4 --out runs/shapes-milr-joint-s4-v3
    milr bench shapes --mode milr --strategy text-only --backbone janus-shapes --steps 10 --out runs/shapes-milr-text-only-v3
    milr bench shapes --mode milr --strategy image-only --backbone janus-shapes --steps 10 --out runs/shapes-milr-image-only-v3
    milr bench shapes --mode milr --backbone janus-shapes --steps 10 --config nograd.toml --out runs/shapes-milr-joint-nograd
    milr bench shapes --mode milr --backbone janus-shapes --steps 10 --config lr03.toml --out runs/shapes-milr-joint-lr0.3
    milr bench shapes --mode milr --backbone janus-shapes --steps 10 --config greedy.toml --out runs/shapes-milr-joint-v2
    milr bench shapes --mode milr --backbone janus-shapes --steps 10 --config nograd-greedy.toml \
        --out runs/shapes-milr-joint-nograd-greedy
    milr bench shapes --mode milr --strategy alt --backbone janus-shapes --steps 10 --out runs/shapes-milr-alt-v3
    milr bench shapes --mode best-of-n --backbone janus-shapes --n-from runs/shapes-milr-joint-v3 --out runs/shapes-best-of-n
    milr bench shapes --mode best-of-n --backbone janus-shapes --n-from runs/shapes-milr-joint-v3 --config bon07.toml \
        --out runs/shapes-best-of-n-sampled-text
    milr bench shapes --mode best-of-n --backbone janus-shapes --n-from runs/shapes-milr-joint-s4-v3 --out runs/shapes-best-of-n-s4-v3
    milr bench shapes --mode best-of-n --backbone janus-shapes --n-from runs/shapes-milr-joint-s4-v3 --config bon07.toml \
        --out runs/shapes-best-of-n-s4-sampled-text
    milr bench shapes --mode best-of-n --backbone janus-shapes --n 8 --out runs/shapes-best-of-n-s4

    python benchmarks/shapes_table.py runs/shapes-baseline runs/shapes-baseline-seed2 ... --out benchmarks/results/shapes.json

The same on a GPU (bfloat16, CUDA's random streams), folders gpu-baseline, gpu-milr, gpu-milr-s4 made with
`--device cuda` and otherwise the commands of shapes-baseline, shapes-milr-joint-v3, shapes-milr-joint-s4-v3:

    python benchmarks/shapes_table.py gpu-* --device "NVIDIA H100 80GB HBM3" --out benchmarks/results/shapes_gpu.json

(shapes-milr-joint-v2 and shapes-best-of-n{,-s4} were made before `continuation_temperature` existed,
with the greedy continuation that greedy.toml asks for now; greedy Best-of-N did not change.)
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


SETTINGS = ("strategy", "steps", "samples", "lr", "threshold", "seed", "text_temperature", "continuation_temperature")


def row(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    settings = json.loads((folder / "config.json").read_text())["settings"]
    return {
        "folder": folder.name,
        "mode": settings["mode"],
        "settings": {k: settings["run"].get(k) for k in SETTINGS} | {"n": settings.get("n")},
        "accuracy": {tag: round(v["accuracy"], 3) for tag, v in summary["tags"].items()},
        "overall": round(summary["overall"]["accuracy"], 3),
        "mean_images": round(summary["all"]["images"], 2),
        "mean_steps": round(summary["all"]["steps"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default=f"CPU ({platform.machine()}), 2 cores", help="Where the folders were made.")
    args = ap.parse_args()
    rows = [row(f) for f in args.folders if (f / "summary.json").exists()]
    tags = list(rows[0]["accuracy"])
    print(f"{'run':28} " + " ".join(f"{t[:9]:>9}" for t in tags) + "  overall  images")
    for r in rows:
        print(f"{r['folder']:28} " + " ".join(f"{r['accuracy'][t]:9.3f}" for t in tags) + f"  {r['overall']:7.3f}  {r['mean_images']:6.2f}")
    result = {"what": "milr bench shapes on 200 held-out prompts (seed 7000001), janus-shapes + shapes-oracle",
              "device": args.device, "runs": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
