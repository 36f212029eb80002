"""The run directory: what `milr generate` leaves on disk, written atomically.

Layout::

    <out>/config.json      resolved RunConfig + backbone, critic, prompt, versions
    <out>/trace.jsonl      one JSON line per step (rewards, details, reasoning, loss, image files)
    <out>/steps/<step:03d>_<sample:02d>.png   every image of every step
    <out>/final.png        the best image seen
    <out>/final.json       its reward, step, sample and reasoning text
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from .engine import Result, Step
from .errors import MilrError


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


def atomic_image(path: Path, image) -> None:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("milr-core", "milr-janus", "torch", "transformers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


class RunDir:
    def __init__(self, root: Path, overwrite: bool = False):
        self.root = root
        if root.exists() and any(root.iterdir()) and not overwrite:
            raise MilrError(f"output folder {root} is not empty; choose another --out or pass --overwrite")
        try:
            (root / "steps").mkdir(parents=True, exist_ok=True)
            probe = root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise MilrError(f"cannot write to output folder {root}: {exc.strerror or exc}") from None
        (root / "trace.jsonl").unlink(missing_ok=True)

    def write_config(self, settings: dict[str, Any]) -> None:
        atomic_json(self.root / "config.json", {**settings, "versions": versions()})

    def write_step(self, step: Step) -> None:
        files = []
        for i, image in enumerate(step.images):
            name = f"steps/{step.step:03d}_{i:02d}.png"
            atomic_image(self.root / name, image)
            files.append(name)
        line = json.dumps({**step.trace(), "images": files}, ensure_ascii=False)
        # one line per step, appended whole: a killed run leaves complete lines only
        with open(self.root / "trace.jsonl", "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_final(self, result: Result) -> None:
        atomic_image(self.root / "final.png", result.best_image)
        atomic_json(
            self.root / "final.json",
            {
                "reward": result.best_reward,
                "step": result.best_step,
                "sample": result.best_sample,
                "reasoning": result.best_reasoning,
                "steps_run": len(result.steps) - 1,
                "images_generated": result.images_generated,
                "stopped_early": result.stopped_early,
                "image": f"steps/{result.best_step:03d}_{result.best_sample:02d}.png",
            },
        )
