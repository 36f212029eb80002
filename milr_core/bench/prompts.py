"""Prompt sets: GenEval metadata JSONL, T2I-CompBench category files, WISE JSON.

Every loader returns PromptRecords in file order (the index of a record is its
output folder), keeps the benchmark's own fields, and names the file and line
of anything malformed. Plugins add prompt sets through `register_benchmarks`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import MilrError
from ..interfaces import PromptRecord

# T2I-CompBench's evaluation files are <category>_val.txt (BENCHMARKS.md §2); the first six
# are the paper's categories, the last two come from T2I-CompBench++.
T2I_CATEGORIES = ("color", "shape", "texture", "spatial", "non_spatial", "complex", "numeracy", "3d_spatial")

Loader = Callable[[Path | None, int | None], list[PromptRecord]]


@dataclass(frozen=True)
class Benchmark:
    """A prompt set and the defaults that suit it.

    `load(path, limit)` returns the first `limit` records (all when None) of the
    file at `path`, or of the benchmark's built-in set when `path` is None.
    """

    load: Loader
    critic: str | None = None
    backbone: str | None = None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MilrError(f"cannot read prompt file {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _file_set(name: str, read: Callable[[Path], list[PromptRecord]], what: str) -> Loader:
    def load(path: Path | None, limit: int | None) -> list[PromptRecord]:
        if path is None:
            raise MilrError(f"{name} needs --prompts: {what}")
        return read(Path(path))[:limit]

    return load


# ---- GenEval ---------------------------------------------------------------


def _check_geneval(obj: Any) -> str | None:
    """What is wrong with one metadata object, or None."""
    if not isinstance(obj, dict):
        return "expected a JSON object"
    if not isinstance(obj.get("prompt"), str) or not obj["prompt"].strip():
        return "no 'prompt' text"
    if "tag" in obj and not isinstance(obj["tag"], str):
        return "'tag' must be a string"
    for key in ("include", "exclude"):
        clauses = obj.get(key, [])
        if not isinstance(clauses, list) or not all(isinstance(c, dict) and "class" in c for c in clauses):
            return f"'{key}' must be a list of objects with a 'class'"
    return None


def load_geneval(path: Path) -> list[PromptRecord]:
    """GenEval's evaluation_metadata.jsonl: one JSON object per line (blank lines are skipped)."""
    records = []
    for number, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MilrError(f"{path}:{number}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        problem = _check_geneval(obj)
        if problem:
            raise MilrError(f"{path}:{number}: {problem}")
        records.append(PromptRecord.from_dict(obj))
    return records


# ---- T2I-CompBench -----------------------------------------------------------


def _t2i_file(path: Path, category: str) -> list[PromptRecord]:
    lines = _read(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # files may end with blank lines; a blank line inside is a mistake
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise MilrError(f"{path}:{number}: empty prompt line")
        records.append(PromptRecord(line.strip(), category, extra={"source": path.name, "line": number}))
    return records


def load_t2i(path: Path) -> list[PromptRecord]:
    """T2I-CompBench prompts, tagged by category: a folder holding <category>_val.txt files
    (all categories present, in the paper's order) or one such file."""
    if path.is_dir():
        files = [(path / f"{c}_val.txt", c) for c in T2I_CATEGORIES if (path / f"{c}_val.txt").is_file()]
        if not files:
            names = ", ".join(f"{c}_val.txt" for c in T2I_CATEGORIES)
            raise MilrError(f"{path} holds no T2I-CompBench prompt file; expected some of {names}")
        return [r for file, c in files for r in _t2i_file(file, c)]
    category = path.stem.split("_val")[0]
    if category not in T2I_CATEGORIES:
        raise MilrError(f"{path}: cannot tell the T2I-CompBench category from the name; expected <category>_val*.txt "
                        f"with category one of {', '.join(T2I_CATEGORIES)}")
    return _t2i_file(path, category)


# ---- WISE ------------------------------------------------------------------


def _array_items(text: str, path: Path) -> list[tuple[int, Any]]:
    """(line, value) of each element of a top-level JSON array, so errors can name a line."""
    decoder, space = json.JSONDecoder(), re.compile(r"\s*")

    def line_at(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    pos = space.match(text).end()
    if text[pos : pos + 1] != "[":
        raise MilrError(f"{path}:{line_at(pos)}: expected a JSON array of prompt objects")
    pos = space.match(text, pos + 1).end()
    items: list[tuple[int, Any]] = []
    while text[pos : pos + 1] != "]":
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise MilrError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        items.append((line_at(pos), value))
        pos = space.match(text, end).end()
        if text[pos : pos + 1] == ",":
            pos = space.match(text, pos + 1).end()
        elif text[pos : pos + 1] != "]":
            raise MilrError(f"{path}:{line_at(pos)}: expected ',' or ']' after an element")
    if text[space.match(text, pos + 1).end() :]:
        raise MilrError(f"{path}:{line_at(pos + 1)}: extra data after the array")
    return items


# WISE's scoring scripts (WISE_legacy/Calculate.py, calculate_verified.py) sort prompts into six
# categories by prompt_id range; in both protocols' files those ranges hold exactly these Category
# strings, except legacy prompt 748 ("Ecology"), which lies in BIOLOGY's range.
WISE_CATEGORIES = {
    "cultural knowledge": "CULTURE",
    "time": "TIME",
    "space": "SPACE",
    "biology": "BIOLOGY",
    "ecology": "BIOLOGY",
    "physical knowledge": "PHYSICS",
    "chemistry": "CHEMISTRY",
}


def load_wise(path: Path) -> list[PromptRecord]:
    """WISE prompt JSON: an array of {prompt_id, Prompt, Explanation, Category, Subcategory}
    (keys matched case-insensitively); the tag is WISE's scoring category (CULTURE ... CHEMISTRY,
    other Category strings as they are), every other field is kept."""
    records = []
    for line, obj in _array_items(_read(path), path):
        if not isinstance(obj, dict):
            raise MilrError(f"{path}:{line}: expected a JSON object")
        keys = {k.lower(): k for k in obj}
        missing = [k for k in ("prompt_id", "prompt", "category") if k not in keys]
        if missing:
            raise MilrError(f"{path}:{line}: WISE prompt without {', '.join(missing)}")
        prompt, prompt_id = obj[keys["prompt"]], obj[keys["prompt_id"]]
        if not isinstance(prompt, str) or not prompt.strip():
            raise MilrError(f"{path}:{line}: empty prompt")
        if not isinstance(prompt_id, int) or isinstance(prompt_id, bool):
            raise MilrError(f"{path}:{line}: prompt_id must be an integer, not {prompt_id!r}")
        extra = {k: v for k, v in obj.items() if k != keys["prompt"]}
        category = str(obj[keys["category"]])
        records.append(PromptRecord(prompt, WISE_CATEGORIES.get(category.strip().lower(), category), extra=extra))
    return records


def builtin_benchmarks() -> list[tuple[str, Benchmark, str]]:
    """(name, benchmark, description) for the file-based prompt sets milr-core knows."""
    geneval = _file_set("geneval", load_geneval,
                        "GenEval's prompts/evaluation_metadata.jsonl (553 prompts, github.com/djghosh13/geneval)")
    t2i = _file_set("t2i-compbench", load_t2i, "a folder of <category>_val.txt files or one of them "
                    "(examples/dataset/ of github.com/Karine-Huang/T2I-CompBench)")
    wise = _file_set("wise", load_wise, "a WISE prompt JSON (data_verified/merge.json or WISE_legacy/data/*.json "
                     "of github.com/PKU-YuanGroup/WISE)")
    return [
        ("geneval", Benchmark(geneval, critic="geneval"), "GenEval metadata JSONL (tag, include, exclude, prompt)"),
        ("t2i-compbench", Benchmark(t2i, critic="t2i-compbench"),
         "T2I-CompBench <category>_val.txt prompt files, one prompt per line"),
        ("wise", Benchmark(wise, critic="wise"),
         "WISE prompt JSON (prompt_id, Prompt, Explanation, Category, Subcategory)"),
    ]
