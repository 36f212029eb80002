"""The benchmark runner: baseline, Best-of-N or MILR over a prompt set, resumable, sharded.

Every mode is the engine with different settings, so all three share one code
path: baseline is step 0 with one image, Best-of-N is step 0 with N images (the
engine keeps the critic's best), MILR is the full search. Many searches run at
once (scheduler.py), their calls answered in shared batches. Prompt i's run k
uses seed `seed + i * images_per_prompt + k` and its own generator, so a
prompt's outputs do not depend on which rank ran it, when, or beside which
other searches.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config import RunConfig
from ..errors import MilrError
from ..files import atomic_json
from ..interfaces import PromptRecord
from ..records import PromptResult, Summary
from .layout import GENEVAL, BenchDir
from .modes import MODES
from .summary import summarize



class BenchSettings(BaseModel):
    """Everything that decides a bench run's outputs; a resumed run must match it exactly."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    prompts: int = Field(description="How many prompts (after --limit).")
    prompts_sha256: str = Field(description="Hash of the prompt records: the same file, edited, is another run.")
    mode: Literal[MODES]
    n: int | None = Field(None, ge=1, le=64, description="Best-of-N: images per independent run.")
    images_per_prompt: int = Field(1, ge=1, le=1000, description="Independent runs (final images) per prompt.")
    backbone: str
    critic: str
    dtype: str | None = None
    backbone_options: dict[str, Any] = Field(default_factory=dict, description="The backbone's resolved options.")
    critic_options: dict[str, Any] = Field(default_factory=dict, description="The critic's resolved options.")
    run: RunConfig = Field(description="The engine settings as the mode applies them.")


def prompts_hash(records: list[PromptRecord]) -> str:
    text = json.dumps([r.to_dict() for r in records], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def mode_config(mode: str, run: RunConfig, n: int | None) -> RunConfig:
    """The engine settings each mode runs with: resample is MILR with frozen latents."""
    if mode in ("milr", "resample"):
        if n is not None:
            raise MilrError(f"--n is the N of best-of-n; {mode}'s images per step is --samples")
        return run.model_copy(update={"frozen": mode == "resample"})
    if mode == "baseline":
        if n is not None:
            raise MilrError("--n is the N of best-of-n; baseline draws one image")
        return run.model_copy(update={"steps": 0, "samples": 1})
    if mode == "best-of-n":
        if n is None:
            raise MilrError("best-of-n needs --n N, or --n-from DIR to match a MILR run's images per prompt")
        return run.model_copy(update={"steps": 0, "samples": n})
    raise MilrError(f"unknown mode {mode!r}; known modes: {', '.join(MODES)}")


def judge(correct: bool | None, reward: float | None, threshold: float) -> dict[str, Any]:
    """0/1 correctness: the critic's own verdict where its score carries one (an oracle), else
    reward > threshold."""
    if correct is not None:
        return {"correct": correct, "judged_by": "critic"}
    return {"correct": reward is not None and reward > threshold, "judged_by": f"reward > {threshold}"}


class Bench:
    """One rank's share of a bench run, on loaded models.

    `slots` searches run at once (scheduler.py; None: as many as one draw call holds),
    each with its own seed and generator; `pool` (None: hardware.pool_searches) merges
    their rows into shared model calls."""

    def __init__(self, settings: BenchSettings, records: list[PromptRecord], folder: BenchDir,
                 backbone, critic, strategy, slots: int | None = None, pool: bool | None = None):
        from ..hardware import pool_searches
        from ..scheduler import slots_for

        self.settings, self.records, self.folder = settings, records, folder
        self.backbone, self.critic, self.strategy = backbone, critic, strategy
        self.slots = slots or slots_for(backbone, settings.run.samples)
        self.pool = pool_searches(backbone.device) if pool is None else pool

    def run_prompt(self, index: int) -> None:
        self.run_prompts([index])

    def run_prompts(self, indices: list[int]) -> None:
        """Every search of these prompts; a prompt's result.json is written once all its runs are done."""
        from ..scheduler import run_searches

        s = self.settings
        runs = s.images_per_prompt
        pending: dict[int, dict] = {}

        def searches():
            for index in indices:
                pending[index] = {"t0": time.perf_counter(), "results": {}, "traces": {}}
                self.folder.start_prompt(index, self.records[index].to_dict())
                for k in range(runs):
                    yield (index, k), lambda index=index, k=k: self._search(index, k, pending[index]["traces"])

        def finished(key, result) -> None:
            index, k = key
            state = pending[index]
            state["results"][k] = result
            if len(state["results"]) == runs:
                self._write(index, pending.pop(index))

        run_searches(self.backbone, self.critic, searches(), self.slots, finished, self.pool)

    def _search(self, index: int, k: int, traces: dict):
        from ..engine import Milr

        s = self.settings
        seed = s.run.seed + index * s.images_per_prompt + k
        lines = traces[k] = []
        searched = s.mode in ("milr", "resample")
        on_step = (lambda step: lines.append({"sample": k, **step.trace()})) if searched else None
        milr = Milr(self.backbone, self.critic, self.strategy, s.run.model_copy(update={"seed": seed}), on_step)
        return milr.search(self.records[index])

    def _write(self, index: int, state: dict) -> None:
        from ..engine import json_number

        s, record = self.settings, self.records[index]
        samples = []
        for k in range(s.images_per_prompt):
            result = state["results"][k]
            file = self.folder.write_sample(index, k, result.final_image)
            reward = json_number(result.final_reward)
            samples.append({
                "file": file,
                "seed": s.run.seed + index * s.images_per_prompt + k,
                "reward": reward,
                "detail": result.final_detail,
                **judge(result.final_correct, reward, s.run.threshold),
                "images": result.images_generated,
                "steps": len(result.steps) - 1,
                "best_step": result.final_step,
                "stopped_early": result.stopped_early,
                "reasoning": result.final_reasoning,
            })
        trace = [line for k in sorted(state["traces"]) for line in state["traces"][k]]
        if trace:
            self.folder.write_trace(index, trace)
        self.folder.write_result(index, PromptResult(
            index=index, prompt=record.prompt, tag=record.tag, mode=s.mode,
            samples=samples, seconds=round(time.perf_counter() - state["t0"], 3),
            prompts=self.backbone.prompt_strings(record.prompt),  # the chat strings the run's preset sent
        ))


def merge_summary(folder: BenchDir, settings: BenchSettings) -> dict[str, Any]:
    """summary.json from the result.json files on disk, whoever wrote them."""
    results = [r.model_dump() for r in (folder.read_result(i) for i in range(settings.prompts)) if r is not None]
    summary = Summary(
        benchmark=settings.benchmark, mode=settings.mode, backbone=settings.backbone,
        critic=settings.critic, prompts=settings.prompts, finished=len(results),
        **summarize(results),
    ).model_dump(mode="json")
    atomic_json(folder.root / "summary.json", summary)
    if settings.critic == GENEVAL:  # GenEval's own summary_scores.py reads this one
        folder.write_geneval_results(results, folder.root / "results.jsonl")
    return summary


def _components(specs: dict, settings: BenchSettings, records: list[PromptRecord], device: str | None):
    """(backbone standing by, critic, strategy): the critic is made first and its `check` of every
    prompt runs before any backbone weights load (the backbone loads when first used)."""
    from ..components import LazyBackbone, make_critic, make_strategy

    strategy = make_strategy(settings.run.strategy)
    backbone = LazyBackbone(specs["backbone"], device, settings.dtype)
    critic = make_critic(specs["critic"], backbone)
    check = getattr(critic, "check", None)
    if callable(check):
        for record in records:
            check(record)
    return backbone, critic, strategy


def run_bench(settings: BenchSettings, records: list[PromptRecord], out: Path, specs: dict, *,
              force_mix: bool = False, device: str | None = None, environment: dict | None = None, console=None,
              show_progress: bool = True) -> dict[str, Any] | None:
    """Run this process's shard of the prompts that are not finished; on rank 0 (or alone)
    return the merged summary once every rank is done, elsewhere None."""
    from ..files import FolderLock
    from ..records import environment as made_with
    from .dist import Dist
    from .progress import DiskProgress

    dist = Dist.from_env()
    lock = FolderLock(out)
    try:
        if dist.main:
            lock.acquire()  # one job per folder; its other ranks work under rank 0's lock
        folder = BenchDir(out)
        flat = settings.model_dump(mode="json")
        old = folder.check(flat, force_mix, extends=lambda n: prompts_hash(records[:n]))
        dist.barrier()  # nobody reads config.json once rank 0 may rewrite it
        device = dist.device(device)
        everything = list(range(settings.prompts))
        left = [i for i in everything if not folder.finished(i)]
        # rank 0 makes the critic and checks every prompt before config.json; the others follow once it
        # has loaded (the self critic asks its backbone, which a name may download or build on first use)
        models = _components(specs, settings, records, device) if left and dist.main else None
        if dist.main:
            from ..hardware import pick_device, pick_dtype

            components = [spec.describe() for spec in specs.values()]
            where = pick_device(device)  # what the backbone will pick: the record names the device used
            dtype = str(pick_dtype(where, settings.dtype)).removeprefix("torch.")
            env = {"environment": made_with(components, device=where.type, dtype=dtype).model_dump(mode="json"),
                   "world_size": dist.world, **(environment or {})}
            folder.write_config(flat, env, old)
        mine = dist.shard(left)
        label = f"{settings.benchmark} {settings.mode}"
        with DiskProgress(folder, everything, label, console, enabled=dist.main and show_progress):
            if left:
                # A name may download or build its weights on first use: rank 0 does that alone (inside a
                # process group transformers' save_pretrained writes on rank 0 only).
                if dist.main:
                    models[0].load()
                dist.barrier()
            if mine:
                backbone, critic, strategy = models or _components(specs, settings, records, device)
                Bench(settings, records, folder, backbone.load(), critic, strategy).run_prompts(mine)
            dist.barrier()
        return merge_summary(folder, settings) if dist.main else None
    finally:
        lock.release()
        dist.close()
