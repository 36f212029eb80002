"""The run directory: what `milr generate` leaves on disk, written atomically.

Layout::

    <out>/config.json      resolved RunConfig + backbone, critic, prompt, versions
    <out>/trace.jsonl      one JSON line per step (rewards, details, reasoning, loss, image files)
    <out>/steps/<step:03d>_<sample:02d>.png   every image of every step
    <out>/final.png        the best image seen
    <out>/final.json       its reward, step, sample and reasoning text
    <out>/state.pt         the search state after the last step in trace.jsonl, for `generate --resume`
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .engine import Result, SearchState, Step, json_number
from .errors import MilrError

# mkstemp makes files only their owner can read; results get the mode any new file gets
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _cannot_write(path: Path, exc: OSError) -> MilrError:
    return MilrError(f"cannot write {path}: {exc.strerror or exc}")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file.

    A failed write (disk full, no permission) leaves any earlier file as it was and
    is reported as a one-line MilrError.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise


def atomic_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


def atomic_image(path: Path, image) -> None:
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
    def __init__(self, root: Path, overwrite: bool = False, resume: bool = False):
        """A fresh run folder, or with `resume` the folder of a run to go on with."""
        self.root = root
        if resume:
            if not (root / "config.json").is_file():
                raise MilrError(f"{root} holds no generate run to resume (no config.json)")
        elif root.exists() and any(root.iterdir()) and not overwrite:
            raise MilrError(f"output folder {root} is not empty; choose another --out or pass --overwrite")
        try:
            (root / "steps").mkdir(parents=True, exist_ok=True)
            probe = root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise MilrError(f"cannot write to output folder {root}: {exc.strerror or exc}") from None
        if not resume:
            # an earlier run's state must not be resumed with this run's config
            for name in ("trace.jsonl", "state.pt"):
                (root / name).unlink(missing_ok=True)

    def write_config(self, settings: dict[str, Any]) -> None:
        atomic_json(self.root / "config.json", {**settings, "versions": versions()})

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse to go on with a run made with other settings, naming the first that differs."""
        saved = json.loads((self.root / "config.json").read_text())
        now = json.loads(json.dumps(settings))  # as config.json would hold them
        fields = [(key, saved.get(key), now[key]) for key in ("prompt", "backbone", "critic")]
        fields += [(key, saved["run"].get(key), value) for key, value in now["run"].items()]
        for key, was, is_ in fields:
            if was != is_:
                raise MilrError(f"cannot resume {self.root}: it was run with {key} = {was!r}, this command has {key} = {is_!r}")

    def check_hardware(self, hardware: dict[str, str]) -> None:
        """A run goes on exactly only on the device type and dtype it started on (folders
        written before these were recorded are not checked)."""
        saved = json.loads((self.root / "config.json").read_text()).get("hardware") or {}
        for key, value in hardware.items():
            if key in saved and saved[key] != value:
                raise MilrError(
                    f"cannot resume {self.root}: it was run with {key} = {saved[key]!r}, this one has {key} = {value!r}"
                    f" (pass --{key} {saved[key]})"
                )

    def complete(self) -> bool:
        """The run ended on its own (not interrupted): there is nothing to resume."""
        final = self.root / "final.json"
        return final.is_file() and not json.loads(final.read_text())["interrupted"]

    def write_state(self, state: SearchState) -> None:
        buf = io.BytesIO()
        torch.save(state.to_dict(), buf)
        atomic_write(self.root / "state.pt", buf.getvalue())

    def read_state(self) -> SearchState:
        path = self.root / "state.pt"
        if not path.is_file():
            raise MilrError(f"{self.root} has no state.pt to resume from (stopped before step 0 was saved); start again with --overwrite")
        try:
            if path.stat().st_size == 0:
                raise MilrError(f"cannot resume from {path}: the file is empty; start again with --overwrite")
            return SearchState.from_dict(torch.load(path, map_location="cpu", weights_only=True))
        except OSError as exc:
            raise MilrError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (RuntimeError, EOFError, pickle.UnpicklingError, TypeError, KeyError, ValueError) as exc:
            # torch's own messages run to paragraphs, or are empty (EOFError): name the fault instead
            raise MilrError(
                f"cannot resume from {path}: not a search state that milr saved, or cut short "
                f"({type(exc).__name__}); start again with --overwrite"
            ) from None

    def rewind(self, step: int) -> list[Step]:
        """Go back to the end of `step`, where state.pt stands: a later step's line (finished
        but not checkpointed) and images go, so do the interrupted attempt's final.*; the
        steps kept are returned with their images."""
        from PIL import Image

        trace = self.root / "trace.jsonl"
        lines = trace.read_text().splitlines(keepends=True)
        records = [json.loads(line) for line in lines]
        kept = [t for t in records if t["step"] <= step]
        atomic_write(trace, "".join(lines[: len(kept)]).encode())  # the kept lines byte for byte
        for t in records[len(kept) :]:
            for name in t["images"]:
                (self.root / name).unlink(missing_ok=True)
        for name in ("final.json", "final.png"):
            (self.root / name).unlink(missing_ok=True)
        steps = []
        for t in kept:
            images = []
            for name in t["images"]:
                with Image.open(self.root / name) as image:
                    images.append(image.copy())
            rewards = [math.nan if r is None else r for r in t["rewards"]]
            steps.append(Step(t["step"], t["groups"], rewards, t["details"], t["reasoning"], images, t["loss"], t["seconds"],
                              t.get("correct") or []))
        return steps

    def write_step(self, step: Step) -> None:
        files = []
        for i, image in enumerate(step.images):
            name = f"steps/{step.step:03d}_{i:02d}.png"
            atomic_image(self.root / name, image)
            files.append(name)
        line = json.dumps({**step.trace(), "images": files}, ensure_ascii=False)
        # one line per step, appended whole: a killed run leaves complete lines only
        trace = self.root / "trace.jsonl"
        size = trace.stat().st_size if trace.exists() else 0
        try:
            with open(trace, "a") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.truncate(trace, size)  # drop a half-written line (disk full)
            raise _cannot_write(trace, exc) from None

    def write_final(self, result: Result, interrupted: bool = False) -> None:
        atomic_image(self.root / "final.png", result.final_image)
        atomic_json(
            self.root / "final.json",
            {
                "reward": json_number(result.final_reward),  # null when the critic gave NaN
                "correct": result.final_correct,
                "step": result.final_step,
                "sample": result.final_sample,
                "reasoning": result.final_reasoning,
                "steps_run": len(result.steps) - 1,
                "images_generated": result.images_generated,
                "stopped_early": result.stopped_early,
                "interrupted": interrupted,
                "image": f"steps/{result.final_step:03d}_{result.final_sample:02d}.png",
            },
        )
