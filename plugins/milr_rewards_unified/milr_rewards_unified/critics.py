"""VLM-judge critics: an OpenAI-compatible chat server scores each image against its prompt.

Each image goes to the judge as a base64 PNG data URL with the rendered
template; a batch is scored concurrently (`concurrency` requests in flight).

An answer that holds no score, even after `parse_retries` more tries, gives a
NaN reward whose detail quotes the answer: the engine leaves NaN rewards out of
the update and of the best image, so one rambling answer costs one sample, not
the run (nor a benchmark of hundreds of prompts). A server that keeps failing,
or refuses the request, raises a one-line MilrError instead: no later answer
would be better.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from concurrent.futures import ThreadPoolExecutor

from milr_core.interfaces import Critic, PromptRecord, Score

from .cache import AnswerCache, entry_key
from .parsing import declined, not_generated, parse_score, parse_wise, parse_wise_verified, wiscore
from .prompts import NO_EXPLANATION
from .settings import JudgeSettings
from .transport import JudgeClient


def pixel_digest(image) -> str:
    """sha256 of mode, size and raw pixels: ~1 ms where PNG encoding takes up to ~50 ms (384 px), and
    unchanged by the zlib or Pillow version, so cache hits never pay for encoding."""
    h = hashlib.sha256(f"{image.mode} {image.size[0]}x{image.size[1]}\n".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def explanation(record: PromptRecord) -> str | None:
    """WISE's `Explanation` (any capitalisation) when the benchmark record carries one."""
    for key, value in record.extra.items():
        if key.lower() == "explanation" and isinstance(value, str) and value.strip():
            return value.strip()
    return None


NO_SCORE = "no score in the answer"


def no_score(answer: str) -> str:
    """Why `answer` gives no reward."""
    refusal = declined(answer)
    return f"the judge says it could not judge the image ({refusal!r})" if refusal else NO_SCORE


def excerpt(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class JudgeCritic(Critic):
    """Reward = the judge's score, read from its answer and mapped from [scale_min, scale_max] to [0, 1]."""

    requires = ("openai>=1.30",)

    def __init__(self, name: str, settings: JudgeSettings):
        self.name, self.settings = name, settings
        self.client = JudgeClient(name, settings)
        self.cache = AnswerCache(settings.cache_dir)
        self._reached = False

    def render(self, record: PromptRecord) -> str:
        return self.settings.template.format(prompt=record.prompt, explanation=explanation(record) or NO_EXPLANATION)

    def messages(self, png: bytes, text: str) -> list[dict]:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        user = {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
        }
        return ([{"role": "system", "content": self.settings.system}] if self.settings.system else []) + [user]

    def parse_answer(self, answer: str) -> tuple[float, str]:
        """(reward, what was read), or (NaN, why no score could be read)."""
        found = parse_score(answer, self.settings.scale_min, self.settings.scale_max)
        if found is None:
            return math.nan, no_score(answer)
        value, fragment = found
        detail = f"{excerpt(fragment, 60)} -> {value:.3f}"
        missing = not_generated(answer)
        return value, detail + (f"; not generated: {', '.join(missing)}" if missing else "")

    def check(self, record: PromptRecord) -> None:
        """The key is set where the server needs one (checked when the critic was made) and the server
        answers: one GET /models with a short timeout, once per critic."""
        if not self._reached:
            self.client.reach()
            self._reached = True

    def score(self, images: list, record: PromptRecord) -> list[Score]:
        text = self.render(record)
        workers = min(self.settings.concurrency, len(images))
        if workers <= 1:
            return [self._score_one(image, text) for image in images]
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"milr-{self.name}")
        try:
            futures = [pool.submit(self._score_one, image, text) for image in images]
            return [f.result() for f in futures]
        finally:
            # on an error, requests not yet sent are dropped rather than retried in vain
            pool.shutdown(wait=True, cancel_futures=True)

    def _score_one(self, image, text: str) -> Score:
        s = self.settings
        digest = pixel_digest(image)
        key = entry_key(digest, s.base_url, s.model, s.template, s.system, text)
        cached = self.cache.get(key)
        if cached is not None:
            value, detail = self.parse_answer(cached)
            if not math.isnan(value):
                return Score(value, f"{s.model}: {detail} (cached)")
        messages = self.messages(png_bytes(image), text)
        tries = s.parse_retries + 1
        for _ in range(tries):
            answer = self.client.ask(messages)
            value, detail = self.parse_answer(answer)
            if not math.isnan(value):
                self.cache.put(key, model=s.model, image_sha256=digest, text=text, answer=answer)
                return Score(value, f"{s.model}: {detail}")
        why = "" if detail == NO_SCORE else f"; {detail}"
        return Score(math.nan, f"{s.model}: no score in {tries} answer(s){why}; last answer: {excerpt(answer)!r}")


class WiseCritic(JudgeCritic):
    """WISE legacy (WISE_legacy/gpt_eval.py): WiScore from the judge's Consistency, Realism and
    Aesthetic Quality (0..2 each), asked and read as upstream asks and reads them (parsing.py)."""

    def render(self, record: PromptRecord) -> str:
        # upstream formats the record's own Explanation, unstripped
        given = record.extra.get("Explanation")
        given = given if isinstance(given, str) else explanation(record)
        return self.settings.template.format(prompt=record.prompt, explanation=given or NO_EXPLANATION)

    def messages(self, png: bytes, text: str) -> list[dict]:
        """Upstream's message shapes: the system text as a content part, the user text before the image."""
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        user = {"role": "user", "content": [{"type": "text", "text": text},
                                            {"type": "image_url", "image_url": {"url": url}}]}  # fmt: skip
        system = self.settings.system
        return ([{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []) + [user]

    def parse_answer(self, answer: str) -> tuple[float, str]:
        parts = parse_wise(answer)
        if parts is None:
            return math.nan, no_score(answer)
        value = wiscore(parts)
        c, r, a = (parts[p] for p in ("consistency", "realism", "aesthetic_quality"))
        detail = f"consistency {c:g}, realism {r:g}, aesthetic {a:g} -> WiScore {value:.3f}"
        if not 0 <= value <= 1:  # upstream reads any digit ("Consistency: 5"); a reward stays in [0, 1]
            detail += f" (as upstream computes it; reward {min(max(value, 0.0), 1.0):g})"
        return min(max(value, 0.0), 1.0), detail


class WiseVerifiedCritic(WiseCritic):
    """WISE_Verified (vllm_eval.py): the judge's 0/1 score, asked and read as upstream does."""

    def parse_answer(self, answer: str) -> tuple[float, str]:
        value = parse_wise_verified(answer)
        return (math.nan, no_score(answer)) if value is None else (value, f"Score: {value:g}")
