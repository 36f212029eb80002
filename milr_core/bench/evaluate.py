"""`milr eval`: score the images of a finished bench folder with another critic.

The paper optimises with one critic and reports with another (e.g. MILR with
Mixed, judged by the GenEval oracle). Any folder in GenEval's layout works; in a
`milr bench` folder only finished prompts are scored, and each image keeps the
images/steps it cost, so the table compares like with like.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..errors import MilrError
from ..interfaces import PromptRecord, score_images
from .layout import BenchDir
from .runner import judge
from .summary import summarize

DEFAULT_THRESHOLD = 0.9  # RunConfig's default, for folders that milr did not write
SAMPLE = re.compile(r"\d+\.png$")  # GenEval's evaluator takes these and nothing else


def _score_prompt(folder: BenchDir, index: int, critic, threshold: float) -> dict[str, Any]:
    from PIL import Image

    path = folder.prompt_dir(index)
    try:
        record = PromptRecord.from_dict(json.loads((path / "metadata.jsonl").read_text()))
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise MilrError(f"{path / 'metadata.jsonl'}: not a GenEval metadata object ({exc})") from None
    files = sorted(p for p in (path / "samples").glob("*.png") if SAMPLE.match(p.name))
    images = [Image.open(p).convert("RGB") for p in files]
    scores = score_images(critic, images, record) if images else []
    cost = {s["file"]: s for s in (folder.read_result(index) or {}).get("samples", [])}
    samples = []
    for file, image, score in zip(files, images, scores):
        name = f"samples/{file.name}"
        reward = None if math.isnan(score.value) else float(score.value)
        samples.append({
            "file": name,
            "reward": reward,
            "detail": score.detail,
            **judge(score.correct, reward, threshold),
            "images": cost.get(name, {}).get("images"),
            "steps": cost.get(name, {}).get("steps"),
        })
    return {"index": index, "prompt": record.prompt, "tag": record.tag, "samples": samples}


def evaluate_folder(root: Path, critic_name: str, *, backbone: str | None = None, threshold: float | None = None,
                    device: str | None = None, console=None, show_progress: bool = True) -> dict[str, Any]:
    from rich.progress import track

    from ..plugins import registry
    from ..runs import atomic_json

    folder = BenchDir(root)
    if not folder.root.is_dir() or not folder.prompt_indices():
        raise MilrError(f"{root} holds no prompt folders (<index:05d>/metadata.jsonl + samples/)")
    ours = (folder.root / "config.json").is_file()
    if threshold is None:
        threshold = folder.read_config()["settings"]["run"]["threshold"] if ours else DEFAULT_THRESHOLD
    reg = registry()
    entry = reg.get("critic", critic_name)
    loaded = reg.backbone(backbone, device=device) if backbone else None
    critic = entry.factory(backbone=loaded)
    indices = [i for i in folder.prompt_indices() if not ours or folder.finished(i)]
    results = [
        _score_prompt(folder, i, critic, threshold)
        for i in track(indices, description=f"eval {critic_name}", console=console, disable=not show_progress)
    ]
    file = "eval-" + re.sub(r"[^A-Za-z0-9._-]+", "_", critic_name) + ".json"
    summary = {"critic": critic_name, "source": str(root), "threshold": threshold, "file": file,
               **summarize(results), "results": results}
    atomic_json(folder.root / file, summary)
    return summary
