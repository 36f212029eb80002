"""The three extension points of milr: Backbone, Critic, Strategy.

The engine (engine.py) talks to models only through these classes, so a new
generator, reward or search schedule is a plugin, never a change to the core.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import MilrError

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
    """A critic's verdict on one image: `value` in [0, 1] and why.

    `correct` is the critic's own 0/1 judgement where it has one (an oracle such as
    GenEval's rules: the benchmark's accuracy counts it); None for critics that only
    score, whose images a bench judges by `value > threshold`.
    """

    value: float
    detail: str = ""
    correct: bool | None = None


@dataclass
class Reasoning:
    """Reasoning text for a batch of rows.

    `tokens[i]` are the generated token ids of row i (no prompt, no end-of-sequence
    token), `hidden[i]` the final-layer hidden states that produced them (one vector
    per token, shape (len(tokens[i]), d)), `text[i]` the decoded string, `eos[i]`
    whether row i ended by emitting end-of-sequence (the reference counts that
    position in T, the length its prefix ratio applies to).
    """

    tokens: list[torch.Tensor]
    hidden: list[torch.Tensor]
    text: list[str]
    eos: list[bool] = field(default_factory=list)


@dataclass
class Drawing:
    """Images for a batch of rows.

    A backbone with a categorical image head (Janus) returns `tokens` (n, num_image_tokens),
    the image token ids, and `hidden` (n, keep, R, d), the final-layer hidden states that
    produced the first `keep` tokens of each image, one per guidance row (R = 2 with
    classifier-free guidance: the conditional row first, then the unconditional one); the
    engine turns the tokens into pixels with `decode`. A backbone without one (BAGEL, whose
    images are denoised VAE latents) returns the pixels in `images` and no tokens.
    """

    tokens: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    images: list[Image] | None = None


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

    def image_logits(self, latents: torch.Tensor, cfg_scale: float | None = None) -> torch.Tensor:
        """Image-codebook logits (..., V) for latents of shape (..., R, d), as `Drawing.hidden`
        holds them; differentiable in latents. `cfg_scale` None: the conditional row's logits
        alone; a number: the guided logits `u + cfg_scale * (c - u)`, what `draw` samples from.
        Only for a backbone with a categorical image head."""
        raise NotImplementedError(f"backbone {self.name} has no image head")

    def prompt_strings(self, prompt: str) -> dict[str, str]:
        """The exact chat strings this backbone sends for `prompt` (recorded with each run);
        the image's names the reasoning text `{reasoning}`."""
        return {}

    def decode(self, tokens: torch.Tensor) -> list[Image]:
        """Image tokens (n, num_image_tokens) -> n PIL images, for a backbone whose `draw` returns tokens."""
        raise NotImplementedError(f"backbone {self.name} draws pixels, not image tokens")

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
        """One Score per image, values in [0, 1] (NaN: no answer; the engine skips it)."""

    def check(self, record: PromptRecord) -> None:
        """Raise MilrError (one line) when this critic cannot score `record`, or cannot run at
        all (a missing key, an unreachable server). Called before any weights load, so it
        must load none itself; the default accepts everything."""


def score_images(critic: Critic, images: list, record: PromptRecord) -> list[Score]:
    """`critic.score`, with its answer checked (check_scores) and any failure of the critic's own
    code turned into one line naming the critic."""
    try:
        answer = critic.score(images, record)
    except MilrError:
        raise
    except Exception as exc:  # noqa: BLE001 - a critic's bug is reported as one line naming it
        logging.getLogger(__name__).debug("critic %s raised", critic.name, exc_info=True)
        raise MilrError(f"critic {critic.name!r} failed: {type(exc).__name__}: {exc}") from None
    return check_scores(critic, answer, len(images))


def check_scores(critic: Critic, scores: object, count: int) -> list[Score]:
    """The critic's answer for `count` images, or a one-line MilrError saying what was wrong with it.

    Every value must be a real number in [0, 1]; NaN is the documented "no answer" and
    passes (the engine leaves that image out of the update)."""
    name = getattr(critic, "name", type(critic).__name__)
    if not isinstance(scores, (list, tuple)):
        raise MilrError(f"critic {name!r} returned {_short(scores)} for {count} images; it must return a list of Scores")
    if len(scores) != count:
        raise MilrError(f"critic {name!r} returned {len(scores)} scores for {count} images")
    for i, s in enumerate(scores):
        value = getattr(s, "value", s)
        if not isinstance(s, Score) or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MilrError(f"critic {name!r} returned {_short(s)} for image {i + 1} of {count}; expected a Score")
        if not math.isnan(value) and not 0.0 <= value <= 1.0:
            raise MilrError(f"critic {name!r} returned reward {value!r} for image {i + 1} of {count}; rewards must be in [0, 1]")
        if s.correct not in (None, True, False):
            raise MilrError(f"critic {name!r} returned correct={_short(s.correct)} for image {i + 1} of {count}; expected true, false or none")
    return list(scores)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Strategy(ABC):
    """Which latent groups (TEXT, IMAGE) move at step k of K (1-based)."""

    name: str = "strategy"

    @abstractmethod
    def groups(self, step: int, steps: int) -> frozenset[str]: ...

    def moves(self, group: str, steps: int) -> bool:
        """Whether `group` moves at any step of a K-step search."""
        return any(group in self.groups(k, steps) for k in range(1, steps + 1))
