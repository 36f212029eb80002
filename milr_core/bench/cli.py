"""`milr bench`, `milr eval` and `milr export`; registered on the app in milr_core/cli.py. Heavy imports stay inside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ..console import err, explain, fail, out
from ..errors import MilrError
from ..flags import BACKBONE_OPTION, CONFIG_OPTION, CRITIC_OPTION, DTYPE_OPTION, choices, key_values, run_options
from .export import FORMATS
from .modes import MODES


def _interrupted(root: Path) -> str:
    """What an interrupted `milr bench` leaves, and how to go on: finished prompts are whole files on disk,
    and the same command skips them."""
    from .layout import BenchDir

    folder = BenchDir(root)
    if not (root / "config.json").is_file():
        return "interrupted before any output was written"
    total = folder.read_config().get("settings", {}).get("prompts", "?")
    done = folder.count_finished(folder.prompt_indices())
    return (f"interrupted; {done} of {total} prompts are finished and kept in {root}; "
            "run the same command again to go on with the rest")


@run_options
def bench(
    name: str = typer.Argument(..., help="Benchmark: geneval, t2i-compbench, wise, shapes (see `milr plugins`)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="Prompt file (or T2I-CompBench folder)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N prompts (may grow on a later run)."),
    mode: choices("Mode", MODES) = typer.Option("milr", "--mode", "-m", help="What runs on each prompt."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Backbone name or checkpoint folder (default: the benchmark's)."),
    critic: Optional[str] = typer.Option(None, "--critic", "-c", help="Critic that guides MILR / picks Best-of-N (default: the benchmark's)."),
    backbone_option: Optional[list[str]] = BACKBONE_OPTION,
    critic_option: Optional[list[str]] = CRITIC_OPTION,
    n: Optional[int] = typer.Option(None, "--n", help="Best-of-N: N images per run."),
    n_from: Optional[Path] = typer.Option(None, "--n-from", help="Best-of-N: N = a MILR bench folder's mean images."),
    images_per_prompt: int = typer.Option(1, "--images-per-prompt", min=1, help="Runs per prompt (GenEval: 4)."),
    config: Optional[Path] = CONFIG_OPTION,
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (runs/bench-<name>-<mode>)."),
    force_mix: bool = typer.Option(False, "--force-mix", help="Add to a folder made with other settings."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda ... (under torchrun: each rank's GPU)."),
    dtype: Optional[str] = DTYPE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (progress stays on stderr)."),
    run: dict[str, Any] = None,
) -> None:
    """Run a benchmark: baseline, Best-of-N or MILR on each prompt, in GenEval's folder layout; resumable,
    and sharded across processes under torchrun. The seed of prompt i's run k is seed + i * images + k."""
    from .api import bench as run_bench
    from .summary import table

    mode = mode.value
    try:
        summary = run_bench(
            name, mode=mode, prompts=prompts, limit=limit, backbone=backbone, critic=critic, n=n, n_from_folder=n_from,
            images_per_prompt=images_per_prompt, out=out_dir, force_mix=force_mix, config=config,
            backbone_options=key_values(backbone_option, "--backbone-option"),
            critic_options=key_values(critic_option, "--critic-option"),
            device=device, dtype=dtype, console=err, show_progress=True, **run,
        )
    except MilrError as exc:
        fail(str(explain(exc)), exc.exit_code)
    except KeyboardInterrupt:
        fail(_interrupted(out_dir or Path("runs") / f"bench-{name}-{mode}"), 130)
    if summary is None:  # not rank 0: rank 0 reports
        return
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(table(summary, f"{name} · {summary['mode']} · {summary['critic']} · "
                                 f"{summary['finished']}/{summary['prompts']} prompts"))
        out.print(f"outputs: {out_dir or Path('runs') / f'bench-{name}-{mode}'}", highlight=False)


def evaluate(
    folder: Path = typer.Argument(..., help="A `milr bench` output folder."),
    critic: str = typer.Option(..., "--critic", "-c", help="Critic that scores the saved images."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Backbone for critics that need one (self)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Correct when reward > this (critics "
                                              "without a verdict); default: the bench run's threshold."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda ..."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score an existing bench folder's images with another critic: writes eval-<critic>.json."""
    from .evaluate import evaluate_folder
    from .summary import table

    try:
        summary = evaluate_folder(folder, critic, backbone=backbone, threshold=threshold, device=device,
                                  console=err, show_progress=not as_json and err.is_terminal)
    except MilrError as exc:
        fail(str(exc), exc.exit_code)
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(table(summary, f"{folder} scored by {critic}"))
        out.print(f"written: {folder / summary['file']}", highlight=False)


def export(
    folder: Path = typer.Argument(..., help="A `milr bench` output folder."),
    fmt: choices("Format", FORMATS) = typer.Option(..., "--format", "-f", help="The file names these evaluators read."),
    dest: Path = typer.Option(..., "--out", "-o", help="Where the renamed images go: an empty or new folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Empty --out first when it holds anything."),
) -> None:
    """Place a bench folder's images under the names T2I-CompBench's or WISE's own evaluators read."""
    from .export import export_folder

    try:
        counts = export_folder(folder, fmt.value, dest, overwrite)
    except MilrError as exc:
        fail(str(exc), exc.exit_code)
    left = f"; {counts['unfinished']} unfinished prompts left out" if counts["unfinished"] else ""
    out.print(f"{counts['images']} images of {counts['prompts']} prompts in {dest}{left}", highlight=False)
