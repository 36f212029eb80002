"""The scenes table (issue 17): every row one `milr bench scenes` command on the same held-out prompts,
two seeds (0 and 100000, prompt i's run using seed + i), judged by scenes-oracle.

Rows (K = 10 for every search unless the row is about the budget; threshold 0.9 throughout):

1. baseline (step 0); Best-of-11 with greedy and with sampled text (11 = K + 1, the most a K = 10
   search draws) and Best-of-16 with sampled text (the budget of 2.); milr (the default preset);
   paper (`--preset paper`); resample and resample-paper (the same loops, frozen latents);
2. samples-1/2/4/8: samples per step at an equal budget of 16 images, samples x (K + 1) = 16;
3. estimator changes against milr: fraction-reward (dense rewards instead of binary), running-baseline
   (the mean of earlier rewards as baseline, with dense rewards: binary ones make it 0), image-lr-x3
   (image latents at 3x the text step), trust-region (every latent within L2 distance 1 of its start),
   advantage-norm (advantages over their spread; needs samples > 1, so at 4 samples, against samples-4);
4. prefix-first-score (both ratios times 2 - the first image's oracle score, per prompt) against the
   fixed 0.2 / 0.02 (milr) and against prefix-double (0.4 / 0.04 for every prompt: is it the adapting
   or just the larger prefix?);
5. self and self-l2: MILR guided by janus-scenes' own understanding branch (`--critic self`), without
   and with the L2 pull to the start latents (l2 = 1), judged by the oracle; the table adds the share of
   images the proxy passed (reward > 0.9) and the oracle failed.

    python benchmarks/scenes_ablation.py run --root runs/scenes-ablation --limit 100 --jobs 2 --device cpu
    python benchmarks/scenes_ablation.py table --root runs/scenes-ablation --out benchmarks/results/scenes.json
    python benchmarks/scenes_ablation.py pack --root runs/scenes-ablation --out scenes-ablation.tar.gz

On a GPU host: `run ... --jobs 42 --device cuda --gpus 4 --deadline 330` (the jobs spread evenly over the 4 GPUs).
Every command runs in float32 (`--dtype float32`) on any device, so GPU folders are the same computation
as the CPU commands. `table` reads whatever is finished: the prompts that every row finished (refused
when they cover the tags unevenly, as a run stopped early does, unless `--partial`); a folder missing
or empty is listed as not run. `pack` keeps what `table` needs (settings, per-prompt
results, oracle verdicts, traces), without images: run `table` before it, so that the self-guided rows'
images are judged while they exist.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import scenes_table
from ablation_shapes import bench_command

SEEDS = (0, 100000)
K = 10
BUDGET = 16  # images per prompt of the samples-per-step rows


@dataclass(frozen=True)
class Row:
    mode: str
    settings: dict = field(default_factory=dict)  # written to the row's config file
    steps: int | None = K  # None: no search (baseline, Best-of-N)
    n: int | None = None  # Best-of-N's N
    critic: str | None = None  # None: the benchmark's (scenes-oracle)


def _budget(samples: int, **settings) -> Row:
    return Row("milr", {"samples": samples, **settings}, BUDGET // samples - 1)


FRACTION = {"reward_shaping": "fraction"}
ROWS: dict[str, Row] = {
    "baseline": Row("baseline", steps=None),
    "best-of-11": Row("best-of-n", steps=None, n=K + 1),
    "best-of-11-sampled-text": Row("best-of-n", {"text_temperature": 0.7}, steps=None, n=K + 1),
    "best-of-16-sampled-text": Row("best-of-n", {"text_temperature": 0.7}, steps=None, n=BUDGET),
    "milr": Row("milr"),
    "paper": Row("milr", {"preset": "paper"}),
    "resample": Row("resample"),
    "resample-paper": Row("resample", {"preset": "paper"}),
    **{f"samples-{s}": _budget(s) for s in (1, 2, 4, 8)},
    "fraction-reward": Row("milr", FRACTION),
    "running-baseline": Row("milr", {**FRACTION, "running_baseline": True}),
    "image-lr-x3": Row("milr", {"image_lr_scale": 3.0}),
    "trust-region": Row("milr", {"trust_region": 1.0}),
    "advantage-norm": _budget(4, advantage_norm=True),
    "prefix-first-score": Row("milr", {"prefix_schedule": "first-score"}),
    "prefix-double": Row("milr", {"text_ratio": 0.4, "image_ratio": 0.04}),
    "self": Row("milr", critic="self"),
    "self-l2": Row("milr", {"l2": 1.0}, critic="self"),
}
#: (a, b): a minus b, paired by prompt, besides every row against resample
COMPARISONS = (
    ("milr", "baseline"), ("milr", "best-of-11"), ("milr", "best-of-11-sampled-text"), ("paper", "resample-paper"),
    ("paper", "milr"), *((f"samples-{s}", "best-of-16-sampled-text") for s in (1, 2, 4, 8)),
    *((f"samples-{s}", "samples-1") for s in (2, 4, 8)),
    *((v, "milr") for v in ("fraction-reward", "image-lr-x3", "trust-region", "prefix-first-score", "prefix-double")),
    ("running-baseline", "fraction-reward"), ("advantage-norm", "samples-4"), ("prefix-first-score", "prefix-double"),
    ("self-l2", "self"), ("self", "milr"),
)


def command(root: Path, name: str, seed: int, limit: int, steps: int | None, device: str | None) -> list[str]:
    """The row's `milr bench scenes` command; `steps` replaces every row's K (and N = steps + 1)."""
    row = ROWS[name]
    cmd = bench_command("scenes", row.mode, seed, row.settings, root / "configs" / f"{name}.toml",
                        root / f"{name}-s{seed}") + ["--limit", str(limit), "--dtype", "float32"]
    if row.steps is not None:
        cmd += ["--steps", str(row.steps if steps is None else steps)]
    if row.n is not None:
        cmd += ["--n", str(row.n if steps is None else steps + 1)]
    if row.critic:
        cmd += ["--critic", row.critic]
    if device:
        cmd += ["--device", device]
    return cmd


def run(root: Path, limit: int, jobs: int, steps: int | None, device: str | None, gpus: int,
        deadline: float | None) -> None:
    """Every row and seed, `jobs` processes at a time (spread evenly over `gpus`); at `deadline`
    seconds the unfinished are stopped, keeping the prompts they finished."""
    root.mkdir(parents=True, exist_ok=True)
    queue = [(n, s) for s in SEEDS for n in ROWS]
    base = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start, running = time.monotonic(), {}
    while queue or running:
        while queue and len(running) < jobs:
            name, seed = item = queue.pop(0)
            # the GPU with the fewest jobs now, so that GPUs stay even as jobs of unequal length end
            gpu = min(range(gpus), key=lambda g: sum(r[2] == g for r in running.values())) if gpus else None
            env = dict(base, **({"CUDA_VISIBLE_DEVICES": str(gpu)} if gpus else {}))
            log = open(root / f"{name}-s{seed}.log", "w")
            running[item] = (subprocess.Popen(command(root, name, seed, limit, steps, device), stdout=log,
                                              stderr=subprocess.STDOUT, env=env), log, gpu)
        for item, (proc, log, _) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[item]
                seconds = time.monotonic() - start
                print(f"{item[0]} seed {item[1]}: exit {proc.returncode} at {seconds:.0f} s", flush=True)
        if deadline is not None and time.monotonic() - start > deadline:
            for item, (proc, log, _) in running.items():
                proc.terminate()
                proc.wait()
                log.close()
                print(f"{item[0]} seed {item[1]}: stopped at the deadline", flush=True)
            running, queue = {}, []
        time.sleep(1)


def table(root: Path, out: Path, device: str, bootstrap: int, partial: bool = False) -> None:
    rows, missing = {}, []
    for name in ROWS:
        folders = []
        for s in SEEDS:
            folder = root / f"{name}-s{s}"
            if (folder / "config.json").is_file() and any(folder.glob("[0-9]" * 5 + "/result.json")):
                folders.append({**scenes_table.load_folder(folder), "folder": folder.name})
            else:
                missing.append(folder.name)
        if folders:
            rows[name] = folders
    if not rows:
        raise SystemExit(f"error: no finished bench folder under {root}")
    result = {"what": "benchmarks/scenes_ablation.py: milr bench scenes, janus-scenes, judged by scenes-oracle, "
                      f"K = {K}, threshold 0.9, seeds {list(SEEDS)}; every row against resample, paired by prompt",
              "device": device, "rows_defined": {n: vars(r) for n, r in ROWS.items()},
              **scenes_table.build(rows, "resample" if "resample" in rows else None, bootstrap, COMPARISONS,
                                 partial),
              "not_run": missing}
    for name, row in result["rows"].items():
        extra = f"  hacked {row['proxy_pass_oracle_fail']:.3f}" if "proxy_pass_oracle_fail" in row else ""
        print(f"{name:26} {row['accuracy']:.3f} {row['interval']}  images {row['mean_images']:5.2f}{extra}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} ({result['prompts']} prompts); not run: {', '.join(missing) or 'none'}")


def pack(root: Path, out: Path) -> None:
    """One .tar.gz of the folders without their images (what comes back from a device is few files)."""
    keep = ("config.json", "summary.json", "result.json", "metadata.jsonl", "trace.jsonl", "oracle.json")
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_file() and (path.name in keep or path.suffix in (".toml", ".log")):
                tar.add(path, arcname=str(path.relative_to(root.parent)))
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--root", type=Path, default=Path("runs/scenes-ablation"))
    r.add_argument("--limit", type=int, default=100, help="held-out prompts (balanced over the ten tags)")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--steps", type=int, default=None, help="every search's K, Best-of-N's N = K + 1 (smoke runs)")
    r.add_argument("--device", default=None, help="cpu, cuda ... (default: the bench's own choice)")
    r.add_argument("--gpus", type=int, default=0, help="spread the jobs over this many GPUs")
    r.add_argument("--deadline", type=float, default=None, help="seconds; then stop what is unfinished")
    t = sub.add_parser("table")
    t.add_argument("--root", type=Path, default=Path("runs/scenes-ablation"))
    t.add_argument("--out", type=Path, default=Path("benchmarks/results/scenes.json"))
    t.add_argument("--device-name", default=f"CPU ({platform.machine()}), float32")
    t.add_argument("--bootstrap", type=int, default=2000)
    t.add_argument("--partial", action="store_true", help="allow prompts that cover the tags unevenly")
    p = sub.add_parser("pack")
    p.add_argument("--root", type=Path, default=Path("runs/scenes-ablation"))
    p.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.what == "run":
        run(args.root, args.limit, args.jobs, args.steps, args.device, args.gpus, args.deadline)
    elif args.what == "table":
        table(args.root, args.out, args.device_name, args.bootstrap, args.partial)
    else:
        pack(args.root, args.out)


if __name__ == "__main__":
    main()
