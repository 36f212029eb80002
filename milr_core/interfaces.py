"""The three extension points of milr: Backbone, Critic, Strategy.

The engine (engine.py) talks to models only through these classes, so a new
generator, reward or search schedule is a plugin, never a change to the core.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and PIL are imported lazily to keep `milr plugins` fast
    import torch
    from PIL.Image import Image

TEXT = "text"
IMAGE = "image"
GROUPS = (TEXT, IMAGE)


@dataclass
class PromptRecord:
    """One prompt with the benchmark metadata that critics may read.

    The fields follow GenEval's metadata (`tag`, `include`, `exclude`); any other
    keys of a benchmark's record are kept in `extra`.
    """

    prompt: str
    tag: str | None = None
    include: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptRecord:
        known = {"prompt", "tag", "include", "exclude"}
        return cls(
            prompt=data["prompt"],
            tag=data.get("tag"),
            include=list(data.get("include") or []),
            exclude=list(data.get("exclude") or []),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": self.prompt}
        if self.tag is not None:
            out["tag"] = self.tag
        if self.include:
            out["include"] = self.include
        if self.exclude:
            out["exclude"] = self.exclude
        out.update(self.extra)
        return out


@dataclass
class Score:
    """A critic's verdict on one image: `value` in [0, 1] and why."""

    value: float
    detail: str = ""


@dataclass
class Reasoning:
    """Reasoning text for a batch of rows.

    `tokens[i]` are the generated token ids of row i (no prompt), `hidden[i]` the
    final-layer hidden states that produced them (one vector per token, shape
    (len(tokens[i]), d)), `text[i]` the decoded string.
    """

    tokens: list[torch.Tensor]
    hidden: list[torch.Tensor]
    text: list[str]


@dataclass
class Drawing:
    """Images for a batch of rows.

    `tokens` (n, num_image_tokens) are the VQ token ids; `hidden` (n, keep, d)
    the final-layer hidden states that produced the first `keep` tokens of each
    row (conditional CFG row only).
    """

    tokens: torch.Tensor
    hidden: torch.Tensor


@dataclass
class ReasonJob:
    """One prompt's rows in a batched `Backbone.reason_many` call (arguments as `Backbone.reason`)."""

    prompt: str
    prefixes: torch.Tensor | None
    max_new_tokens: int
    temperature: float = 0.0
    generator: torch.Generator | None = None


@dataclass
class DrawJob:
    """One prompt's rows in a batched `Backbone.draw_many` call (arguments as `Backbone.draw`)."""

    prompt: str
    reasoning: list[str]
    prefixes: torch.Tensor | None
    generator: torch.Generator | None = None

    @property
    def rows(self) -> int:
        return len(self.reasoning)


class Backbone(ABC):
    """A unified generator: reasoning text first, then an image conditioned on it.

    Latents are final-layer hidden states; the backbone's heads map them to
    token logits. The engine optimises latents through `text_logits` and
    `image_logits` only: the backbone's weights never change.
    """

    name: str = "backbone"

    @property
    @abstractmethod
    def hidden_size(self) -> int: ...

    @property
    @abstractmethod
    def num_image_tokens(self) -> int: ...

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype: ...

    @abstractmethod
    def reason(
        self,
        prompt: str,
        prefixes: torch.Tensor | None,
        max_new_tokens: int,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Reasoning:
        """Write the reasoning text for `prompt`.

        `prefixes` (n, m) forces the first m tokens of each of n rows; None
        writes one row from scratch. Temperature 0 is greedy.
        """

    @abstractmethod
    def draw(
        self,
        prompt: str,
        reasoning: list[str],
        prefixes: torch.Tensor | None,
        *,
        cfg_scale: float,
        temperature: float,
        keep_hidden: int,
        generator: torch.Generator | None = None,
    ) -> Drawing:
        """Generate one image per entry of `reasoning`, conditioned on
        `"{prompt}. {reasoning}"`, with the first m tokens of row i forced to
        `prefixes[i]` when given (shape (n, m))."""

    @abstractmethod
    def text_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Text-vocabulary logits for latents of shape (..., d); differentiable in latents."""

    @abstractmethod
    def image_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Image-codebook logits for latents of shape (..., d); differentiable in latents."""

    @abstractmethod
    def decode(self, tokens: torch.Tensor) -> list[Image]:
        """VQ tokens (n, num_image_tokens) -> n PIL images."""

    def max_rows(self) -> int:
        """How many images fit in one `draw` call on this hardware."""
        return 1

    # Batched variants: many prompts' rows in one call, each job drawing only from its own
    # generator, so that a job's outputs do not depend on the jobs that share its call.
    # The defaults run one job at a time; a backbone that can batch overrides them.
    def reason_many(self, jobs: list[ReasonJob]) -> list[Reasoning]:
        """`reason` for each job; one Reasoning per job."""
        return [self.reason(j.prompt, j.prefixes, j.max_new_tokens, j.temperature, j.generator) for j in jobs]

    def draw_many(self, jobs: list[DrawJob], *, cfg_scale: float, temperature: float, keep_hidden: int) -> list[Drawing]:
        """`draw` for each job; one Drawing per job."""
        return [
            self.draw(j.prompt, j.reasoning, j.prefixes, cfg_scale=cfg_scale, temperature=temperature,
                      keep_hidden=keep_hidden, generator=j.generator)
            for j in jobs
        ]


class Critic(ABC):
    """Scores images against a prompt record. Deterministic given its inputs."""

    name: str = "critic"
    #: pip requirement strings this critic needs beyond milr-core (shown by `milr plugins`).
    requires: tuple[str, ...] = ()

    @abstractmethod
    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        """One Score per image, values in [0, 1]."""


class Strategy(ABC):
    """Which latent groups (TEXT, IMAGE) move at step k of K (1-based)."""

    name: str = "strategy"

    @abstractmethod
    def groups(self, step: int, steps: int) -> frozenset[str]: ...
