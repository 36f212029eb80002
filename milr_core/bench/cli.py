"""`milr bench` and `milr eval`; registered on the app in milr_core/cli.py. Heavy imports stay inside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import MilrError


def _n_from(folder: Path) -> int:
    """A previous run's mean images per final image, rounded: Best-of-N at MILR's cost."""
    path = folder / "summary.json"
    try:
        images = json.loads(path.read_text())["all"]["images"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        raise MilrError(f"{path}: no summary with mean images per prompt; finish that bench run first") from None
    return max(1, round(images))


def _plugin_versions(reg, **names: str) -> dict[str, str]:
    """Distribution and version behind each named benchmark / critic, for config.json."""
    from importlib import metadata

    found = {}
    for kind, name in names.items():
        source = reg.get(kind, name).source
        try:
            found[f"{kind} {name}"] = f"{source} {metadata.version(source)}"
        except metadata.PackageNotFoundError:
            found[f"{kind} {name}"] = source
    return found


def _interrupted(root: Path | None, records: list | None) -> str:
    """What an interrupted `milr bench` leaves, and how to go on: finished prompts are whole files on disk,
    and the same command skips them."""
    if root is None or not (root / "config.json").is_file():
        return "interrupted before any output was written"
    from .layout import BenchDir

    done = BenchDir(root).count_finished(range(len(records)))
    return (f"interrupted; {done} of {len(records)} prompts are finished and kept in {root}; "
            "run the same command again to go on with the rest")


def _check_backbone_name(reg, name: str) -> None:
    if name not in reg.entries["backbone"] and not Path(name).expanduser().is_dir():
        reg.get("backbone", name)  # raises UnknownName, listing the known ones


def bench(
    name: str = typer.Argument(..., help="Benchmark: geneval, t2i-compbench, wise, shapes (see `milr plugins`)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="Prompt file (or T2I-CompBench folder)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N prompts."),
    mode: str = typer.Option("milr", "--mode", "-m", help="baseline, best-of-n, milr or resample (MILR with frozen latents)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="milr (default) or paper: the MILR authors' procedure."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Backbone name or checkpoint folder."),
    critic: Optional[str] = typer.Option(None, "--critic", "-c", help="Critic that guides MILR / picks Best-of-N."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="joint, alt, t2v, text-only, image-only."),
    steps: Optional[int] = typer.Option(None, "--steps", "-k", help="K: MILR optimisation steps."),
    samples: Optional[int] = typer.Option(None, "--samples", help="MILR images per step."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Stop once a reward exceeds this."),
    n: Optional[int] = typer.Option(None, "--n", help="Best-of-N: N images per run."),
    n_from: Optional[Path] = typer.Option(None, "--n-from", help="Best-of-N: N = a MILR bench folder's mean images."),
    images_per_prompt: int = typer.Option(1, "--images-per-prompt", min=1, help="Runs per prompt (GenEval: 4)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML, YAML or JSON of RunConfig settings."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (runs/bench-<name>-<mode>)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Base seed; prompt i run k uses seed + i * images + k."),
    force_mix: bool = typer.Option(False, "--force-mix", help="Add to a folder made with other settings."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda ... (under torchrun: each rank's GPU)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32, bfloat16, float16 (default: by device)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run a benchmark: baseline, Best-of-N or MILR on each prompt, in GenEval's folder layout; resumable,
    and sharded across processes under torchrun."""
    from ..cli import err, fail, out
    from ..config import load_config
    from ..plugins import registry
    from .runner import BenchSettings, mode_config, prompts_hash, run_bench
    from .summary import table

    root = records = None  # what an interruption message can name
    try:
        reg = registry()
        benchmark = reg.create("benchmark", name)
        records = benchmark.load(prompts, limit)
        if not records:
            raise MilrError(f"{name}: the prompt set is empty")
        if n_from is not None:
            n = _n_from(n_from)
        run = mode_config(mode, load_config(config, preset=preset, steps=steps, samples=samples, threshold=threshold,
                                            seed=seed, strategy=strategy), n)
        from ..cli import DEFAULT_BACKBONE

        backbone = backbone or benchmark.backbone or DEFAULT_BACKBONE
        critic = critic or benchmark.critic
        if critic is None:
            raise MilrError(f"{name} has no default critic; pass --critic (see `milr plugins`)")
        reg.get("critic", critic)  # every name is checked before anything heavy loads
        reg.create("strategy", run.strategy)
        _check_backbone_name(reg, backbone)
        settings = BenchSettings(
            benchmark=name, prompts=len(records), prompts_sha256=prompts_hash(records), mode=mode, n=n,
            images_per_prompt=images_per_prompt, backbone=backbone, critic=critic, dtype=dtype, run=run,
        )
        root = out_dir or Path("runs") / f"bench-{name}-{mode}"
        summary = run_bench(settings, records, root, force_mix=force_mix, device=device, console=err,
                            environment={"prompts_file": str(prompts) if prompts else None,
                                         "plugins": _plugin_versions(reg, benchmark=name, critic=critic)},
                            show_progress=not as_json)
    except MilrError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail(_interrupted(root, records), 130)
    if summary is None:  # not rank 0: rank 0 reports
        return
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(table(summary, f"{name} · {mode} · {critic} · {summary['finished']}/{summary['prompts']} prompts"))
        out.print(f"outputs: {root}", highlight=False)


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
    from ..cli import err, fail, out
    from .evaluate import evaluate_folder
    from .summary import table

    try:
        summary = evaluate_folder(folder, critic, backbone=backbone, threshold=threshold, device=device,
                                  console=err, show_progress=not as_json)
    except MilrError as exc:
        fail(str(exc), exc.exit_code)
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(table(summary, f"{folder} scored by {critic}"))
        out.print(f"written: {folder / summary['file']}", highlight=False)


def export(
    folder: Path = typer.Argument(..., help="A `milr bench` output folder."),
    fmt: str = typer.Option(..., "--format", "-f", help="t2i-compbench or wise: the file names their evaluators read."),
    dest: Path = typer.Option(..., "--out", "-o", help="Where the renamed images go: an empty or new folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Empty --out first when it holds anything."),
) -> None:
    """Place a bench folder's images under the names T2I-CompBench's or WISE's own evaluators read."""
    from ..cli import fail, out
    from .export import export_folder

    try:
        counts = export_folder(folder, fmt, dest, overwrite)
    except MilrError as exc:
        fail(str(exc), exc.exit_code)
    left = f"; {counts['unfinished']} unfinished prompts left out" if counts["unfinished"] else ""
    out.print(f"{counts['images']} images of {counts['prompts']} prompts in {dest}{left}", highlight=False, soft_wrap=True)
