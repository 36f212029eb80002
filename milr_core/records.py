"""What milr writes to disk, as typed records: every writer builds one, every reader validates one.

    run folder (`milr generate`)      config.json: RunRecord    trace.jsonl: TraceLine per line
                                      final.json: Final
    bench folder (`milr bench`)       <index>/result.json: PromptResult    summary.json: Summary

`SCHEMA` counts incompatible changes of these layouts. No torch here: the report and the
export commands read records without the engine.
"""

from __future__ import annotations

import datetime
import json
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import RunConfig
from .errors import MilrError

SCHEMA = 1
# distributions every result names besides the ones that provided a component
BASE_DISTRIBUTIONS = ("milr-core", "torch", "transformers", "pydantic")

Record = TypeVar("Record", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Component(Strict):
    """One backbone or critic as a run used it: where it came from and its resolved options."""

    name: str
    source: str | None = Field(None, description="Distribution that registered it (None: a checkpoint folder).")
    version: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="Resolved options; secrets are never recorded.")


class Environment(Strict):
    """When, where and with what a result was made."""

    schema_version: int = SCHEMA
    date: str = Field(description="Start, ISO 8601 in UTC.")
    command: list[str] = Field(description="The command line as the process received it.")
    host: str
    device: str | None = None
    dtype: str | None = None
    versions: dict[str, str] = Field(description="Python and distribution -> version: milr-core, torch, each component's.")
    git: str | None = Field(None, description="Commit of the milr checkout the code ran from, if it is one.")


class RunRecord(Strict):
    """A generate run's config.json: what decides its outputs, and how it was made."""

    schema_version: int = SCHEMA
    prompt: str
    backbone: Component
    critic: Component
    run: RunConfig
    prompts: dict[str, str] = Field(default_factory=dict, description="The exact chat strings the backbone sent.")
    environment: Environment


class TraceLine(Strict):
    """One step of a generate run (one line of trace.jsonl); a NaN reward (skipped) is null."""

    step: int = Field(ge=0)
    groups: list[str]
    rewards: list[float | None]
    correct: list[bool | None] = Field(default_factory=list, description="The critic's own verdicts (oracles).")
    details: list[str]
    reasoning: list[str]
    loss: float | None
    seconds: float
    images: list[str]


class Final(Strict):
    """final.json: the image a run returns (the best scored, or the last with return_image = last)."""

    reward: float | None = Field(description="null when the critic gave NaN.")
    correct: bool | None = None
    step: int
    sample: int
    reasoning: str
    steps_run: int
    images_generated: int
    stopped_early: bool
    interrupted: bool
    image: str
    finished: str = Field(description="When the run ended, ISO 8601 in UTC.")
    seconds: float = Field(description="Wall time of this process's part of the run.")


class Sample(BaseModel):
    """One final image of a bench prompt (critics may add fields: extra keys are kept)."""

    model_config = ConfigDict(extra="allow")

    file: str
    reward: float | None = None
    detail: str = ""
    correct: bool | None = None
    images: int | None = None
    steps: int | None = None


class PromptResult(BaseModel):
    """<index>/result.json of a bench folder: written last, so a prompt is finished iff it exists."""

    model_config = ConfigDict(extra="allow")

    index: int
    prompt: str
    tag: str | None = None
    mode: str | None = None
    samples: list[Sample]
    seconds: float | None = None
    prompts: dict[str, str] = Field(default_factory=dict, description="The exact chat strings the backbone sent.")


class Summary(BaseModel):
    """summary.json of a bench folder (and eval-<critic>.json): per tag, overall and all images."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA
    prompts: int | None = None
    finished: int | None = None
    tags: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    all: dict[str, Any]


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise MilrError(f"{path} is missing") from None
    except OSError as exc:
        raise MilrError(f"cannot read {path}: {exc.strerror or exc}") from None


def read(path: Path, kind: type[Record]) -> Record:
    """A record from a JSON file, or a one-line error naming the file and what is wrong."""
    return parse(_text(path), kind, str(path))


def parse(text: str, kind: type[Record], where: str) -> Record:
    try:
        return kind.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise MilrError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "the top level"
        raise MilrError(f"{where}: not a {kind.__name__} record: {field}: {first['msg']}") from None


def read_lines(path: Path, kind: type[Record]) -> list[Record]:
    """Every line of a JSON-lines file as a record; a bad line is a one-line error naming it."""
    return [parse(line, kind, f"{path} line {n}") for n, line in enumerate(_text(path).splitlines(), start=1)]


def dumps(record: BaseModel) -> str:
    return record.model_dump_json(indent=2) + "\n"


def distribution_version(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(components: list[Component] = ()) -> dict[str, str]:
    """Python and every distribution that took part: the base ones and each component's source."""
    found = {"python": platform.python_version()}
    for name in (*BASE_DISTRIBUTIONS, *(c.source for c in components)):
        version = distribution_version(name)
        if version is not None:
            found[name] = version
    return found


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The commit of the checkout milr_core was imported from; None for an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():  # a directory, or a file in a git worktree
        return None
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "")


def environment(components: list[Component], device: str | None = None, dtype: str | None = None) -> Environment:
    return Environment(
        date=now(), command=list(sys.argv), host=socket.gethostname(), device=device, dtype=dtype,
        versions=versions(components), git=git_revision(),
    )


def public_options(options: BaseModel | None) -> dict[str, Any]:
    """Options as recorded: secret fields (pydantic SecretStr) are left out, never masked on disk."""
    if options is None:
        return {}
    from pydantic import SecretBytes, SecretStr

    return {k: v for k, v in options.model_dump(mode="json").items()
            if not isinstance(getattr(options, k), (SecretStr, SecretBytes))}

