"""`milr` command line: generate, bench, eval, export, plugins, report; a thin layer over milr_core.api."""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from .api import DEFAULT_BACKBONE, DEFAULT_CRITIC
from .bench.cli import bench, evaluate, export
from .console import err, explain, fail, out
from .errors import MilrError
from .flags import BACKBONE_OPTION, CONFIG_OPTION, CRITIC_OPTION, DTYPE_OPTION, key_values, run_options

app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="MILR: test-time latent reasoning for image generators.")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"milr {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version of milr-core and exit.")) -> None:
    """MILR: test-time latent reasoning for image generators."""


def _new_folder(base: Path) -> Path:
    """`base`, or base-2, base-3 ... when a run of the same prompt started in the same second."""
    n = 1
    while (path := base if n == 1 else base.with_name(f"{base.name}-{n}")).exists():
        n += 1
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "prompt"


@run_options
def generate(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="What the image should show."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, "--backbone", "-b", help="Backbone name (see `milr plugins`) or a local checkpoint folder."),
    critic: str = typer.Option(DEFAULT_CRITIC, "--critic", "-c", help="Critic name (see `milr plugins`)."),
    backbone_option: Optional[list[str]] = BACKBONE_OPTION,
    critic_option: Optional[list[str]] = CRITIC_OPTION,
    config: Optional[Path] = CONFIG_OPTION,
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/<prompt>-<time>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Empty a non-empty output folder first."),
    resume: bool = typer.Option(False, "--resume", help="Go on with the interrupted run in --out; prompt and settings must be the same."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: best available)."),
    dtype: Optional[str] = DTYPE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (progress stays on stderr)."),
    run: dict[str, Any] = None,
) -> None:
    """Generate an image for PROMPT and improve it with MILR until the critic is satisfied."""
    from . import api
    from .config import load_config, read_options
    from .engine import json_number
    from .report import write_report

    root = out_dir or _new_folder(Path("runs") / f"{_slug(prompt)}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        cfg = load_config(config, **run)
        options = read_options(config)
        progress = StepProgress(cfg.steps, plain=as_json or not err.is_terminal)
        with progress:
            result = api.generate(
                prompt, backbone=backbone, critic=critic, out=out_dir if resume else root, overwrite=overwrite, resume=resume, config=cfg,
                backbone_options={**options["backbone"], **key_values(backbone_option, "--backbone-option")},
                critic_options={**options["critic"], **key_values(critic_option, "--critic-option")},
                device=device, dtype=dtype, on_step=progress.step, **run,
            )
        if result.already_complete:
            out.print(f"{root} is already complete; nothing to resume", highlight=False)
            return
        page = write_report([root])
    except api.Interrupted as exc:
        write_report([root])
        fail(f"{exc}; the steps so far, the best image and the report are in {root}; "
             f"to go on: {_resume_command(ctx, root)}", 130)
    except KeyboardInterrupt:
        fail("interrupted", 130)  # before the first step was on disk
    except MilrError as exc:
        fail(str(explain(exc)), exc.exit_code)

    res = result.result
    summary = {
        "out": str(root),
        "final_image": str(root / "final.png"),
        "report": str(page),
        "reward": result.reward,
        "step": res.final_step,
        "best_reward": json_number(res.best_reward),
        "steps_run": len(res.steps) - 1,
        "stopped_early": res.stopped_early,
        "reasoning": result.reasoning,
        "rewards": [s.trace()["rewards"] for s in res.steps],
    }
    if as_json:
        print(json.dumps(summary))
    else:
        if result.record.run.return_image == "last":
            label, nan = "reward of the last image", "none (the critic gave NaN)"
        else:
            label, nan = "best reward", "none (the critic gave NaN for every image)"
        reward = nan if result.reward is None else f"{result.reward:.3f}"
        out.print(f"{label} [bold]{reward}[/] at step {res.final_step}; image: {root / 'final.png'}")
        out.print(f"reasoning: {result.reasoning}", highlight=False)
        out.print(f"report: {page}", highlight=False)


app.command()(generate)


class StepProgress:
    """A bar on a terminal; elsewhere (a log file, a pipe, --json) one plain line per step on stderr."""

    def __init__(self, total: int, plain: bool):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.total = total
        self.plain, self.best = plain, None
        self.bar = Progress(TextColumn("[bold]MILR[/]"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
                            TextColumn("reward {task.fields[reward]}  best {task.fields[best]}"), TimeElapsedColumn(),
                            console=err, disable=plain)
        self.task = self.bar.add_task("milr", total=self.total, reward="-", best="-")

    def step(self, step) -> None:
        valid = [r for r in step.rewards if r == r]
        if valid:
            self.best = max(valid) if self.best is None else max(self.best, *valid)
        last = f"{max(valid):.3f}" if valid else "nan"
        best = "-" if self.best is None else f"{self.best:.3f}"
        if self.plain:
            print(f"step {step.step}/{self.total} reward {last} best {best}", file=sys.stderr, flush=True)
        self.bar.update(self.task, completed=step.step, reward=last, best=best)

    def __enter__(self) -> StepProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()


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
        elif param.multiple:
            for item in value:
                words += [param.opts[0], str(item)]
        else:
            words += [param.opts[0], str(value)]
    return shlex.join([*words, "--out", str(root), "--resume"])


@app.command()
def plugins(
    options: Optional[str] = typer.Option(None, "--options", metavar="NAME", help="List the options of one backbone or critic."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List the backbones, critics, strategies and benchmarks that are installed, and where each comes from."""
    from rich.table import Table

    from .plugins import KINDS, registry

    reg = registry()
    if options is not None:
        _plugin_options(reg, options, as_json)
        return
    if as_json:
        data = {
            kind: [{"name": e.name, "source": e.source, "description": e.description,
                    "options": sorted(e.options.model_fields) if e.options else []}
                   for e in reg.entries[kind].values()]
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


def _type_name(annotation) -> str:
    """`float`, `str | None` ... as the user would write it; `Optional[X]` shows as X (unset = default)."""
    import types
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "").replace("pathlib.", "")


def _plugin_options(reg, name: str, as_json: bool) -> None:
    from rich.table import Table

    entries = [reg.entries[kind][name] for kind in ("backbone", "critic") if name in reg.entries[kind]]
    if not entries:
        fail(f"no backbone or critic named {name!r} (see `milr plugins`)")
    rows = []
    for e in entries:
        for field, info in (e.options.model_fields.items() if e.options else []):
            default = info.get_default(call_default_factory=True)
            rows.append({"kind": e.kind, "option": field, "type": _type_name(info.annotation),
                         "default": None if default is None else str(default), "description": info.description or ""})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print(f"{name} takes no options", highlight=False)
        return
    table = Table("kind", "option", "type", "default", "description", title=f"options of {name}")
    for r in rows:
        table.add_row(r["kind"], r["option"], r["type"], r["default"] or "-", r["description"])
    out.print(table)


@app.command()
def report(
    folders: list[Path] = typer.Argument(..., help="One `generate` run folder, or one or more `bench` folders to compare."),
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="The page to write (default: report.html in a single folder, comparison.html here for several)."),
) -> None:
    """Write an HTML page (images embedded) showing what a run or a benchmark did."""
    from .report import write_report

    try:
        page = write_report(folders, out_file)
    except MilrError as exc:
        fail(str(exc), exc.exit_code)
    out.print(f"report: {page}", highlight=False)


app.command("bench")(bench)
app.command("eval")(evaluate)
app.command("export")(export)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
