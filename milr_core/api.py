"""The Python API; the `milr` command line is a thin layer over it.

    import milr_core as milr
    result = milr.generate("a photo of three triangles", steps=10)
    result.image.save("out.png")

Components load once and can be passed to many calls::

    backbone = milr.load_backbone("janus-shapes")
    critic = milr.load_critic("shapes-oracle", backbone=backbone)
    for prompt in prompts:
        milr.generate(prompt, backbone=backbone, critic=critic)

`generate` owns the run folder protocol: what is checked before any weights load, the
lock, `--overwrite`, resume and interruption.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .components import LazyBackbone, Spec, hardware, make_critic, make_strategy
from .config import RunConfig, settings_and_options
from .errors import MilrError
from .records import Component, Final, RunRecord, environment

DEFAULT_BACKBONE = "janus-shapes"
DEFAULT_CRITIC = "shapes-oracle"


class Interrupted(MilrError):
    """Ctrl-C after at least one step was on disk: the run folder holds them, resumable."""

    exit_code = 130

    def __init__(self, result: Generation, steps: int):
        self.result = result
        super().__init__(f"interrupted after step {result.steps[-1].step} of {steps}")


@dataclass
class Generation:
    """What `generate` returns: the image (the best, or the last with return_image="last"), its
    reasoning text and reward, every step."""

    result: Any  # engine.Result
    record: RunRecord
    final: Final | None = None
    out: Path | None = None  # the run folder, when one was written
    already_complete: bool = False  # resume found the run finished: nothing was run
    steps: list = field(init=False)

    def __post_init__(self):
        self.steps = self.result.steps

    @property
    def image(self):
        return self.result.final_image

    @property
    def reasoning(self) -> str:
        return self.result.final_reasoning

    @property
    def reward(self) -> float | None:
        from .engine import json_number

        return json_number(self.result.final_reward)

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write the run folder layout (config.json, trace.jsonl, steps/, final.*) to `folder`."""
        from .runs import RunDir

        run_dir = RunDir.create(Path(folder), overwrite)
        try:
            run_dir.write_config(self.record)
            for step in self.result.steps:
                run_dir.write_step(step)
            run_dir.write_final(self.result, self.final.seconds if self.final else 0.0)
        finally:
            run_dir.close()
        return Path(folder)


def load_backbone(name: str = DEFAULT_BACKBONE, *, device: str | None = None, dtype: str | None = None,
                  **options: Any):
    """A backbone by name (`milr plugins`) or checkpoint folder, with its options as keywords."""
    spec = Spec.resolve("backbone", name, options)
    loaded = LazyBackbone(spec, device, dtype).load()
    loaded.milr_component = spec.describe(loaded)
    return loaded


def load_critic(name: str = DEFAULT_CRITIC, *, backbone: Any = None, **options: Any):
    """A critic by name with its options as keywords; `backbone` for critics that use one (self)."""
    spec = Spec.resolve("critic", name, options)
    made = make_critic(spec, backbone)
    made.milr_component = spec.describe(made)
    return made


def _component(kind: str, given: Any, options: dict | None) -> tuple[Spec | None, Any]:
    """(spec, None) for a name, (None, object) for a component loaded by the caller."""
    if isinstance(given, (str, Path)):
        return Spec.resolve(kind, str(given), options), None
    if options:
        raise MilrError(f"{kind} options go to load_{kind}, not to an already loaded {kind}")
    return None, given


def _describe(spec: Spec | None, made: Any) -> Component:
    if spec is not None:
        return spec.describe(made)
    return getattr(made, "milr_component", None) or Component(name=getattr(made, "name", type(made).__name__))


def generate(
    prompt: str,
    *,
    backbone: Any = DEFAULT_BACKBONE,
    critic: Any = DEFAULT_CRITIC,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    config: str | Path | RunConfig | None = None,
    backbone_options: dict[str, Any] | None = None,
    critic_options: dict[str, Any] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    on_step: Callable[[Any], None] | None = None,
    **settings: Any,
) -> Generation:
    """Generate an image for `prompt` and improve it with MILR until the critic is satisfied.

    `backbone` and `critic` are names (or a checkpoint folder) or loaded components;
    `settings` are RunConfig fields (steps=10, lr=0.05 ...) over those of `config`. With
    `out`, every step is written to that run folder as it happens (`resume=True` goes on with
    an interrupted run there). Everything that needs no weights is checked before any load.
    """
    from .interfaces import PromptRecord

    from .bench.prompts import MAX_PROMPT, prompt_problem

    started = time.monotonic()
    if len(prompt) > MAX_PROMPT:  # the error does not echo it
        raise MilrError(prompt_problem(prompt))
    if not prompt.strip():
        raise MilrError("the prompt is empty")
    cfg, backbone_options, critic_options = settings_and_options(config, settings, backbone_options, critic_options)
    if resume and (out is None or overwrite):
        raise MilrError("--resume needs --out, the folder of the run to go on with, and no --overwrite")
    strategy = make_strategy(cfg.strategy)
    backbone_spec, backbone_obj = _component("backbone", backbone, backbone_options)
    critic_spec, critic_obj = _component("critic", critic, critic_options)
    record_ = PromptRecord(prompt)
    lazy = LazyBackbone(backbone_spec, device, dtype) if backbone_spec is not None else backbone_obj

    run_dir, created = None, False
    if out is not None:
        from .runs import RunDir

        created = not Path(out).exists()
        run_dir = RunDir.reopen(Path(out)) if resume else RunDir.create(Path(out), overwrite)
    try:
        record = RunRecord(prompt=prompt, backbone=_describe(backbone_spec, backbone_obj),
                           critic=_describe(critic_spec, critic_obj), run=cfg,
                           environment=environment([], device=device, dtype=dtype))
        kept, state = [], None
        if resume:
            run_dir.check_same(record)
            if run_dir.complete():
                return _finished(run_dir)
            lines = run_dir.trace()
            if not lines:
                raise MilrError(f"{run_dir.root / 'trace.jsonl'} holds no step; start again with --overwrite")
            state = run_dir.read_state(run_dir.record(), lines[-1].step)
        if critic_obj is None:
            critic_obj = make_critic(critic_spec, lazy)
        check = getattr(critic_obj, "check", None)
        if callable(check):
            check(record_)  # an unreadable prompt or an unreachable judge, before the backbone loads
        backbone_obj = lazy.load() if isinstance(lazy, LazyBackbone) else lazy
        device_type, dtype_name = hardware(backbone_obj)
        record = record.model_copy(update={
            "prompts": backbone_obj.prompt_strings(prompt),
            "backbone": _describe(backbone_spec, backbone_obj), "critic": _describe(critic_spec, critic_obj),
            "environment": environment([_describe(backbone_spec, backbone_obj), _describe(critic_spec, critic_obj)],
                                       device=device_type, dtype=dtype_name),
        })
        if resume:
            run_dir.check_same(record)
            record = run_dir.record()
            kept = run_dir.rewind(lines, state.step)
        elif run_dir is not None:
            run_dir.write_config(record)
        return _search(backbone_obj, critic_obj, strategy, record_, cfg, record, run_dir, kept, state, on_step,
                       started)
    except BaseException:
        if created and not (run_dir.root / "config.json").exists():
            shutil.rmtree(run_dir.root, ignore_errors=True)  # failed before the run began: leave no empty folder
        raise
    finally:
        if run_dir is not None:
            run_dir.close()


def _search(backbone, critic, strategy, prompt_record, cfg, record, run_dir, kept, state, on_step, started):
    from .engine import Result, run_milr

    def step_done(step):
        if run_dir is not None:
            run_dir.write_step(step)
        kept.append(step)
        if on_step is not None:
            on_step(step)

    try:
        result = run_milr(backbone, critic, strategy, prompt_record, cfg, step_done,
                          run_dir.write_state if run_dir is not None else None, resume=state, earlier=kept[:])
    except KeyboardInterrupt:
        if not kept or run_dir is None:
            raise
        result = Result.from_steps(kept, return_image=cfg.return_image)
        final = run_dir.write_final(result, time.monotonic() - started, interrupted=True)
        raise Interrupted(Generation(result, record, final, run_dir.root), cfg.steps) from None
    final = run_dir.write_final(result, time.monotonic() - started) if run_dir is not None else None
    return Generation(result, record, final, run_dir.root if run_dir is not None else None)


def _finished(run_dir) -> Generation:
    """A run already complete on disk: resume has nothing to do."""
    from .engine import Result
    from .records import read

    final = read(run_dir.root / "final.json", Final)
    steps = run_dir.load_steps(run_dir.trace())
    result = Result.from_steps(steps, final.stopped_early, return_image=run_dir.record().run.return_image)
    return Generation(result, run_dir.record(), final, run_dir.root, already_complete=True)
