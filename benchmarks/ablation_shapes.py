"""What each of milr's departures from the paper does, on janus-shapes' 200 held-out prompts.

Every row is one `milr bench shapes` command (K = 10 for every search, so the rows differ only in the
setting named), run with two seeds (0 and 100000, prompt i's run using seed + i). Rows:

- baseline: the plain model (step 0);
- paper: `--preset paper` (the MILR authors' procedure; K = 10 instead of its 30);
- milr: the default preset (the paper's procedure with the reasoning continuation sampled at 0.7);
- milr with one setting changed to the alternative milr used before this table, one row each (the
  best-image row needs no run of its own: the search is milr's, only the returned image differs, read
  from milr's trace);
- resample / resample-paper: the same loops with frozen latents (`--mode resample`);
- best-of-n: Best-of-N with N = milr's mean images per prompt (rounded), greedy and sampled text.

    python benchmarks/ablation_shapes.py run --jobs 24 --device cuda --gpus 4   # bench folders in runs/ablation/
    python benchmarks/ablation_shapes.py table --device-name "4x NVIDIA H100 80GB HBM3, bfloat16"

`table` reads whatever folders are finished: accuracy and mean images per seed, and for each row the
difference from `milr` paired by prompt and seed with a bootstrap 95% interval over prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path("runs/ablation")
SEEDS = (0, 100000)
K = 10
#: name -> (mode, settings written to the row's config file); milr's own choice is in the comment
ROWS: dict[str, tuple[str, dict]] = {
    "baseline": ("baseline", {}),
    "milr": ("milr", {}),
    "paper": ("milr", {"preset": "paper"}),  # = milr with the greedy continuation (K = 10 here)
    "resample": ("resample", {}),
    "resample-paper": ("resample", {"preset": "paper"}),
    "milr+conditional-policy": ("milr", {"image_policy": "conditional"}),  # milr and paper: guided
    "milr+drawn-target": ("milr", {"loss_target": "drawn"}),  # milr and paper: argmax
    "milr+ceil-prefix": ("milr", {"prefix_rule": "ceil"}),  # milr and paper: floor
    "milr+fraction-reward": ("milr", {"reward_shaping": "fraction"}),  # milr and paper: binary
    "best-of-n": ("best-of-n", {}),
    "best-of-n-sampled-text": ("best-of-n", {"text_temperature": 0.7}),
}


def bench_command(benchmark: str, mode: str, seed: int, settings: dict, config: Path, out: Path) -> list[str]:
    """`milr bench` with the row's settings written to `config` (a TOML file) and its JSON summary."""
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    return [sys.executable, "-m", "milr_core", "bench", benchmark, "--mode", mode, "--seed", str(seed),
            "--config", str(config), "--out", str(out), "--json"]


def command(name: str, seed: int, device: str | None = None) -> list[str]:
    mode, settings = ROWS[name]
    cmd = bench_command("shapes", mode, seed, settings, ROOT / "configs" / f"{name}.toml", ROOT / f"{name}-s{seed}")
    if mode in ("milr", "resample"):
        cmd += ["--steps", str(K)]
    if mode == "best-of-n":
        cmd += ["--n-from", str(ROOT / f"milr-s{seed}")]
    if device:
        cmd += ["--device", device]
    return cmd


def run(jobs: int, device: str | None = None, gpus: int = 0) -> None:
    """`jobs` bench processes at a time; with `gpus`, job i sees GPU i mod gpus alone."""
    base = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # seed 0 of every row first (best-of-n last: it needs milr's images per prompt), then seed 100000
    order = [(n, s) for s in SEEDS for n in ROWS if not n.startswith("best-of-n")]
    order += [(n, s) for s in SEEDS for n in ROWS if n.startswith("best-of-n")]

    def one(item):
        name, seed = item
        env = dict(base)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(order.index(item) % gpus)
        log = ROOT / f"{name}-s{seed}.log"
        with open(log, "w") as f:
            done = subprocess.run(command(name, seed, device), stdout=f, stderr=subprocess.STDOUT, env=env)
        print(f"{name} seed {seed}: exit {done.returncode}", flush=True)

    ROOT.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, [i for i in order if not i[0].startswith("best-of-n")]))
        list(pool.map(one, [i for i in order if i[0].startswith("best-of-n")]))


def _prompts(folder: Path, best: bool = False) -> dict[int, tuple[bool, int]] | None:
    """prompt index -> (correct, images) of a finished bench folder, else None; `best`: judge the
    image of each search's highest reward (the earliest of equals) instead of the returned one."""
    if not (folder / "summary.json").is_file():
        return None
    out = {}
    for path in sorted(folder.glob("[0-9]" * 5 + "/result.json")):
        sample = json.loads(path.read_text())["samples"][0]
        correct = sample["correct"]
        if best:
            steps = [json.loads(line) for line in (path.parent / "trace.jsonl").read_text().splitlines()]
            top = max(range(len(steps)), key=lambda k: (steps[k]["rewards"][0] or 0.0, -k))
            correct = steps[top]["correct"][0]
        out[int(path.parent.name)] = (bool(correct), int(sample["images"]))
    summary = json.loads((folder / "summary.json").read_text())
    return out if summary["finished"] == summary["prompts"] else None


def bootstrap(diffs: dict[int, list[float]], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean paired difference, resampling prompts (each keeps its seeds)."""
    keys, rng = sorted(diffs), random.Random(seed)
    means = []
    for _ in range(rounds):
        pick = [diffs[rng.choice(keys)] for _ in keys]
        flat = [d for ds in pick for d in ds]
        means.append(sum(flat) / len(flat))
    means.sort()
    return means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


DERIVED = {"milr+best-image": ("milr", {"return_image": "best"})}  # milr and paper: last


def compare(runs: dict, name: str, reference: str) -> dict | None:
    """Mean correctness of `name` minus `reference`, paired by prompt and seed, with its interval."""
    diffs: dict[int, list[float]] = {}
    for s in SEEDS:
        res, ref = runs[(name, s)], runs[(reference, s)]
        if res is None or ref is None:
            continue
        for i in res.keys() & ref.keys():
            diffs.setdefault(i, []).append(float(res[i][0]) - float(ref[i][0]))
    if not diffs:
        return None
    flat = [d for ds in diffs.values() for d in ds]
    low, high = bootstrap(diffs)
    return {"difference": round(sum(flat) / len(flat), 4), "ci95": [round(low, 4), round(high, 4)], "pairs": len(flat)}


def table(out: Path, device: str, note: str | None = None) -> None:
    runs = {(n, s): _prompts(ROOT / f"{n}-s{s}") for n in ROWS for s in SEEDS}
    runs.update({("milr+best-image", s): _prompts(ROOT / f"milr-s{s}", best=True) for s in SEEDS})
    rows = []
    for name, (mode, settings) in {**ROWS, **DERIVED}.items():
        per_seed = {}
        for s in SEEDS:
            res = runs[(name, s)]
            if res is not None:
                per_seed[s] = {
                    "accuracy": round(sum(c for c, _ in res.values()) / len(res), 4),
                    "mean_images": round(sum(i for _, i in res.values()) / len(res), 3),
                    "prompts": len(res),
                }
        row = {"row": name, "mode": mode, "settings": settings, "seeds": per_seed}
        if per_seed:
            accs = [v["accuracy"] for v in per_seed.values()]
            row["accuracy"] = round(sum(accs) / len(accs), 4)
            row["seed_spread"] = round(max(accs) - min(accs), 4)
            row["mean_images"] = round(sum(v["mean_images"] for v in per_seed.values()) / len(per_seed), 3)
        if name != "milr" and (paired := compare(runs, name, "milr")):
            row["vs_milr"] = paired
        rows.append(row)
    # what the gradient adds: each search against its frozen-latent control, at the images each spent
    gradient = {f"{a} - {b}": compare(runs, a, b) for a, b in (("milr", "resample"), ("paper", "resample-paper"))}
    missing = [f"{n}-s{s}" for (n, s), r in runs.items() if r is None]
    result = {
        "what": "milr bench shapes on the 200 held-out prompts (seed 7000001): janus-shapes + shapes-oracle, "
                f"K = {K}, threshold 0.9, seeds {list(SEEDS)} (prompt i uses seed + i); vs_milr: paired by prompt "
                "and seed, bootstrap 95% interval over prompts",
        "device": device,
        "command": "python benchmarks/ablation_shapes.py run --jobs 24 --device cuda --gpus 4",
        "rows": rows,
        "gradient": gradient,
        "not_run": missing,
        **({"note": note} if note else {}),
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}; not run: {', '.join(missing) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    runner = sub.add_parser("run")
    runner.add_argument("--jobs", type=int, default=2)
    runner.add_argument("--device", default=None, help="cpu, cuda ... (default: the bench's own choice)")
    runner.add_argument("--gpus", type=int, default=0, help="spread the jobs over this many GPUs")
    tab = sub.add_parser("table")
    tab.add_argument("--out", type=Path, default=Path("benchmarks/results/ablation_shapes.json"))
    tab.add_argument("--device-name", default=f"CPU ({platform.machine()}), {os.cpu_count()} cores, float32")
    tab.add_argument("--note", default=None, help="how the folders came about, where that is not the command")
    args = parser.parse_args()
    run(args.jobs, args.device, args.gpus) if args.what == "run" else table(args.out, args.device_name, args.note)


if __name__ == "__main__":
    main()
