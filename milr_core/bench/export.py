"""Copy a bench folder's images into the file names other benchmarks' own evaluators read.

- T2I-CompBench: `<dest>/<category>/samples/<prompt>_<NNNNNN>.png`, where the six-digit
  counter is global over the category's prompt file (prompt on line i owns the ids
  (i-1)*n ... (i-1)*n + n-1 for n images per prompt; n = 10 in the paper's protocol).
  Its evaluators read the prompt back as the text before the first "_".
- WISE: `<dest>/<prompt_id>.png`, one image per prompt (run 0's).
Files are hard links where the file system allows, copies elsewhere. The destination
must be empty or new (`overwrite` empties it first): an evaluator reads every file
there, so images left by an earlier export would be scored beside the new ones.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..errors import MilrError
from .layout import BenchDir

FORMATS = ("t2i-compbench", "wise")


def _prepare(dest: Path, source: Path, overwrite: bool) -> None:
    """An empty `dest`: made when missing, emptied when `overwrite`, else refused when it holds anything."""
    if dest.exists() and not dest.is_dir():
        raise MilrError(f"{dest} is a file; export writes into a folder")
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            raise MilrError(f"{dest} is not empty; choose a new folder, or pass --overwrite to empty it first")
        if dest.resolve() == source.resolve() or dest.resolve() in source.resolve().parents:
            raise MilrError(f"--overwrite would empty {dest}, which holds the bench folder {source}")
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    dest.mkdir(parents=True, exist_ok=True)


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
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


def export_folder(folder: Path, fmt: str, dest: Path, overwrite: bool = False) -> dict[str, int]:
    """Place every finished prompt's images under `dest` (empty or new; `overwrite` empties it);
    returns counts of images and prompts."""
    if fmt not in FORMATS:
        raise MilrError(f"unknown export format {fmt!r}; known formats: {', '.join(FORMATS)}")
    bench = BenchDir(folder)
    settings = bench.read_config()["settings"]
    per_prompt = settings.get("images_per_prompt", 1)
    name_of = _t2i_name if fmt == "t2i-compbench" else _wise_name
    placed: list[tuple[Path, Path]] = []  # every name is made before anything is written
    prompts = unfinished = 0
    for index in range(settings["prompts"]):
        result = bench.read_result(index)
        if result is None:
            unfinished += 1
            continue
        record = json.loads((bench.prompt_dir(index) / "metadata.jsonl").read_text())
        for k, sample in enumerate(result.samples):
            name = name_of(record, k, per_prompt)
            if name is not None:
                placed.append((bench.prompt_dir(index) / sample.file, Path(dest) / name))
        prompts += 1
    _prepare(Path(dest), bench.root, overwrite)
    for src, dst in placed:
        _place(src, dst)
    return {"images": len(placed), "prompts": prompts, "unfinished": unfinished}
