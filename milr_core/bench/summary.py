"""Per-tag and overall numbers from per-prompt results, as JSON and as a rich table.

Image-level means, like GenEval's summary_scores: `accuracy` is the share of
correct images, `prompt_accuracy` the share of prompts with at least one
correct image. `overall` is the benchmark's own overall: GenEval's unweighted
mean of the tag means, or, when every tag is one of WISE's categories, WISE's
weighted sum of the category means, each weighted by its share of the prompts
(Calculate.py's 0.4 CULTURE + 0.167 TIME + 0.133 SPACE + 0.1 each for BIOLOGY,
PHYSICS, CHEMISTRY and calculate_verified.py's 0.4 + 5 x 0.12 are exactly
those shares of their 1,000 prompts). `all` pools every image. `images` and
`steps` are per independent run: images generated and optimisation steps taken
to produce one final image.
"""

from __future__ import annotations

from typing import Any

from .prompts import WISE_CATEGORIES

METRICS = ("reward", "accuracy", "prompt_accuracy", "images", "steps")
UNTAGGED = "untagged"


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _weighted(pairs) -> float | None:
    """sum of weight * value, added up in order as WISE does; None if a value is missing."""
    total = 0.0
    for weight, value in pairs:
        if value is None:
            return None
        total += weight * value
    return total


def _group(results: list[dict]) -> dict[str, Any]:
    samples = [s for r in results for s in r["samples"]]
    return {
        "prompts": len(results),
        "samples": len(samples),
        "reward": _mean(s.get("reward") for s in samples),
        "accuracy": _mean(None if s.get("correct") is None else float(s["correct"]) for s in samples),
        "prompt_accuracy": _mean(
            float(any(s.get("correct") for s in r["samples"])) for r in results if r["samples"]
        ),
        "images": _mean(s.get("images") for s in samples),
        "steps": _mean(s.get("steps") for s in samples),
    }


def summarize(results: list[dict]) -> dict[str, Any]:
    """`results`: one dict per prompt with `tag` and `samples` (each with reward, correct, images, steps)."""
    tags: dict[str, list[dict]] = {}
    for r in results:  # tags in order of first appearance, as GenEval prints them
        tags.setdefault(r.get("tag") or UNTAGGED, []).append(r)
    by_tag = {tag: _group(rs) for tag, rs in tags.items()}
    if by_tag and set(by_tag) <= set(WISE_CATEGORIES.values()):
        prompts = sum(g["prompts"] for g in by_tag.values())
        overall = {m: _weighted((g["prompts"] / prompts, g[m]) for g in by_tag.values()) for m in METRICS}
    else:
        overall = {m: _mean(g[m] for g in by_tag.values()) for m in METRICS}
    return {"tags": by_tag, "overall": overall, "all": _group(results)}


def _cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(summary: dict[str, Any], title: str = ""):
    from rich.table import Table

    t = Table("tag", "prompts", "reward", "accuracy", "prompt acc.", "images", "steps", title=title or None)
    t.columns[0].no_wrap = True
    rows = list(summary["tags"].items()) + [("overall", summary["overall"]), ("all images", summary["all"])]
    for i, (name, g) in enumerate(rows):
        t.add_row(
            name,
            str(g.get("prompts", "")),
            *(_cell(g[m]) for m in ("reward", "accuracy", "prompt_accuracy")),
            _cell(g["images"], 2),
            _cell(g["steps"], 2),
            end_section=i == len(rows) - 3,
        )
    return t
