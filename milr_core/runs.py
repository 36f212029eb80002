"""The run directory: what `milr generate` leaves on disk, written atomically, read back validated.

Layout::

    <out>/config.json      RunRecord: prompt, backbone and critic (with options), RunConfig, environment
    <out>/trace.jsonl      one TraceLine per step (rewards, details, reasoning, loss, image files)
    <out>/steps/<step:03d>_<sample:02d>.png   every image of every step
    <out>/final.png        the image the run returns (the best seen, or the last with return_image = last)
    <out>/final.json       Final: its reward, step, sample and reasoning text
    <out>/state.pt         the search state after the last step in trace.jsonl, for `generate --resume`
    <out>/.milr.lock       while a process writes the folder: its PID and host

A folder is written by one process at a time (files.FolderLock); `--overwrite` empties it first,
so nothing of an earlier run survives a new one, failed or shorter.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import pickle
from pathlib import Path

from .engine import Result, SearchState, Step, json_number
from .errors import MilrError
from .files import FolderLock, atomic_image, atomic_json, atomic_write, cannot_write, empty_folder  # noqa: F401
from .records import Final, RunRecord, TraceLine, dumps, now, read, read_lines

CONFIG, TRACE, FINAL, STATE = "config.json", "trace.jsonl", "final.json", "state.pt"


def _settings_digest(record: RunRecord) -> str:
    """What makes two runs the same run: prompt, components with their options, RunConfig. Fields
    at their defaults are left out, so that a field added later keeps older states resumable."""
    same = {"prompt": record.prompt, "run": record.run.model_dump(mode="json", exclude_defaults=True)}
    same |= {kind: {"name": c.name, "options": c.options} for kind, c in (("backbone", record.backbone),
                                                                         ("critic", record.critic))}
    return hashlib.sha256(repr(sorted(same.items())).encode()).hexdigest()


class RunDir:
    """One run folder, locked for this process from creation until `close`."""

    def __init__(self, root: Path, lock: FolderLock):
        self.root, self.lock = Path(root), lock

    # -- opening -------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, overwrite: bool = False) -> RunDir:
        """A folder for a new run: empty, or emptied with `overwrite`. Needs no weights."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise MilrError(f"cannot write to output folder {root}: it is a file")
        lock = FolderLock(root)
        lock.acquire()
        try:
            if any(p.name != lock.path.name for p in root.iterdir()):
                if not overwrite:
                    raise MilrError(f"output folder {root} is not empty; choose another --out or pass --overwrite")
                empty_folder(root)
            (root / "steps").mkdir(exist_ok=True)
        except MilrError:
            lock.release()
            raise
        except OSError as exc:
            lock.release()
            raise MilrError(f"cannot write to output folder {root}: {exc.strerror or exc}") from None
        return cls(root, lock)

    @classmethod
    def reopen(cls, root: Path) -> RunDir:
        """The folder of an interrupted run, locked; its files are checked by `check_resumable`."""
        root = Path(root)
        if not (root / CONFIG).is_file():
            raise MilrError(f"{root} holds no generate run to resume (no {CONFIG})")
        lock = FolderLock(root)
        lock.acquire()
        return cls(root, lock)

    def close(self) -> None:
        self.lock.release()

    # -- resume --------------------------------------------------------------------
    def record(self) -> RunRecord:
        return read(self.root / CONFIG, RunRecord)

    def check_same(self, record: RunRecord) -> None:
        """Refuse to go on with a run made with other settings, naming the first that differs."""
        saved = self.record()
        pairs = [("prompt", saved.prompt, record.prompt)]
        for kind in ("backbone", "critic"):
            was, now_ = getattr(saved, kind), getattr(record, kind)
            pairs += [(kind, was.name, now_.name)]
            pairs += [(f"{kind} option {k}", was.options.get(k), now_.options.get(k))
                      for k in sorted(was.options.keys() | now_.options.keys())]
        old, new = saved.run.model_dump(), record.run.model_dump()
        pairs += [(key, old[key], new[key]) for key in new]
        for key in ("device", "dtype"):
            was, is_ = getattr(saved.environment, key), getattr(record.environment, key)
            if was is not None and is_ is not None and was != is_:
                raise MilrError(f"cannot resume {self.root}: it was run with {key} = {was!r}, this one has "
                                f"{key} = {is_!r} (pass --{key} {was})")
        for key, was, is_ in pairs:
            if was != is_:
                raise MilrError(f"cannot resume {self.root}: it was run with {key} = {was!r}, this command has {key} = {is_!r}")

    def complete(self) -> bool:
        """The run ended on its own (not interrupted): there is nothing to resume."""
        path = self.root / FINAL
        return path.is_file() and not read(path, Final).interrupted

    def trace(self) -> list[TraceLine]:
        """trace.jsonl validated: whole lines, steps 0, 1, 2 ... in order, every image on disk."""
        lines = read_lines(self.root / TRACE, TraceLine)
        for n, line in enumerate(lines):
            if line.step != n:
                raise MilrError(f"{self.root / TRACE} line {n + 1}: step {line.step} where step {n} belongs "
                                "(a line is missing or out of order)")
            for name in line.images:
                if not (self.root / name).is_file():
                    raise MilrError(f"{self.root / name} is missing (step {line.step} of {self.root / TRACE})")
        return lines

    def read_state(self, record: RunRecord, last_step: int) -> SearchState:
        """state.pt, checked against this run's settings and the steps on disk."""
        import torch

        path = self.root / STATE
        if not path.is_file():
            raise MilrError(f"{self.root} has no {STATE} to resume from (stopped before step 0 was saved); "
                            "start again with --overwrite")
        if path.stat().st_size == 0:
            raise MilrError(f"{path} is empty (written by an interrupted copy?); start again with --overwrite")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except OSError as exc:
            raise MilrError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (RuntimeError, EOFError, pickle.UnpicklingError, TypeError, ValueError) as exc:
            # torch's own messages run to paragraphs, or are empty (EOFError): name the fault instead
            raise MilrError(
                f"cannot resume from {path}: not a search state that milr saved, or cut short "
                f"({type(exc).__name__}); start again with --overwrite"
            ) from None
        digest = _settings_digest(record)
        if not isinstance(data, dict) or data.pop("run", None) != digest:
            raise MilrError(f"{path} belongs to another run (not the one in {self.root / CONFIG})")
        self._digest = digest  # the states this run writes from here on
        try:
            state = SearchState.from_dict(data)
        except TypeError as exc:
            raise MilrError(f"{path} is not a search state: {exc}") from None
        if not isinstance(state.step, int) or not 0 <= state.step <= last_step:
            raise MilrError(f"{path} is from step {state.step}, but {self.root / TRACE} ends at step {last_step}")
        return state

    def rewind(self, lines: list[TraceLine], step: int) -> list[Step]:
        """Go back to the end of `step`, where state.pt stands: a later step's line (finished
        but not checkpointed) and images go, so do the interrupted attempt's final.*; the
        steps kept are returned with their images."""
        kept = [t for t in lines if t.step <= step]
        atomic_write(self.root / TRACE, "".join(t.model_dump_json() + "\n" for t in kept).encode())
        for t in lines[len(kept):]:
            for name in t.images:
                (self.root / name).unlink(missing_ok=True)
        for name in (FINAL, "final.png"):
            (self.root / name).unlink(missing_ok=True)
        return self.load_steps(kept)

    def load_steps(self, lines: list[TraceLine]) -> list[Step]:
        """The engine's steps of these trace lines, images read from disk."""
        from PIL import Image

        steps = []
        for t in lines:
            images = []
            for name in t.images:
                with Image.open(self.root / name) as image:
                    images.append(image.copy())
            rewards = [math.nan if r is None else r for r in t.rewards]
            steps.append(Step(t.step, t.groups, rewards, t.details, t.reasoning, images, t.loss, t.seconds, t.correct))
        return steps

    # -- writing -------------------------------------------------------------------
    def write_config(self, record: RunRecord) -> None:
        atomic_write(self.root / CONFIG, dumps(record).encode())
        self._digest = _settings_digest(record)

    def write_state(self, state: SearchState) -> None:
        import torch

        buf = io.BytesIO()
        torch.save({**state.to_dict(), "run": self._digest}, buf)
        atomic_write(self.root / STATE, buf.getvalue())

    def write_step(self, step: Step) -> None:
        files = []
        for i, image in enumerate(step.images):
            name = f"steps/{step.step:03d}_{i:02d}.png"
            atomic_image(self.root / name, image)
            files.append(name)
        line = TraceLine(**step.trace(), images=files).model_dump_json()
        # one line per step, appended whole: a killed run leaves complete lines only
        trace = self.root / TRACE
        size = trace.stat().st_size if trace.exists() else 0
        try:
            with open(trace, "a") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.truncate(trace, size)  # drop a half-written line (disk full)
            raise cannot_write(trace, exc) from None

    def write_final(self, result: Result, seconds: float, interrupted: bool = False) -> Final:
        atomic_image(self.root / "final.png", result.final_image)
        final = Final(
            reward=json_number(result.final_reward),
            correct=result.final_correct,
            step=result.final_step,
            sample=result.final_sample,
            reasoning=result.final_reasoning,
            steps_run=len(result.steps) - 1,
            images_generated=result.images_generated,
            stopped_early=result.stopped_early,
            interrupted=interrupted,
            image=f"steps/{result.final_step:03d}_{result.final_sample:02d}.png",
            finished=now(),
            seconds=round(seconds, 3),
        )
        atomic_write(self.root / FINAL, dumps(final).encode())
        return final
