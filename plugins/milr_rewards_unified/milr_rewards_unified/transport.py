"""One chat completion from an OpenAI-compatible server, with retries and errors safe to show.

The openai client's own retries are switched off so that the policy (which
errors, how many times, how long to wait) is ours and visible in settings. Its
rule for a server that says how long to wait is kept: a `Retry-After` (or
`retry-after-ms`) header on a retried answer replaces the backoff, up to
`retry_after_max` seconds; a server that asks for longer gets a one-line error
at once, since waiting that long inside a run is not what anyone wants.
"""

from __future__ import annotations

import email.utils
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
# seconds the reachability check waits: a server that is up answers GET /models at once
REACH_TIMEOUT = 5.0


def retry_after(headers) -> float | None:
    """Seconds the server asks to wait before the next request, from `retry-after-ms` or `Retry-After`
    (seconds or an HTTP date), or None when it does not say."""
    try:
        return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except (KeyError, TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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

    def reach(self) -> None:
        """One GET /models with a short timeout and no retry: MilrError when no server answers there or it
        refuses the key. Any other answer, an error status included, shows a server is there."""
        openai = self._errors
        try:
            self._client.with_options(timeout=min(REACH_TIMEOUT, self.settings.timeout), max_retries=0).models.list()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise MilrError(f"{self.where} refuses access with the API key in {self.settings.api_key_env}: "
                            f"{self._explain(exc)}") from None
        except openai.APIConnectionError as exc:
            raise MilrError(f"cannot reach the {self.where}: {self._explain(exc)}") from None
        except Exception:  # noqa: BLE001 - any other answer, an error status or a page that is no list, shows a server is there
            pass

    def ask(self, messages: list[dict[str, Any]]) -> str:
        """The answer's text; MilrError once retries are spent or the server refuses the request."""
        s, openai = self.settings, self._errors
        last: Exception | None = None
        asked: float | None = None  # the wait the server asked for with its last answer
        for attempt in range(s.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt) if asked is None else asked)
            try:
                reply = self._client.chat.completions.create(
                    model=s.model, messages=messages, max_tokens=s.max_tokens, temperature=s.temperature,
                    extra_body=s.extra_body,
                )
            except openai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code not in RETRY_STATUSES:
                    raise MilrError(f"{self.where} refused the request: {self._explain(exc)}") from None
                last, asked = exc, retry_after(exc.response.headers)
                if asked is not None and asked > s.retry_after_max and attempt < s.max_retries:
                    raise MilrError(
                        f"{self.where} asks to wait {asked:.0f} s before the next request (Retry-After, after "
                        f"{self._explain(exc)}), longer than retry_after_max = {s.retry_after_max:g} s"
                    ) from None
                continue
            except openai.APIConnectionError as exc:  # timeouts included
                last, asked = exc, None
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
