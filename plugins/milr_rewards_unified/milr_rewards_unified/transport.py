"""One chat completion from an OpenAI-compatible server, with retries and errors safe to show.

The openai client's own retries are switched off so that the policy (which
errors, how many times, how long to wait) is ours and visible in settings.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from milr_core.errors import MilrError

from .settings import JudgeSettings

# what vLLM and SGLang accept when started without --api-key
NO_KEY = "EMPTY"
# openai's own policy: these statuses are worth another try
RETRY_STATUSES = (408, 409, 429)


class JudgeClient:
    def __init__(self, critic: str, settings: JudgeSettings):
        import openai

        self.critic, self.settings = critic, settings
        key = os.environ.get(settings.api_key_env, "")
        required = settings.require_key if settings.require_key is not None else "api.openai.com" in settings.base_url
        if not key and required:
            raise MilrError(
                f"the {critic} critic needs an API key: set the environment variable {settings.api_key_env}"
            )
        self._secret = key
        self._errors = openai
        self._client = openai.OpenAI(
            api_key=key or NO_KEY, base_url=settings.base_url, timeout=settings.timeout, max_retries=0
        )

    @property
    def where(self) -> str:
        return f"{self.critic} judge {self.settings.model} at {self.settings.base_url}"

    def scrub(self, text: str) -> str:
        """`text` with the API key blanked out: servers may echo request headers in errors or answers."""
        return text.replace(self._secret, "***") if self._secret else text

    def _explain(self, exc: Exception) -> str:
        first = (str(exc).strip().splitlines() or [""])[0]
        return self.scrub(f"{type(exc).__name__}: {first}")[:300]

    def _delay(self, retry: int) -> float:
        # exponential backoff with "equal jitter": half fixed, half random, so
        # many workers that failed together do not retry together
        ceiling = min(self.settings.backoff_max, self.settings.backoff * 2 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def ask(self, messages: list[dict[str, Any]]) -> str:
        """The answer's text; MilrError once retries are spent or the server refuses the request."""
        s, openai = self.settings, self._errors
        last: Exception | None = None
        for attempt in range(s.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt))
            try:
                reply = self._client.chat.completions.create(
                    model=s.model, messages=messages, max_tokens=s.max_tokens, temperature=s.temperature,
                    extra_body=s.extra_body,
                )
            except openai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code not in RETRY_STATUSES:
                    raise MilrError(f"{self.where} refused the request: {self._explain(exc)}") from None
                last = exc
                continue
            except openai.APIConnectionError as exc:  # timeouts included
                last = exc
                continue
            except ValueError:  # a body that is not JSON
                reply = None
            if not hasattr(reply, "choices"):
                # the wrong URL rather than a passing fault: asking again would not help
                raise MilrError(
                    f"{self.where} did not answer with a chat completion; is base_url an "
                    "OpenAI-compatible /v1 endpoint?"
                )
            choices = reply.choices or []
            return self.scrub((choices[0].message.content or "") if choices else "")
        raise MilrError(
            f"{self.where}: no answer after {s.max_retries + 1} attempts; last error: {self._explain(last)}"
        )
