"""`milr.bench(...)`: a benchmark run from Python; `milr bench` is a thin layer over it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import RunConfig, settings_and_options
from ..errors import MilrError


def n_from(folder: Path) -> int:
    """A previous run's mean images per final image, rounded: Best-of-N at MILR's cost."""
    path = Path(folder) / "summary.json"
    try:
        images = json.loads(path.read_text())["all"]["images"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        raise MilrError(f"{path}: no summary with mean images per prompt; finish that bench run first") from None
    return max(1, round(images))


def bench(
    name: str,
    *,
    mode: str = "milr",
    prompts: str | Path | None = None,
    limit: int | None = None,
    backbone: str | None = None,
    critic: str | None = None,
    n: int | None = None,
    n_from_folder: str | Path | None = None,
    images_per_prompt: int = 1,
    out: str | Path | None = None,
    force_mix: bool = False,
    config: str | Path | RunConfig | None = None,
    backbone_options: dict[str, Any] | None = None,
    critic_options: dict[str, Any] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    console=None,
    show_progress: bool = False,
    **settings: Any,
) -> dict[str, Any] | None:
    """Run a benchmark (baseline, best-of-n or milr on each prompt) into `out`; returns the
    summary (None on a torchrun rank other than 0). Resumable: finished prompts are kept."""
    from ..api import DEFAULT_BACKBONE
    from ..components import Spec, make_strategy
    from ..plugins import registry
    from .runner import BenchSettings, mode_config, prompts_hash, run_bench

    benchmark = registry().create("benchmark", name)
    records = benchmark.load(Path(prompts) if prompts is not None else None, limit)
    if not records:
        raise MilrError(f"{name}: the prompt set is empty")
    if n_from_folder is not None:
        n = n_from(Path(n_from_folder))
    cfg, backbone_options, critic_options = settings_and_options(config, settings, backbone_options, critic_options)
    run = mode_config(mode, cfg, n)
    backbone = backbone or benchmark.backbone or DEFAULT_BACKBONE
    critic = critic or benchmark.critic
    if critic is None:
        raise MilrError(f"{name} has no default critic; pass --critic (see `milr plugins`)")
    # every name and option is checked before anything heavy loads
    specs = {"backbone": Spec.resolve("backbone", backbone, backbone_options),
             "critic": Spec.resolve("critic", critic, critic_options), "benchmark": Spec.resolve("benchmark", name)}
    make_strategy(run.strategy)
    settings_ = BenchSettings(
        benchmark=name, prompts=len(records), prompts_sha256=prompts_hash(records), mode=mode, n=n,
        images_per_prompt=images_per_prompt, backbone=backbone, critic=critic, dtype=dtype, run=run,
        backbone_options=specs["backbone"].describe().options, critic_options=specs["critic"].describe().options,
    )
    root = Path(out) if out is not None else Path("runs") / f"bench-{name}-{mode}"
    return run_bench(settings_, records, root, specs, force_mix=force_mix, device=device, console=console,
                     environment={"prompts_file": str(prompts) if prompts else None}, show_progress=show_progress)
