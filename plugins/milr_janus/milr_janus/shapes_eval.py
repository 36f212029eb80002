"""Baseline accuracy of a janus-shapes checkpoint: MILR's step 0 on each prompt, scored by the oracle.

Each prompt gets what `milr generate --steps 0` would make of it: greedy
reasoning text, then one image at the engine's default CFG scale and
temperature, with a generator seeded the same way for every prompt, all
through the backbone's own reason/draw/decode. GenEval's summary follows:
per-tag accuracy and the overall score as the unweighted mean of the tags.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import torch
from milr_rewards_geneval.shapes import TAGS
from milr_rewards_geneval.shapes_oracle import ShapesOracle

from milr_core.config import RunConfig
from milr_core.interfaces import PromptRecord


def evaluate(backbone, records: list[PromptRecord], seed: int = 0) -> list[dict]:
    """One result per record: tag, correct (0/1), fraction, reasoning text and the oracle's reason."""
    run = RunConfig(seed=seed)
    oracle = ShapesOracle()
    results = []
    for record in records:
        gen = torch.Generator(device=backbone.device).manual_seed(run.seed)
        reasoning = backbone.reason(record.prompt, None, run.max_reasoning_tokens, run.text_temperature, gen)
        drawing = backbone.draw(
            record.prompt, reasoning.text, None, cfg_scale=run.cfg_scale, temperature=run.temperature,
            keep_hidden=0, generator=gen,
        )
        verdict = oracle.verdict(backbone.decode(drawing.tokens)[0], record)
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
    return results


def score_images(images, records: list[PromptRecord]) -> list[dict]:
    """The oracle's verdict on given uint8 images (n, h, w, 3), one per record."""
    from PIL import Image

    oracle = ShapesOracle()
    results = []
    for image, record in zip(images, records):
        verdict = oracle.verdict(Image.fromarray(image), record)
        results.append({"tag": record.tag, "correct": int(verdict.correct), "fraction": verdict.fraction})
    return results


def summarize(results: list[dict]) -> dict:
    """Per-tag accuracy and GenEval's overall (mean over tags) plus the mean partial credit."""
    tags = {t: [r["correct"] for r in results if r["tag"] == t] for t in TAGS}
    per_tag = {t: round(sum(v) / len(v), 4) for t, v in tags.items() if v}
    return {
        "overall": round(sum(per_tag.values()) / len(per_tag), 4),
        "per_tag": per_tag,
        "fraction": round(sum(r["fraction"] for r in results) / len(results), 4),
        "prompts": len(results),
    }


def _evaluate_dir(path: str, records: list[dict], device: str, seed: int) -> list[dict]:
    from .backbone import JanusBackbone

    backbone = JanusBackbone.from_pretrained(path, device=device, chat="template")
    return evaluate(backbone, [PromptRecord.from_dict(r) for r in records], seed)


class Evaluator:
    """Scores checkpoint folders in worker processes while the caller goes on (with training,
    say); `workers=1` scores in-process at `submit`. Each worker takes a shard of the prompts
    and runs one thread: decoding a small model is latency-bound, so shards scale with cores."""

    def __init__(self, records: list[PromptRecord], device: str = "cpu", workers: int = 1, seed: int = 0):
        self.records, self.device, self.workers, self.seed = [r.to_dict() for r in records], device, workers, seed
        self.pending: dict[str, list] = {}
        self.pool = None
        if workers > 1:
            context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
            self.pool = ProcessPoolExecutor(workers, context, torch.set_num_threads, (1,))

    def submit(self, path: str) -> None:
        if self.pool is None:
            self.pending[path] = [_evaluate_dir(path, self.records, self.device, self.seed)]
            return
        size = -(-len(self.records) // self.workers)
        shards = [self.records[i : i + size] for i in range(0, len(self.records), size)]
        self.pending[path] = [self.pool.submit(_evaluate_dir, path, s, self.device, self.seed) for s in shards]

    def results(self, path: str) -> list[dict]:
        """The results of a submitted folder, in prompt order (waits for them)."""
        return [r for part in self.pending[path] for r in (part if isinstance(part, list) else part.result())]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
