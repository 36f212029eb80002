"""Collect `milr bench scenes` folders into one JSON: accuracy with bootstrap 95% intervals paired by
prompt, the difference to a reference row, mean images per prompt, and for runs guided by another
critic than the oracle (`--critic self`), how often that proxy passed an image the oracle fails.

A row is LABEL=FOLDER[,FOLDER...]: one folder per seed over the same prompts (a prompt's value is
the mean over its seeds). Every image is judged by scenes-oracle: a folder guided by the oracle
keeps its own verdicts; any other folder's final images are judged again from their PNGs (the verdict
is kept beside the image as oracle.json, which later runs read instead, so the PNGs can then go), and
its proxy "passes" an image whose guiding reward exceeded the run's threshold (the search's stop rule).

Intervals: B resamples of the prompts, drawn within each tag (the overall score is GenEval's mean
over tags, so each tag keeps its size); each row's overall and its difference to the reference row
are computed on the same resample (paired), and the 2.5th and 97.5th percentiles reported.

    python benchmarks/scenes_table.py baseline=runs/scenes-baseline,runs/scenes-baseline-s2 \
        milr=runs/scenes-milr,runs/scenes-milr-s2 --reference baseline --out benchmarks/results/scenes.json

benchmarks/results/scenes.json holds the one row measured so far (docs/research.md):

    OMP_NUM_THREADS=1 milr bench scenes --mode baseline --limit 50 --seed 0 --out runs/scenes-baseline
    python benchmarks/scenes_table.py baseline=runs/scenes-baseline --out benchmarks/results/scenes.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

SETTINGS = ("strategy", "steps", "samples", "lr", "threshold", "seed", "preset", "frozen", "l2", "reward_shaping",
            "text_ratio", "image_ratio", "advantage_norm", "trust_region", "image_lr_scale", "running_baseline",
            "prefix_schedule", "text_temperature")


def load_folder(folder: Path) -> dict:
    """Per prompt index: tag, oracle correctness, proxy pass (None when guided by the oracle), images."""
    from milr_rewards_geneval.scenes_oracle import ScenesOracle
    from PIL import Image

    from milr_core.files import atomic_json
    from milr_core.interfaces import PromptRecord

    config = json.loads((folder / "config.json").read_text())["settings"]
    by_oracle = config.get("critic") == "scenes-oracle"
    oracle, records = ScenesOracle(), {}
    for path in sorted(folder.glob("[0-9]" * 5 + "/result.json")):
        result = json.loads(path.read_text())
        (sample,) = result["samples"]  # one image per prompt: the table's unit is the prompt
        if by_oracle:
            correct, proxy = bool(sample["correct"]), None
        else:
            kept = path.parent / "oracle.json"
            if not kept.is_file():
                meta = json.loads((path.parent / "metadata.jsonl").read_text().splitlines()[0])
                verdict = oracle.verdict(Image.open(path.parent / sample["file"]), PromptRecord.from_dict(meta))
                atomic_json(kept, {"file": sample["file"], "correct": verdict.correct,
                                   "fraction": verdict.fraction, "reason": verdict.reason})
            correct = json.loads(kept.read_text())["correct"]
            proxy = sample["reward"] is not None and sample["reward"] > config["run"]["threshold"]
        records[result["index"]] = {"tag": result["tag"], "correct": correct, "proxy": proxy,
                                    "images": sample["images"]}
    return {"settings": config, "prompts": records}


def overall(correct: np.ndarray, tags: np.ndarray) -> float:
    """GenEval's overall: the unweighted mean of the per-tag means."""
    return float(np.mean([correct[tags == t].mean() for t in np.unique(tags)]))


def resamples(tags: np.ndarray, b: int, seed: int = 0) -> np.ndarray:
    """(b, n) prompt indices, each row drawn with replacement within each tag."""
    rng = np.random.default_rng(seed)
    out = np.empty((b, len(tags)), dtype=int)
    for t in np.unique(tags):
        where = np.nonzero(tags == t)[0]
        out[:, where] = rng.choice(where, size=(b, len(where)))
    return out


def interval(values: np.ndarray) -> list[float]:
    return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]


def build(rows: dict[str, list[dict]], reference: str | None, b: int,
          comparisons: tuple[tuple[str, str], ...] = (), partial: bool = False) -> dict:
    """The table; `comparisons` (a, b): a's accuracy minus b's, paired, beside the reference's.
    The prompts every folder finished must cover the tags the folders hold evenly (held-out sets are
    ordered by tag, so a run stopped early holds the first tags only), unless `partial`."""
    common = sorted(set.intersection(*(set(f["prompts"]) for fs in rows.values() for f in fs)))
    if not common:
        raise SystemExit("error: the folders share no finished prompt")
    first = next(iter(rows.values()))[0]["prompts"]
    tags = np.array([first[i]["tag"] for i in common])
    counts = {str(t): int((tags == t).sum()) for t in sorted(set(tags))}
    seen = {p["tag"] for fs in rows.values() for f in fs for p in f["prompts"].values()}
    if not partial and (set(counts) != seen or max(counts.values()) - min(counts.values()) > 1):
        raise SystemExit(f"error: the {len(common)} prompts every folder finished cover the tags unevenly "
                         f"({counts}; the folders hold {len(seen)} tags): an overall over them would not be "
                         "the benchmark's; finish the runs or pass --partial")
    draws = resamples(tags, b)

    def per_prompt(folders: list[dict], key: str) -> np.ndarray:
        return np.mean([[float(f["prompts"][i][key]) for i in common] for f in folders], axis=0)

    correct = {name: per_prompt(fs, "correct") for name, fs in rows.items()}
    boot = {name: np.array([overall(c[d], tags[d]) for d in draws]) for name, c in correct.items()}

    def paired(x: str, y: str) -> tuple[float, list[float]]:
        """x's overall minus y's, and its interval over the same resamples."""
        return round(overall(correct[x] - correct[y], tags), 4), interval(boot[x] - boot[y])
    table = {}
    for name, folders in rows.items():
        row = {
            "folders": [f["folder"] for f in folders],
            "seeds": [f["settings"]["run"].get("seed") for f in folders],
            "mode": folders[0]["settings"].get("mode"),
            "critic": folders[0]["settings"].get("critic"),
            "settings": {k: folders[0]["settings"]["run"].get(k) for k in SETTINGS},
            "accuracy": round(overall(correct[name], tags), 4),
            "interval": interval(boot[name]),
            "per_seed": [round(overall(per_prompt([f], "correct"), tags), 4) for f in folders],
            "mean_images": round(float(per_prompt(folders, "images").mean()), 2),
        }
        if reference and name != reference:
            row["minus_reference"], row["minus_reference_interval"] = paired(name, reference)
        if all(f["prompts"][common[0]]["proxy"] is not None for f in folders):
            proxy = per_prompt(folders, "proxy")
            row["proxy_pass"] = round(float(proxy.mean()), 4)
            hacked = np.mean([[float(f["prompts"][i]["proxy"] and not f["prompts"][i]["correct"]) for i in common]
                              for f in folders], axis=0)
            row["proxy_pass_oracle_fail"] = round(float(hacked.mean()), 4)
            row["proxy_pass_oracle_fail_interval"] = interval(np.array([hacked[d].mean() for d in draws]))
        table[name] = row
    differences = {f"{x} - {y}": dict(zip(("difference", "interval"), paired(x, y)))
                   for x, y in comparisons if x in rows and y in rows}
    return {"prompts": len(common), "tags": counts, "reference": reference, "bootstrap": b, "rows": table,
            **({"comparisons": differences} if comparisons else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows", nargs="+", help="LABEL=FOLDER[,FOLDER...]")
    ap.add_argument("--reference", help="row the others are compared with, paired by prompt")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--partial", action="store_true", help="allow prompts that cover the tags unevenly")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default=f"CPU ({platform.machine()}), 2 cores", help="where the folders were made")
    args = ap.parse_args()
    rows = {}
    for spec in args.rows:
        label, _, folders = spec.partition("=")
        rows[label] = [{**load_folder(Path(f)), "folder": Path(f).name} for f in folders.split(",")]
    if args.reference and args.reference not in rows:
        raise SystemExit(f"error: --reference {args.reference} is not a row ({', '.join(rows)})")
    result = {"what": "milr bench scenes, janus-scenes, judged by scenes-oracle", "device": args.device,
              **build(rows, args.reference, args.bootstrap, partial=args.partial)}
    for name, row in result["rows"].items():
        extra = f"  vs ref {row['minus_reference']:+.3f} {row['minus_reference_interval']}" if "minus_reference" in row else ""
        print(f"{name:24} {row['accuracy']:.3f} {row['interval']}  images {row['mean_images']:5.2f}{extra}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
