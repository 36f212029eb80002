"""Copy a bench folder's images into the file names other benchmarks' own evaluators read.

- T2I-CompBench: `<dest>/<category>/samples/<prompt>_<NNNNNN>.png`, where the six-digit
  counter is global over the category's prompt file (prompt on line i owns the ids
  (i-1)*n ... (i-1)*n + n-1 for n images per prompt; n = 10 in the paper's protocol).
  Its evaluators read the prompt back as the text before the first "_".
- WISE: `<dest>/<prompt_id>.png`, one image per prompt (run 0's).
Files are hard links where the file system allows, copies elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..errors import MilrError
from .layout import BenchDir

FORMATS = ("t2i-compbench", "wise")


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _t2i_name(record: dict, k: int, per_prompt: int) -> Path:
    prompt, line = record["prompt"], record.get("line")
    if not isinstance(line, int):
        raise MilrError(f"{record['prompt']!r} has no line number of a T2I-CompBench prompt file: "
                        "export t2i-compbench takes folders of `milr bench t2i-compbench`")
    if "_" in prompt or "/" in prompt:
        raise MilrError(f"prompt {prompt!r} holds '_' or '/', which T2I-CompBench's file names cannot carry")
    return Path(record["tag"]) / "samples" / f"{prompt}_{(line - 1) * per_prompt + k:06d}.png"


def _wise_name(record: dict, k: int, per_prompt: int) -> Path | None:
    if "prompt_id" not in record:
        raise MilrError(f"{record['prompt']!r} has no prompt_id: export wise takes folders of `milr bench wise`")
    return Path(f"{record['prompt_id']}.png") if k == 0 else None


def export_folder(folder: Path, fmt: str, dest: Path) -> dict[str, int]:
    """Place every finished prompt's images under `dest`; returns counts of images and prompts."""
    if fmt not in FORMATS:
        raise MilrError(f"unknown export format {fmt!r}; known formats: {', '.join(FORMATS)}")
    bench = BenchDir(folder)
    settings = bench.read_config()["settings"]
    per_prompt = settings.get("images_per_prompt", 1)
    name_of = _t2i_name if fmt == "t2i-compbench" else _wise_name
    images = prompts = unfinished = 0
    for index in range(settings["prompts"]):
        result = bench.read_result(index)
        if result is None:
            unfinished += 1
            continue
        record = json.loads((bench.prompt_dir(index) / "metadata.jsonl").read_text())
        for k, sample in enumerate(result.samples):
            name = name_of(record, k, per_prompt)
            if name is not None:
                _place(bench.prompt_dir(index) / sample.file, dest / name)
                images += 1
        prompts += 1
    return {"images": images, "prompts": prompts, "unfinished": unfinished}
