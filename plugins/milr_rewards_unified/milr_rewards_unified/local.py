"""A VLM judge run in this process: UnifiedReward-qwen (Qwen2.5-VL) through transformers.

Same template, same score reading and same answer cache as the server judges
(critics.py); the answers come from `generate` (greedy, left-padded batches of
up to `batch` images) instead of a chat server. Greedy answers do not change
when asked again, so an answer without a score gives a NaN reward at once.
"""

from __future__ import annotations

import math
from pathlib import Path

from milr_core.errors import MissingWeights
from milr_core.hardware import pick_device, pick_dtype
from milr_core.hub import cached, hub_reachable
from milr_core.interfaces import Critic, PromptRecord, Score

from .cache import AnswerCache, entry_key
from .critics import JudgeCritic, excerpt, pixel_digest
from .settings import LocalJudgeSettings


def _missing(source: str, why: str) -> MissingWeights:
    folder = source.rstrip("/").split("/")[-1]
    return MissingWeights(
        f"cannot load the judge {source} ({why}); download it with `hf download {source} --local-dir ./{folder}` "
        f"and set MILR_UNIFIED_LOCAL_MODEL=./{folder}"
    )


class LocalVLM:
    """Model + processor of an image-text-to-text judge; `answer` maps images and one text to answers."""

    def __init__(self, source: str, device=None, dtype=None):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = Path(source).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise MissingWeights(f"{path} has no config.json: not a transformers checkpoint of a judge")
            target, offline = str(path), False
        else:
            target, offline = source, not hub_reachable()
            if offline and not cached(source, ("config.json",)):
                raise _missing(source, "the Hugging Face hub cannot be reached and it is not cached")
        dev = pick_device(device)
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(
                target, dtype=pick_dtype(dev, dtype), local_files_only=offline
            )
            self.processor = AutoProcessor.from_pretrained(target, local_files_only=offline)
        except OSError as exc:
            raise _missing(source, (str(exc).strip().splitlines() or [type(exc).__name__])[0]) from None
        self.model = self.model.to(dev).eval()

    def answer(self, images: list, text: str, system: str | None, max_tokens: int) -> list[str]:
        import torch

        messages = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
        messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]})
        chat = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        batch = self.processor(
            text=[chat] * len(images), images=images, return_tensors="pt", padding=True, padding_side="left"
        ).to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(**batch, max_new_tokens=max_tokens, do_sample=False)
        return self.processor.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)


class LocalJudgeCritic(Critic):
    """Reward = the local judge's score on the template's scale, mapped to [0, 1]."""

    requires = ("transformers>=4.49",)

    def __init__(self, name: str, settings: LocalJudgeSettings, vlm: LocalVLM):
        self.name, self.settings, self.vlm = name, settings, vlm
        self.cache = AnswerCache(settings.cache_dir)

    render = JudgeCritic.render
    parse_answer = JudgeCritic.parse_answer

    def score(self, images: list, record: PromptRecord) -> list[Score]:
        s = self.settings
        text = self.render(record)
        digests = [pixel_digest(image) for image in images]
        keys = [entry_key(d, "local", s.model, s.template, s.system, text) for d in digests]
        answers: list[str | None] = [self.cache.get(key) for key in keys]
        todo = [i for i, a in enumerate(answers) if a is None]
        for start in range(0, len(todo), s.batch):
            chunk = todo[start : start + s.batch]
            for i, answer in zip(chunk, self.vlm.answer([images[i] for i in chunk], text, s.system, s.max_tokens)):
                answers[i] = answer
                if not math.isnan(self.parse_answer(answer)[0]):
                    self.cache.put(keys[i], model=s.model, image_sha256=digests[i], text=text, answer=answer)
        scores = []
        for i, answer in enumerate(answers):
            value, detail = self.parse_answer(answer)
            if math.isnan(value):
                scores.append(Score(value, f"{s.model}: {detail}; answer: {excerpt(answer)!r}"))
            else:
                scores.append(Score(value, f"{s.model}: {detail}" + ("" if i in todo else " (cached)")))
        return scores
