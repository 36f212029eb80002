"""`milr` command line: generate, plugins, report."""

from __future__ import annotations

import json
import math
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import MilrError, UnknownName

app = typer.Typer(add_completion=False, no_args_is_help=True, help="MILR: test-time latent reasoning for image generators.")
out = Console()
err = Console(stderr=True)

DEFAULT_BACKBONE = "janus-shapes"
DEFAULT_CRITIC = "shapes-oracle"


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "prompt"


@app.command()
def generate(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="What the image should show."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, "--backbone", "-b", help="Backbone name (see `milr plugins`) or a local checkpoint folder."),
    critic: str = typer.Option(DEFAULT_CRITIC, "--critic", "-c", help="Critic name (see `milr plugins`)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="milr (default) or paper: the MILR authors' procedure."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="joint, alt, t2v, text-only, image-only."),
    steps: Optional[int] = typer.Option(None, "--steps", "-k", help="K: optimisation steps."),
    samples: Optional[int] = typer.Option(None, "--samples", help="Images per step (leave-one-out baseline when > 1)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate on the latents."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Stop once a reward exceeds this."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML, YAML or JSON file of RunConfig settings."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/<prompt>-<time>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty output folder."),
    resume: bool = typer.Option(False, "--resume", help="Go on with the interrupted run in --out; prompt and settings must be the same."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: best available)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32, bfloat16, float16 (default: by device)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Generate an image for PROMPT and improve it with MILR until the critic is satisfied."""
    from .config import load_config
    from .plugins import registry
    from .report import write_report
    from .runs import RunDir

    try:
        from .bench.prompts import MAX_PROMPT, prompt_problem

        if len(prompt) > MAX_PROMPT:  # checked before anything loads; the error does not echo it
            raise MilrError(prompt_problem(prompt))
        if not prompt.strip():
            raise MilrError("the prompt is empty")
        cfg = load_config(
            config, preset=preset, steps=steps, samples=samples, lr=lr, threshold=threshold, seed=seed, strategy=strategy
        )
        settings = {"prompt": prompt, "backbone": backbone, "critic": critic, "run": cfg.model_dump()}
        if resume:
            # refuse before loading anything heavy
            if out_dir is None or overwrite:
                raise MilrError("--resume needs --out, the folder of the run to go on with, and no --overwrite")
            run_dir = RunDir(out_dir, resume=True)
            run_dir.check_settings(settings)
            if run_dir.complete():
                out.print(f"{out_dir} is already complete; nothing to resume", highlight=False, soft_wrap=True)
                return
            state = run_dir.read_state()
        reg = registry()
        # check every name before loading anything heavy
        strategy_obj = reg.create("strategy", cfg.strategy)
        critic_entry = reg.get("critic", critic)
        backbone_obj = reg.backbone(backbone, device=device, dtype=dtype)
        hardware = _hardware(backbone_obj)
        if resume:
            run_dir.check_hardware(hardware)
        critic_obj = critic_entry.factory(backbone=backbone_obj)
        root = out_dir or Path("runs") / f"{_slug(prompt)}-{time.strftime('%Y%m%d-%H%M%S')}"
        from .engine import Result, json_number

        if resume:
            kept = run_dir.rewind(state.step)  # steps whose files are on disk, for an interrupted run
        else:
            run_dir = RunDir(root, overwrite=overwrite)
            backbone_obj.configure(cfg)
            run_dir.write_config({**settings, "hardware": hardware, "prompts": backbone_obj.prompt_strings(prompt)})
            state, kept = None, []
        try:
            result = _run_with_progress(backbone_obj, critic_obj, strategy_obj, prompt, cfg, run_dir, as_json, kept, state)
            interrupted = False
        except KeyboardInterrupt:
            if not kept:
                raise
            result, interrupted = Result.from_steps(kept, return_image=cfg.return_image), True
        run_dir.write_final(result, interrupted=interrupted)
        page = write_report([root])
    except KeyboardInterrupt:
        fail("interrupted", 130)  # before the first step was on disk, or while writing the final files
    except MilrError as exc:
        if isinstance(exc, UnknownName) and registry().failures:
            broken = ", ".join(source for source, _ in registry().failures)
            exc = MilrError(f"{exc} (plugins that failed to load: {broken}; see `milr plugins`)")
        fail(str(exc), exc.exit_code)
    if interrupted:
        fail(
            f"interrupted after step {kept[-1].step} of {cfg.steps}; the steps so far, the best image and the report "
            f"are in {root}; to go on: {_resume_command(ctx, root)}",
            130,
        )

    summary = {
        "out": str(root),
        "final_image": str(root / "final.png"),
        "report": str(page),
        "reward": json_number(result.final_reward),
        "step": result.final_step,
        "best_reward": json_number(result.best_reward),
        "steps_run": len(result.steps) - 1,
        "stopped_early": result.stopped_early,
        "reasoning": result.final_reasoning,
        "rewards": [s.trace()["rewards"] for s in result.steps],
    }
    if as_json:
        print(json.dumps(summary))
    else:
        if cfg.return_image == "last":
            label, nan = "reward of the last image", "none (the critic gave NaN)"
        else:
            label, nan = "best reward", "none (the critic gave NaN for every image)"
        reward = nan if summary["reward"] is None else f"{result.final_reward:.3f}"
        out.print(f"{label} [bold]{reward}[/] at step {result.final_step}; image: {root / 'final.png'}")
        out.print(f"reasoning: {result.final_reasoning}", highlight=False)
        out.print(f"report: {page}", highlight=False, soft_wrap=True)


def _hardware(backbone) -> dict[str, str]:
    """The device type and dtype a backbone runs on, as `--device` / `--dtype` name them."""
    out = {}
    if getattr(backbone, "device", None) is not None:
        out["device"] = str(backbone.device.type if hasattr(backbone.device, "type") else backbone.device)
    if getattr(backbone, "dtype", None) is not None:
        out["dtype"] = str(backbone.dtype).removeprefix("torch.")
    return out


def _resume_command(ctx: typer.Context, root: Path) -> str:
    """This command as typed (flags as given), with --out ROOT and --resume: it goes on with the run."""
    words = ["milr", "generate"]
    for param in ctx.command.params:
        if param.name in ("out_dir", "overwrite", "resume") or ctx.get_parameter_source(param.name).name != "COMMANDLINE":
            continue
        value = ctx.params[param.name]
        if param.param_type_name == "argument":
            words.append(str(value))
        elif param.is_flag:
            words.append(param.opts[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join([*words, "--out", str(root), "--resume"])


def _run_with_progress(backbone, critic, strategy, prompt, cfg, run_dir, quiet: bool, kept: list, state=None):
    from .engine import run_milr
    from .interfaces import PromptRecord

    progress = Progress(
        TextColumn("[bold]MILR[/]"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TextColumn("reward {task.fields[reward]}  best {task.fields[best]}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    )
    # a resumed run starts from its earlier steps
    best = [max((r for s in kept for r in s.rewards if not math.isnan(r)), default=float("-inf"))]

    with progress:
        task = progress.add_task("milr", total=cfg.steps, completed=kept[-1].step if kept else 0, reward="-", best="-")

        def on_step(step):
            run_dir.write_step(step)
            kept.append(step)
            valid = [r for r in step.rewards if r == r]
            if valid:
                best[0] = max(best[0], *valid)
            last = f"{max(valid):.3f}" if valid else "nan"
            progress.update(task, completed=step.step, reward=last, best=f"{best[0]:.3f}")

        return run_milr(
            backbone, critic, strategy, PromptRecord(prompt), cfg, on_step, run_dir.write_state, resume=state, earlier=kept[:]
        )


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the backbones, critics and strategies that are installed, and where each comes from."""
    from .plugins import KINDS, registry

    reg = registry()
    if as_json:
        data = {
            kind: [{"name": e.name, "source": e.source, "description": e.description} for e in reg.entries[kind].values()]
            for kind in KINDS
        }
        data["failures"] = [{"source": s, "error": e} for s, e in reg.failures]
        print(json.dumps(data, indent=2))
        return
    table = Table("kind", "name", "from", "description")
    for kind in KINDS:
        for name in reg.names(kind):
            e = reg.entries[kind][name]
            table.add_row(kind, name, e.source, e.description)
    out.print(table)
    for source, error in reg.failures:
        err.print(f"[yellow]plugin {source} failed to load:[/] {error}", highlight=False)


@app.command()
def report(
    folders: list[Path] = typer.Argument(..., help="One `generate` run folder, or one or more `bench` folders to compare."),
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the page (default: report.html in the first folder)."),
) -> None:
    """Write an HTML page (images embedded) showing what a run or a benchmark did."""
    from .report import write_report

    try:
        page = write_report(folders, out_file)
    except MilrError as exc:
        fail(str(exc), exc.exit_code)
    out.print(f"report: {page}", highlight=False, soft_wrap=True)


# `milr bench` and `milr eval` live with the runner; their heavy imports happen when they run.
from .bench.cli import bench, evaluate, export  # noqa: E402

app.command("bench")(bench)
app.command("eval")(evaluate)
app.command("export")(export)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
