"""Prompt sets: GenEval metadata JSONL, T2I-CompBench category files, WISE JSON.

Every loader returns PromptRecords in file order (the index of a record is its
output folder), keeps the benchmark's own fields, and names the file and line
of anything malformed. Files are read alike in every format: UTF-8 with or
without a byte-order mark, lines ending in LF or CRLF. A prompt longer than
MAX_PROMPT characters is refused (no model reads that much, and an error must
not echo it). Plugins add prompt sets through `register_benchmarks`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from collections.abc import Collection
from pathlib import Path
from typing import Any, Callable

from ..errors import MilrError
from ..interfaces import PromptRecord

# T2I-CompBench's evaluation files are <category>_val.txt (BENCHMARKS.md §2); the first six
# are the paper's categories, the last two come from T2I-CompBench++.
T2I_CATEGORIES = ("color", "shape", "texture", "spatial", "non_spatial", "complex", "numeracy", "3d_spatial")

# GenEval's class names (evaluation/object_names.txt: COCO's 80 thing classes in COCO order) and relations
GENEVAL_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "computer mouse", "tv remote",
    "computer keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock",
    "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
GENEVAL_RELATIONS = ("left of", "right of", "above", "below")

MAX_PROMPT = 2000

Loader = Callable[[Path | None, int | None], list[PromptRecord]]


def prompt_problem(text: str) -> str | None:
    """What makes `text` unusable as a prompt, in words that do not quote it, or None."""
    if not text.strip():
        return "the prompt is empty"
    if len(text) > MAX_PROMPT:
        return f"the prompt is {len(text):,} characters long; at most {MAX_PROMPT:,} are allowed"
    return None


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
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MilrError(f"cannot read prompt file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return text.replace("\r\n", "\n")  # CRLF files read as LF files do


def _file_set(name: str, read: Callable[[Path], list[PromptRecord]], what: str) -> Loader:
    def load(path: Path | None, limit: int | None) -> list[PromptRecord]:
        if path is None:
            raise MilrError(f"{name} needs --prompts: {what}")
        return read(Path(path))[:limit]

    return load


# ---- GenEval ---------------------------------------------------------------


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_clause(clause: Any, key: str, index: int, classes: Collection[str] | None) -> str | None:
    """What is wrong with include/exclude clause `index`, or None."""
    where = f"{key}[{index}]"
    if not isinstance(clause, dict) or not isinstance(clause.get("class"), str):
        return f"'{key}' must be a list of objects with a 'class'"
    if classes is not None and clause["class"] not in classes:
        return f"{where}: unknown class {clause['class']!r} (not one of the {len(classes)} classes of this benchmark)"
    if not _is_count(clause.get("count")):
        return f"{where}: 'count' must be an integer >= 1, not {clause.get('count')!r}"
    if "color" in clause and not isinstance(clause["color"], str):
        return f"{where}: 'color' must be a string"
    if "position" in clause:
        position = clause["position"]
        if key != "include" or not (isinstance(position, list) and len(position) == 2):
            return f"{where}: 'position' must be [relation, index of an earlier include clause]"
        relation, target = position
        if relation not in GENEVAL_RELATIONS:
            return f"{where}: unknown relation {relation!r}; known: {', '.join(GENEVAL_RELATIONS)}"
        if not isinstance(target, int) or isinstance(target, bool) or not 0 <= target < index:
            return f"{where}: position target {target!r} is not the index of an earlier include clause"
    return None


def _check_geneval(obj: Any, classes: Collection[str] | None) -> str | None:
    """What is wrong with one metadata object, or None."""
    if not isinstance(obj, dict):
        return "expected a JSON object"
    if not isinstance(obj.get("prompt"), str) or not obj["prompt"].strip():
        return "no 'prompt' text"
    if len(obj["prompt"]) > MAX_PROMPT:
        return prompt_problem(obj["prompt"])
    if "tag" in obj and not isinstance(obj["tag"], str):
        return "'tag' must be a string"
    for key in ("include", "exclude"):
        clauses = obj.get(key, [])
        if not isinstance(clauses, list):
            return f"'{key}' must be a list of objects with a 'class'"
        for index, clause in enumerate(clauses):
            problem = _check_clause(clause, key, index, classes)
            if problem:
                return problem
    return None


def load_geneval(path: Path, classes: Collection[str] | None = GENEVAL_CLASSES) -> list[PromptRecord]:
    """GenEval's evaluation_metadata.jsonl: one JSON object per line (blank lines are skipped).

    Every record is checked as GenEval's rules read it: each clause names one of `classes`
    (None: any) with a count >= 1, and a position is a known relation to an earlier clause."""
    records = []
    for number, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MilrError(f"{path}:{number}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        problem = _check_geneval(obj, classes)
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
        if len(line) > MAX_PROMPT:
            raise MilrError(f"{path}:{number}: {prompt_problem(line)}")
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
        if not isinstance(prompt, str):
            raise MilrError(f"{path}:{line}: the prompt must be a string")
        if prompt_problem(prompt):
            raise MilrError(f"{path}:{line}: {prompt_problem(prompt)}")
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
