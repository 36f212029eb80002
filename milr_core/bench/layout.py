"""The bench output folder: GenEval's own layout plus what resume and summaries need.

    <out>/config.json                      settings (compared on resume) + environment and versions
    <out>/summary.json                     per tag and overall, merged from the result.json files
    <out>/results.jsonl                    GenEval's per-image results (geneval critic only), see below
    <out>/<index:05d>/metadata.jsonl       the prompt record as ONE JSON object (GenEval json.loads it)
    <out>/<index:05d>/samples/<k:04d>.png  final image of independent run k
    <out>/<index:05d>/trace.jsonl          MILR trajectory: one line per (run, step)
    <out>/<index:05d>/result.json          a prompt is finished iff it exists

A prompt is written in `<out>/.<index:05d>.part/` and renamed to `<index:05d>` once
its result.json is there, so a prompt folder appears whole or not at all: GenEval's
evaluator (digit-only folder names, files matching \\d+\\.png) never sees a prompt
killed half-way. Every file is also written atomically (temporary name starting
with "." + rename).

results.jsonl has one line per image with the fields GenEval's
evaluation/evaluate_images.py writes (filename, tag, prompt, correct, reason,
metadata), so its evaluation/summary_scores.py runs on it unchanged; it reads
`correct`, `tag` and `metadata` (the prompt's metadata as a JSON string, by
which it groups images into prompts). `details` (the detector's boxes) is not
kept by milr and left out; summary_scores.py does not read it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import MilrError
from ..files import atomic_image, atomic_json, atomic_write
from ..records import PromptResult, read

GENEVAL = "geneval"  # the critic whose verdicts are GenEval's: its runs also get GenEval's results JSONL


def _flat(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(old: dict, new: dict, most: int = 4) -> str:
    """'key: old -> new' for the settings that changed, at most `most` of them."""
    a, b = _flat(old), _flat(new)
    changed = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    more = f" and {len(changed) - most} more" if len(changed) > most else ""
    return ", ".join(changed[:most]) + more


class BenchDir:
    def __init__(self, root: Path):
        self.root = Path(root)

    def prompt_dir(self, index: int) -> Path:
        return self.root / f"{index:05d}"

    def finished(self, index: int) -> bool:
        return (self.prompt_dir(index) / "result.json").is_file()

    def count_finished(self, indices) -> int:
        return sum(self.finished(i) for i in indices)

    # -- the run's settings ------------------------------------------------
    def check(self, settings: dict, force_mix: bool, extends=None) -> dict | None:
        """The folder's previous config.json, after refusing settings that differ from it.

        A larger --limit on the same prompt file is the same run, longer: allowed when
        `extends(n)` (the hash of this run's first n prompts) matches the folder's n prompts.
        """
        path = self.root / "config.json"
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError:
                raise MilrError(f"{path} is not valid JSON; remove it or choose another --out") from None
            before = with_new_defaults(old.get("settings", {}), settings)
            grown = (extends is not None and isinstance(before.get("prompts"), int)
                     and before["prompts"] < settings["prompts"]
                     and extends(before["prompts"]) == before.get("prompts_sha256"))
            if grown:
                before = {**before, "prompts": settings["prompts"], "prompts_sha256": settings["prompts_sha256"]}
                old = {**old, "settings": before}
            diff = differences(before, settings)
            if diff and not force_mix:
                raise MilrError(f"{self.root} holds a bench run with other settings ({diff}); "
                                "choose another --out, or pass --force-mix to add to it anyway")
            return old
        if self.root.is_dir() and any(p.name.isdigit() for p in self.root.iterdir()) and not force_mix:
            raise MilrError(f"{self.root} holds prompt folders but no config.json; choose another --out, "
                            "or pass --force-mix to add to it anyway")
        return None

    def write_config(self, settings: dict, environment: dict, old: dict | None) -> None:
        """config.json; settings mixed in with --force-mix are kept under `mixed_with`."""
        config = {"settings": settings, **environment}
        if old is not None:
            mixed = old.get("mixed_with", [])
            if old.get("settings") != settings:
                mixed = mixed + [old.get("settings")]
            if mixed:
                config["mixed_with"] = mixed
        try:
            atomic_json(self.root / "config.json", config)
        except OSError as exc:
            raise MilrError(f"cannot write to output folder {self.root}: {exc.strerror or exc}") from None

    def read_config(self) -> dict:
        path = self.root / "config.json"
        if not path.is_file():
            raise MilrError(f"{self.root} is not a bench folder: it has no config.json")
        return json.loads(path.read_text())

    # -- one prompt ----------------------------------------------------------
    def work_dir(self, index: int) -> Path:
        """Where prompt `index` is written until it is finished: not a digit name, so GenEval skips it."""
        return self.root / f".{index:05d}.part"

    def start_prompt(self, index: int, record: dict) -> None:
        """metadata.jsonl in a fresh work folder, after removing what a killed attempt left."""
        work = self.work_dir(index)
        shutil.rmtree(work, ignore_errors=True)
        atomic_write(work / "metadata.jsonl", (json.dumps(record, ensure_ascii=False) + "\n").encode())

    def write_sample(self, index: int, k: int, image) -> str:
        name = f"samples/{k:04d}.png"
        atomic_image(self.work_dir(index) / name, image)
        return name

    def write_trace(self, index: int, lines: list[dict]) -> None:
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        atomic_write(self.work_dir(index) / "trace.jsonl", text.encode())

    def write_result(self, index: int, result: PromptResult) -> None:
        """result.json, then the whole prompt folder moves into place."""
        atomic_json(self.work_dir(index) / "result.json", result.model_dump(mode="json"))
        final = self.prompt_dir(index)
        if final.exists():  # an unfinished folder of an older milr, or of --force-mix: replaced whole
            shutil.rmtree(final)
        os.replace(self.work_dir(index), final)

    def read_result(self, index: int) -> PromptResult | None:
        path = self.prompt_dir(index) / "result.json"
        return read(path, PromptResult) if path.is_file() else None

    def prompt_indices(self) -> list[int]:
        """Indices of the prompt folders on disk (GenEval's rule: names of digits only)."""
        return sorted(int(p.name) for p in self.root.iterdir() if p.is_dir() and p.name.isdigit())

    def write_geneval_results(self, results: list[dict], path: Path) -> None:
        """GenEval's per-image results JSONL (see the module docstring) for finished prompts' `results`."""
        lines = []
        for result in sorted(results, key=lambda r: r["index"]):
            folder = self.prompt_dir(result["index"])
            metadata = json.loads((folder / "metadata.jsonl").read_text())
            for sample in result["samples"]:
                correct = bool(sample["correct"])
                lines.append(json.dumps({
                    "filename": str(folder / sample["file"]),
                    "tag": metadata.get("tag"),
                    "prompt": metadata.get("prompt"),
                    "correct": correct,
                    "reason": "" if correct else sample.get("detail", ""),
                    "metadata": json.dumps(metadata),  # upstream's json.dumps of what it json.load-ed
                }, ensure_ascii=False) + "\n")
        atomic_write(path, "".join(lines).encode())


def with_new_defaults(before: dict, settings: dict) -> dict:
    """A folder's settings with the RunConfig fields it predates taken at their defaults, where this
    run has them at their defaults too: a field added later does not make an old run another run."""
    run = before.get("run")
    if not isinstance(run, dict):
        return before
    fields = RunConfig.model_fields
    added = {k: v for k, v in settings.get("run", {}).items()
             if k not in run and k in fields and v == fields[k].default}
    return {**before, "run": {**run, **added}} if added else before
