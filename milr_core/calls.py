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
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .interfaces import Backbone, Critic, Drawing, DrawJob, PromptRecord, Reasoning, ReasonJob, score_images

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
    drawing: Drawing  # its tokens are decoded; a backbone that draws pixels has them already


@dataclass
class ScoreCall:
    images: list = field(repr=False)
    record: PromptRecord


Call = ReasonCall | DrawCall | DecodeCall | ScoreCall


def serve(backbone: Backbone, critic: Critic, calls: list[Call], pool: bool = True) -> list[Any]:
    """Answer calls of one kind, in order: pooled into shared model calls, or (`pool` False)
    each on its own, exactly as one search at a time would be answered."""
    if not pool and len(calls) > 1:
        return [serve(backbone, critic, [c])[0] for c in calls]
    kind = type(calls[0])
    if any(type(c) is not kind for c in calls):
        raise ValueError("serve answers calls of one kind at a time")
    if kind in (ReasonCall, DrawCall):
        return _batched(backbone, calls)
    if kind is DecodeCall:
        return _decode(backbone, calls)
    return _score(critic, calls)


def _rows(job: ReasonJob | DrawJob) -> int:
    if isinstance(job, DrawJob):
        return job.rows
    return 1 if job.prefixes is None else job.prefixes.shape[0]


def _split(job: ReasonJob | DrawJob, rows: int) -> list:
    """A job of more rows than one backbone call holds, as consecutive jobs on the same generator."""
    if _rows(job) <= rows:
        return [job]
    cut = range(0, _rows(job), rows)
    if isinstance(job, ReasonJob):
        return [replace(job, prefixes=job.prefixes[i : i + rows]) for i in cut]
    return [replace(job, reasoning=job.reasoning[i : i + rows],
                    prefixes=None if job.prefixes is None else job.prefixes[i : i + rows]) for i in cut]


def _join(parts: list) -> Reasoning | Drawing:
    if isinstance(parts[0], Reasoning):
        return Reasoning(*(sum((getattr(p, f) for p in parts), []) for f in ("tokens", "hidden", "text", "eos")))
    if parts[0].images is not None:
        return Drawing(images=[image for p in parts for image in p.images])
    return Drawing(torch.cat([p.tokens for p in parts]), torch.cat([p.hidden for p in parts]))


def _batched(backbone: Backbone, calls: list[ReasonCall] | list[DrawCall]) -> list:
    """All calls' jobs in as few backbone calls as memory allows (`max_rows` rows each); on
    out-of-memory, everything again with half the rows.

    A job is split only where it alone holds more rows than fit, at the same rows whoever
    else is in the batch, so its generator makes the same draws in the same order."""
    rows = max(1, backbone.max_rows())
    while True:
        # every call's generator goes back to where it was if the batch has to be redone smaller
        states = [(c.job.generator, c.job.generator.get_state()) for c in calls if c.job.generator is not None]
        try:
            return _packed(backbone, calls, rows)
        except torch.OutOfMemoryError:
            if rows == 1:
                raise
            for generator, state in states:
                generator.set_state(state)
            rows //= 2
            log.warning("out of memory; retrying with %d rows per call", rows)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _packed(backbone: Backbone, calls: list[ReasonCall] | list[DrawCall], rows: int) -> list:
    parts: list[list] = [[] for _ in calls]
    groups: dict[tuple, list[int]] = {}  # draws with different settings cannot share a call
    for i, c in enumerate(calls):
        groups.setdefault(c.settings if isinstance(c, DrawCall) else (), []).append(i)
    for settings, members in groups.items():
        pieces = [(i, piece) for i in members for piece in _split(calls[i].job, rows)]
        while pieces:
            batch, used = [], 0
            while pieces and used + _rows(pieces[0][1]) <= rows:  # every piece fits alone
                batch.append(pieces.pop(0))
                used += _rows(batch[-1][1])
            jobs = [job for _, job in batch]
            if settings:
                cfg_scale, temperature, keep = settings
                out = backbone.draw_many(jobs, cfg_scale=cfg_scale, temperature=temperature, keep_hidden=keep)
            else:
                out = backbone.reason_many(jobs)
            for (i, _), answer in zip(batch, out):
                parts[i].append(answer)
    return [_join(p) for p in parts]


def _decode(backbone: Backbone, calls: list[DecodeCall]) -> list[list]:
    """VQ-decode all calls' tokens together, in chunks of the rows a draw holds."""
    coded = [c.drawing.tokens for c in calls if c.drawing.images is None]
    tokens = torch.cat(coded) if coded else torch.zeros(0, 0, dtype=torch.long)
    rows = max(1, backbone.max_rows())
    images = [im for i in range(0, len(tokens), rows) for im in backbone.decode(tokens[i : i + rows])]
    out, start = [], 0
    for c in calls:
        if c.drawing.images is not None:
            out.append(c.drawing.images)
        else:
            out.append(images[start : start + len(c.drawing.tokens)])
            start += len(c.drawing.tokens)
    return out


def _score(critic: Critic, calls: list[ScoreCall]) -> list[list]:
    """One critic call per distinct prompt record, over all images of that record."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(calls):
        groups.setdefault(json.dumps(c.record.to_dict(), sort_keys=True, default=str), []).append(i)
    out: list[list] = [[] for _ in calls]
    for members in groups.values():
        images = [im for i in members for im in calls[i].images]
        scores = score_images(critic, images, calls[members[0]].record)
        start = 0
        for i in members:
            out[i] = scores[start : start + len(calls[i].images)]
            start += len(calls[i].images)
    return out
