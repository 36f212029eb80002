"""What a search asks of the models, and how a driver answers many such asks at once.

A search (engine.Milr.search) yields one call at a time and is sent the answer:
reasoning text, image tokens, pixels or critic scores. `serve` answers a list of
calls of one kind with as few model calls as memory allows, so the one-search
driver (Milr.run) and the many-search scheduler (scheduler.py) answer them the
same way: each search's random draws come from its own generator, so its
answer does not depend on which other searches share the batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from .interfaces import Backbone, Critic, Drawing, DrawJob, PromptRecord, ReasonJob

log = logging.getLogger(__name__)


@dataclass
class ReasonCall:
    job: ReasonJob


@dataclass
class DrawCall:
    job: DrawJob
    cfg_scale: float
    temperature: float
    keep_hidden: int

    @property
    def settings(self) -> tuple[float, float, int]:
        return self.cfg_scale, self.temperature, self.keep_hidden


@dataclass
class DecodeCall:
    tokens: torch.Tensor


@dataclass
class ScoreCall:
    images: list = field(repr=False)
    record: PromptRecord


Call = ReasonCall | DrawCall | DecodeCall | ScoreCall


def serve(backbone: Backbone, critic: Critic, calls: list[Call]) -> list[Any]:
    """Answer calls of one kind, in order."""
    kind = type(calls[0])
    if any(type(c) is not kind for c in calls):
        raise ValueError("serve answers calls of one kind at a time")
    if kind is ReasonCall:
        return backbone.reason_many([c.job for c in calls])
    if kind is DrawCall:
        return _draw(backbone, calls)
    if kind is DecodeCall:
        return _decode(backbone, calls)
    return _score(critic, calls)


def _split(job: DrawJob, rows: int) -> list[DrawJob]:
    """A job of more rows than one call holds, as consecutive jobs on the same generator."""
    return [
        DrawJob(job.prompt, job.reasoning[i : i + rows], None if job.prefixes is None else job.prefixes[i : i + rows],
                job.generator)
        for i in range(0, job.rows, rows)
    ]


def _draw(backbone: Backbone, calls: list[DrawCall]) -> list[Drawing]:
    """All calls' images in as few backbone calls as memory allows; halve the rows on OOM.

    Calls with equal settings share backbone calls; a call is split only where it alone
    holds more rows than fit, at the same rows whoever else is drawing."""
    rows = max(1, backbone.max_rows())
    while True:
        try:
            return _draw_in(backbone, calls, rows)
        except torch.OutOfMemoryError:
            if rows == 1:
                raise
            rows //= 2
            log.warning("out of memory while drawing; retrying with %d rows per call", rows)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _draw_in(backbone: Backbone, calls: list[DrawCall], rows: int) -> list[Drawing]:
    # every call's generator goes back to where it was if the batch has to be redrawn smaller
    states = [(c.job.generator, c.job.generator.get_state()) for c in calls if c.job.generator is not None]
    try:
        parts: dict[int, list[Drawing]] = {i: [] for i in range(len(calls))}
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(calls):
            groups.setdefault(c.settings, []).append(i)
        for (cfg_scale, temperature, keep), members in groups.items():
            pieces = [(i, piece) for i in members for piece in _split(calls[i].job, rows)]
            while pieces:
                batch, used = [], 0
                while pieces and used + pieces[0][1].rows <= rows:
                    batch.append(pieces.pop(0))
                    used += batch[-1][1].rows
                out = backbone.draw_many([p for _, p in batch], cfg_scale=cfg_scale, temperature=temperature,
                                         keep_hidden=keep)
                for (i, _), drawing in zip(batch, out):
                    parts[i].append(drawing)
        return [Drawing(torch.cat([p.tokens for p in ps]), torch.cat([p.hidden for p in ps])) for ps in parts.values()]
    except torch.OutOfMemoryError:
        for generator, state in states:
            generator.set_state(state)
        raise


def _decode(backbone: Backbone, calls: list[DecodeCall]) -> list[list]:
    """VQ-decode all calls' tokens together, in chunks of the rows a draw holds."""
    tokens = torch.cat([c.tokens for c in calls])
    rows = max(1, backbone.max_rows())
    images = [im for i in range(0, len(tokens), rows) for im in backbone.decode(tokens[i : i + rows])]
    out, start = [], 0
    for c in calls:
        out.append(images[start : start + len(c.tokens)])
        start += len(c.tokens)
    return out


def _score(critic: Critic, calls: list[ScoreCall]) -> list[list]:
    """One critic call per distinct prompt record, over all images of that record."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(calls):
        groups.setdefault(json.dumps(c.record.to_dict(), sort_keys=True, default=str), []).append(i)
    out: list[list] = [[] for _ in calls]
    for members in groups.values():
        images = [im for i in members for im in calls[i].images]
        scores = critic.score(images, calls[members[0]].record)
        if len(scores) != len(images):
            raise ValueError(f"critic {critic.name} returned {len(scores)} scores for {len(images)} images")
        start = 0
        for i in members:
            out[i] = scores[start : start + len(calls[i].images)]
            start += len(calls[i].images)
    return out
