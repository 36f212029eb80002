"""Run configuration: validated once at the edge (CLI, files), typed inside."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import MilrError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib


#: The settings each preset gives the fields a run does not set itself. `milr` is the
#: fields' own defaults: the paper's choices except where a measurement says otherwise (the
#: reasoning continuation sampled at 0.7, K = 20; docs/concepts.md, "milr and the paper").
#: `paper` is the MILR authors' Janus-Pro procedure with their GenEval scripts' settings
#: (../shared/MILR_REFERENCE.md).
PRESETS: dict[str, dict[str, Any]] = {
    "milr": {},
    "paper": {
        "steps": 30,
        "lr": 0.03,
        "optimizer": "adam",
        "text_ratio": 0.2,
        "image_ratio": 0.02,
        "threshold": 0.9,
        "samples": 1,
        "baseline": 1.0,
        "cfg_scale": 5.0,
        "temperature": 1.0,
        "text_temperature": 0.0,
        "continuation_temperature": 0.0,
        "max_reasoning_tokens": 512,
        "continuation_tokens": 513,
        "l2": 0.0,
        "image_policy": "guided",
        "loss_target": "argmax",
        "prefix_rule": "floor",
        "reward_shaping": "binary",
        "return_image": "last",
        "ablations": "paper",
    },
}


class RunConfig(BaseModel):
    """Everything that decides what one MILR run does (MILR.md, Algorithm 1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    preset: Literal["milr", "paper"] = Field(
        "milr",
        description="Defaults for every field not set: milr (the paper's procedure with a sampled reasoning "
        "continuation, measured better; docs/concepts.md) or paper (the MILR authors' Janus-Pro procedure and "
        "GenEval settings).",
    )
    steps: int = Field(20, ge=0, le=1000, description="K: optimisation steps after the first image (0 = baseline only).")
    lr: float = Field(0.03, gt=0, le=10, allow_inf_nan=False, description="Learning rate of the optimiser on the latents (paper: 0.03).")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="Optimiser on the latents.")
    text_ratio: float = Field(0.2, gt=0, le=1, allow_inf_nan=False, description="lambda_t: share of reasoning-text tokens whose latents are optimised.")
    image_ratio: float = Field(0.02, gt=0, le=1, allow_inf_nan=False, description="lambda_v: share of image tokens whose latents are optimised.")
    threshold: float = Field(0.9, ge=0, le=1, allow_inf_nan=False, description="tau: stop as soon as a reward exceeds it.")
    samples: int = Field(1, ge=1, le=64, description="Images per step; >1 uses a leave-one-out baseline.")
    baseline: float = Field(
        1.0, ge=0, le=1, allow_inf_nan=False, description="Reward baseline with one sample per step (1.0 = the reference's r-1 convention)."
    )
    seed: int = Field(0, description="Seed of every random choice in the run.")
    cfg_scale: float = Field(5.0, ge=1, le=50, allow_inf_nan=False, description="Classifier-free guidance scale for image tokens.")
    temperature: float = Field(1.0, gt=0, le=10, allow_inf_nan=False, description="Sampling temperature of image tokens.")
    text_temperature: float = Field(
        0.0, ge=0, le=10, allow_inf_nan=False, description="Temperature of the first reasoning text (0 = greedy, as without MILR)."
    )
    continuation_temperature: float = Field(
        0.7,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="Temperature of the reasoning text continued after each text-latent update (0 = greedy, as the reference code).",
    )
    max_reasoning_tokens: int = Field(512, ge=1, le=4096, description="Most new tokens of reasoning text.")
    continuation_tokens: int | None = Field(
        513,
        ge=1,
        le=4096,
        description="Most new tokens continued after a text prefix (None: max_reasoning_tokens minus the prefix; the reference: 513).",
    )
    l2: float = Field(0.0, ge=0, allow_inf_nan=False, description="Weight of the L2 pull of latents towards their start values.")
    strategy: str = Field("joint", description="Which latents move at each step: joint, alt, t2v, text-only, image-only.")
    image_policy: Literal["guided", "conditional"] = Field(
        "guided",
        description="Distribution of the image prefix and its loss: guided (CFG of both rows' latents, what the image "
        "is drawn from; paper) or conditional (the conditional row's head alone).",
    )
    loss_target: Literal["drawn", "argmax"] = Field(
        "argmax",
        description="Tokens whose log-probability the loss weighs: drawn (the prefix the rewarded image was made "
        "from) or argmax (the most likely tokens under the current latents; paper).",
    )
    prefix_rule: Literal["ceil", "floor"] = Field(
        "floor",
        description="Prefix lengths: ceil(ratio * T), at least 1, T without the end token; or floor: int(ratio * T), "
        "T counting the end token, and no search at all when a length is 0 (paper).",
    )
    reward_shaping: Literal["fraction", "binary"] = Field(
        "binary",
        description="For critics that judge correctness (oracles): the critic's graded score (fraction) or 1/0 by "
        "its verdict (binary; paper). Other critics' scores are used as they are.",
    )
    return_image: Literal["best", "last"] = Field(
        "last", description="Which image a run returns: the last generated (paper) or the best scored."
    )
    ablations: Literal["milr", "paper"] = Field(
        "paper",
        description="How text-only and image-only searches are built: milr (every image conditioned on the "
        "reasoning text, text-only keeps the first image's prefix) or paper (image-only writes no reasoning "
        "text, text-only draws each image without a forced prefix).",
    )
    advantage_norm: bool = Field(
        False,
        description="Estimator variant: divide a step's advantages by their standard deviation over its samples "
        "(with samples > 1), so the step size does not scale with the reward spread.",
    )
    trust_region: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="Estimator variant: after each step, every latent vector is pulled back to within this L2 "
        "distance of its start value (0 = off).",
    )
    image_lr_scale: float = Field(
        1.0,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="Estimator variant (per-group step sizes): the image latents' learning rate is lr times this "
        "(1 = one rate for both groups).",
    )
    running_baseline: bool = Field(
        False,
        description="Estimator variant (a learned baseline): with one sample per step, each update's baseline is "
        "the mean reward of the images before the rewarded one (the first update uses `baseline`). With binary "
        "rewards and a threshold below 1 every earlier image failed, so it is 0: pair it with reward_shaping = "
        "fraction. Needs samples = 1 (more samples use a leave-one-out baseline).",
    )
    prefix_schedule: Literal["fixed", "first-score"] = Field(
        "fixed",
        description="Prefix ratios per prompt: fixed (text_ratio and image_ratio) or first-score, both ratios times "
        "2 - s, s the mean critic value (not the shaped reward) of step 0's images, clamped to 0..1, each ratio "
        "capped at 1: a first image far from the prompt searches up to twice the prefix, one that nearly passes "
        "keeps the fixed ratios.",
    )
    frozen: bool = Field(
        False,
        description="Resample control: the latents never move (no gradient step), everything else as in MILR; "
        "what `milr bench --mode resample` runs.",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """A preset fills the fields the caller did not set; set fields win."""
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "milr")
        if preset not in PRESETS:
            return data  # the field's own check names the allowed values
        return {**PRESETS[preset], **data}

    @model_validator(mode="after")
    def _running_baseline_needs_one_sample(self) -> RunConfig:
        if self.running_baseline and self.samples > 1:
            raise ValueError("running_baseline needs samples = 1 (more samples use a leave-one-out baseline)")
        return self


# a config file holds run settings (at the top level or under [run]) and component options
TABLES = ("run", "backbone", "critic")


def _read_file(path: Path) -> dict[str, Any]:
    """The file's tables, {"run": {...}, "backbone": {...}, "critic": {...}}, the layout checked."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise MilrError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise MilrError(f"{path}: YAML configs need PyYAML (pip install pyyaml)") from None
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise MilrError(f"{path}: config files must end in .toml, .yaml, .yml or .json")
    except MilrError:
        raise
    except Exception as exc:  # parse errors of three libraries
        raise MilrError(f"{path}: not valid {path.suffix[1:].upper()}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise MilrError(f"{path}: expected a table of settings at the top level")
    for table in TABLES:
        if table in data and not isinstance(data[table], dict):
            raise MilrError(f"{path}: `{table}` must be a table of settings ([{table}])")
    if "run" in data:
        loose = sorted(set(data) - set(TABLES))
        if loose:
            raise MilrError(f"{path}: `{loose[0]}` is at the top level beside a [run] table; "
                            "put the run settings either all under [run] or all at the top level")
        return data
    return {"run": {k: v for k, v in data.items() if k not in TABLES},
            **{k: v for k, v in data.items() if k in TABLES and k != "run"}}


def read_options(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """The [backbone] and [critic] tables of a config file: options for those components."""
    data = _read_file(Path(path)) if path else {}
    return {kind: dict(data.get(kind, {})) for kind in ("backbone", "critic")}


def describe(exc: ValidationError, where: str = "config") -> str:
    """One line naming each bad field, its value and what is allowed."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "config"
        parts.append(f"{field}={err.get('input')!r}: {err['msg']}")
    return f"invalid {where}: " + "; ".join(parts)


def load_config(path: str | Path | None = None, **overrides: Any) -> RunConfig:
    """File settings (optional), then overrides that are not None."""
    data = dict(_read_file(Path(path)).get("run", {})) if path else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RunConfig(**data)
    except ValidationError as exc:
        raise MilrError(describe(exc, str(path) if path else "config")) from None


def settings_and_options(config: str | Path | RunConfig | None, settings: dict[str, Any],
                         backbone_options: dict[str, Any] | None, critic_options: dict[str, Any] | None):
    """(RunConfig, backbone options, critic options) of an API call: `config` (a file or a RunConfig)
    under the keywords given; a file's [backbone] / [critic] tables under the options given."""
    if isinstance(config, RunConfig):
        # validated again, so that a preset among `settings` fills what the config did not set
        run = load_config(None, **{**config.model_dump(exclude_unset=True), **settings})
        return run, dict(backbone_options or {}), dict(critic_options or {})
    tables = read_options(config)
    return (load_config(config, **settings), {**tables["backbone"], **(backbone_options or {})},
            {**tables["critic"], **(critic_options or {})})

