"""Baseline accuracy of a small Janus checkpoint: MILR's step 0 on each prompt, scored by its world's oracle.

Each prompt gets what `milr generate --steps 0` would make of it: greedy
reasoning text, then one image at the engine's default CFG scale and
temperature, with a generator seeded the same way for every prompt, all
through the backbone's own reason/draw/decode. GenEval's summary follows:
per-tag accuracy and the overall score as the unweighted mean of the tags.
With `judge_self`, the `self` critic (the model's understanding branch) also
scores each image, and the summary says how often it agrees with the oracle.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import torch
from milr_rewards_geneval.worlds import SHAPES, WORLDS, World

from milr_core.config import RunConfig
from milr_core.interfaces import PromptRecord


def evaluate(backbone, records: list[PromptRecord], seed: int = 0, world: World = SHAPES,
             judge_self: bool = False) -> list[dict]:
    """One result per record: tag, correct (0/1), fraction, reasoning text and the oracle's reason
    (and `self`, the self critic's P(yes), with judge_self)."""
    run = RunConfig(seed=seed)
    oracle = world.oracle()
    critic = None
    if judge_self:
        from .self_critic import SelfCritic

        critic = SelfCritic.from_backbone(backbone)
    results = []
    for record in records:
        gen = torch.Generator(device=backbone.device).manual_seed(run.seed)
        reasoning = backbone.reason(record.prompt, None, run.max_reasoning_tokens, run.text_temperature, gen)
        drawing = backbone.draw(
            record.prompt, reasoning.text, None, cfg_scale=run.cfg_scale, temperature=run.temperature,
            keep_hidden=0, generator=gen,
        )
        image = backbone.decode(drawing.tokens)[0]
        verdict = oracle.verdict(image, record)
        results.append(
            {
                "prompt": record.prompt,
                "tag": record.tag,
                "correct": int(verdict.correct),
                "fraction": round(verdict.fraction, 4),
                "reasoning": reasoning.text[0],
                "reason": verdict.reason,
            }
        )
        if critic is not None:
            results[-1]["self"] = round(critic.score([image], record)[0].value, 4)
    return results


def score_images(images, records: list[PromptRecord], world: World = SHAPES) -> list[dict]:
    """The oracle's verdict on given uint8 images (n, h, w, 3), one per record."""
    from PIL import Image

    oracle = world.oracle()
    results = []
    for image, record in zip(images, records):
        verdict = oracle.verdict(Image.fromarray(image), record)
        results.append({"tag": record.tag, "correct": int(verdict.correct), "fraction": verdict.fraction})
    return results


def summarize(results: list[dict], world: World = SHAPES) -> dict:
    """Per-tag accuracy and GenEval's overall (mean over tags) plus the mean partial credit; where
    the self critic judged too, its agreement with the oracle (P(yes) > 0.5 against correct)."""
    tags = {t: [r["correct"] for r in results if r["tag"] == t] for t in world.tags}
    per_tag = {t: round(sum(v) / len(v), 4) for t, v in tags.items() if v}
    summary = {
        "overall": round(sum(per_tag.values()) / len(per_tag), 4),
        "per_tag": per_tag,
        "fraction": round(sum(r["fraction"] for r in results) / len(results), 4),
        "prompts": len(results),
    }
    judged = [r for r in results if "self" in r]
    if judged:
        summary["self_agreement"] = agreement([r["self"] for r in judged], [r["correct"] for r in judged])
    return summary


def agreement(p_yes: list[float], correct: list[int]) -> dict:
    """How a yes/no critic's P(yes) agrees with the oracle's verdicts: accuracy at 0.5, the same
    per oracle class (so that a critic saying "yes" to everything shows), and ROC AUC."""
    said = [p > 0.5 for p in p_yes]
    right = [s == bool(c) for s, c in zip(said, correct)]
    pos = [p for p, c in zip(p_yes, correct) if c]
    neg = [p for p, c in zip(p_yes, correct) if not c]
    pairs = [(a > b) + 0.5 * (a == b) for a in pos for b in neg]
    return {
        "accuracy": round(sum(right) / len(right), 4),
        "yes_when_correct": round(sum(s for s, c in zip(said, correct) if c) / max(len(pos), 1), 4),
        "no_when_incorrect": round(sum(not s for s, c in zip(said, correct) if not c) / max(len(neg), 1), 4),
        "auc": round(sum(pairs) / len(pairs), 4) if pairs else None,
        "images": len(right),
    }


def matched_vs_swapped(backbone, records: list[PromptRecord], world: World, seed: int = 0) -> dict:
    """The self critic on each prompt's correct render against the correct render of another prompt
    of its tag (the next one, round the tag), skipping pairs where that render satisfies the prompt
    too: how often the matching image gets the higher P(yes). A critic blind to the image is at 0.5."""
    import numpy as np
    from milr_rewards_geneval.shapes import render

    from .self_critic import SelfCritic

    rng = np.random.default_rng(seed)
    scenes = [world.scene_for(r, rng) for r in records]
    images = [render(s, world.image_size) for s in scenes]
    by_tag: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_tag.setdefault(record.tag, []).append(i)
    pairs = [
        (i, idx[(k + 1) % len(idx)]) for idx in by_tag.values() if len(idx) > 1 for k, i in enumerate(idx)
        if not world.truth(records[i], scenes[idx[(k + 1) % len(idx)]], world.image_size).correct
    ]
    critic = SelfCritic.from_backbone(backbone, batch_size=16)
    questions = [critic.question.format(prompt=records[i].prompt) for i, _ in pairs]
    own = [s.value for s in critic.judge([images[i] for i, _ in pairs], questions)]
    other = [s.value for s in critic.judge([images[j] for _, j in pairs], questions)]
    wins = sum((a > b) + 0.5 * (a == b) for a, b in zip(own, other))
    return {
        "win_rate": round(wins / max(len(pairs), 1), 4),
        "pairs": len(pairs),
        "mean_p_yes_matched": round(sum(own) / max(len(own), 1), 4),
        "mean_p_yes_swapped": round(sum(other) / max(len(other), 1), 4),
    }


def _evaluate_dir(path: str, records: list[dict], device: str, seed: int, world: str, judge_self: bool) -> list[dict]:
    from .backbone import JanusBackbone

    backbone = JanusBackbone.from_pretrained(path, device=device, chat="template")
    return evaluate(backbone, [PromptRecord.from_dict(r) for r in records], seed, WORLDS[world], judge_self)


class Evaluator:
    """Scores checkpoint folders in worker processes while the caller goes on (with training,
    say); `workers=1` scores in-process at `submit`. Each worker takes a shard of the prompts
    and runs one thread: decoding a small model is latency-bound, so shards scale with cores."""

    def __init__(self, records: list[PromptRecord], device: str = "cpu", workers: int = 1, seed: int = 0,
                 world: World = SHAPES, judge_self: bool = False):
        self.records, self.device, self.workers, self.seed = [r.to_dict() for r in records], device, workers, seed
        self.world, self.judge_self = world.name, judge_self
        self.pending: dict[str, list] = {}
        self.pool = None
        if workers > 1:
            context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
            self.pool = ProcessPoolExecutor(workers, context, torch.set_num_threads, (1,))

    def submit(self, path: str) -> None:
        if self.pool is None:
            self.pending[path] = [_evaluate_dir(path, self.records, self.device, self.seed, self.world, self.judge_self)]
            return
        size = -(-len(self.records) // self.workers)
        shards = [self.records[i : i + size] for i in range(0, len(self.records), size)]
        self.pending[path] = [
            self.pool.submit(_evaluate_dir, path, s, self.device, self.seed, self.world, self.judge_self) for s in shards
        ]

    def results(self, path: str) -> list[dict]:
        """The results of a submitted folder, in prompt order (waits for them)."""
        return [r for part in self.pending[path] for r in (part if isinstance(part, list) else part.result())]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
