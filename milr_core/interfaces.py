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

    A backbone with a categorical image head (Janus) returns `tokens` (n, num_image_tokens),
    the image token ids, and `hidden` (n, keep, d), the final-layer hidden states that
    produced the first `keep` tokens of each row (conditional CFG row only); the engine
    turns the tokens into pixels with `decode`. A backbone without one (BAGEL, whose
    images are denoised VAE latents) returns the pixels in `images` and no tokens.
    """

    tokens: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    images: list[Image] | None = None


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
    def latent_groups(self) -> dict[str, int | None]:
        """The latent groups MILR may move, each with how many positions it offers: None for
        one per reasoning token written, a number for a fixed count. Declared by the backbone,
        never guessed: the default is text plus a categorical image head of `num_image_tokens`;
        a backbone without one (images from a diffusion decoder) declares `{TEXT: None}`."""
        return {TEXT: None, IMAGE: self.num_image_tokens}

    @property
    def num_image_tokens(self) -> int:
        """Image tokens per image, for a backbone with a categorical image head."""
        raise NotImplementedError(f"backbone {self.name} has no image tokens")

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
        """Generate one image per entry of `reasoning`, conditioned on the prompt and that
        reasoning text, with the first m image tokens of row i forced to `prefixes[i]`
        when given (shape (n, m); only where the backbone has an image group)."""

    @abstractmethod
    def text_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Text-vocabulary logits for latents of shape (..., d); differentiable in latents."""

    def image_logits(self, latents: torch.Tensor) -> torch.Tensor:
        """Image-codebook logits for latents of shape (..., d); differentiable in latents.
        Only for a backbone with a categorical image head."""
        raise NotImplementedError(f"backbone {self.name} has no image head")

    def decode(self, tokens: torch.Tensor) -> list[Image]:
        """Image tokens (n, num_image_tokens) -> n PIL images, for a backbone whose `draw` returns tokens."""
        raise NotImplementedError(f"backbone {self.name} draws pixels, not image tokens")

    def max_rows(self) -> int:
        """How many images fit in one `draw` call on this hardware."""
        return 1


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
