"""Settings of a VLM judge: defaults per critic, then environment variables, then critic keyword arguments.

Every field can be set as `<PREFIX>_<FIELD>` in the environment (e.g.
MILR_UNIFIED_BASE_URL, MILR_GPT4O_MODEL, MILR_WISE_CONCURRENCY). The API key is
never a setting: `api_key_env` names the variable that holds it.

The critic's check, which runs before any weights load, asks the judge's server
once for its model list (a 5 s timeout): no server there, or one that refuses
the key, is a one-line error. A server that answers 429 or 5xx with
`Retry-After` is waited for as it asks, up to `retry_after_max` seconds.
Answers are cached under `cache_dir`, keyed by the image, the server's
`base_url`, the model, the template and the text sent (never the key); a cache
that cannot be written is a warning. An answer without a score, or one in which
the judge says it could not see the image, gives a NaN reward (skipped by the
search) with the reason in the score's detail.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from milr_core.config import describe
from milr_core.errors import MilrError

PLACEHOLDERS = ("prompt", "explanation")


def default_cache_dir() -> Path:
    return Path(os.environ.get("MILR_CACHE", Path.home() / ".cache" / "milr")) / "judges"


class JudgeBase(BaseModel):
    """What every judge needs: the model, what to ask it, and how to read its answer."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str = Field(min_length=1, description="Model name the server knows.")
    template: str = Field(description="User message; placeholders {prompt} and {explanation}.")
    system: str | None = Field(None, description="Optional system message.")
    scale_min: float = Field(0.0, description="Lowest score the template asks for (maps to reward 0).")
    scale_max: float = Field(1.0, description="Highest score the template asks for (maps to reward 1).")
    max_tokens: int = Field(512, ge=1, description="Most tokens of one answer.")
    cache_dir: Path | None = Field(default_factory=default_cache_dir, description="Answer cache; 'off' disables it.")

    @field_validator("template")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(v) if name is not None}
        except ValueError as exc:
            raise ValueError(f"{exc} (write literal braces as {{{{ }}}})") from None
        unknown = sorted(names - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; templates may use {{prompt}} and {{explanation}}")
        return v

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _off(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() in ("", "off", "none") else v

    @model_validator(mode="after")
    def _scale(self) -> JudgeBase:
        if self.scale_max <= self.scale_min:
            raise ValueError(f"scale_max ({self.scale_max}) must exceed scale_min ({self.scale_min})")
        return self


class JudgeSettings(JudgeBase):
    """A judge behind an OpenAI-compatible chat server."""

    base_url: str = Field(description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", min_length=1, description="Environment variable holding the API key.")
    require_key: bool | None = Field(
        None, description="Fail early when the key variable is unset; None: only for api.openai.com, which needs one."
    )
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one answer.")
    max_retries: int = Field(4, ge=0, le=20, description="Retries after a 5xx, 429, timeout or connection error.")
    backoff: float = Field(1.0, ge=0, description="Seconds before the first retry; doubled for each further one.")
    backoff_max: float = Field(30.0, ge=0, description="Longest wait between retries.")
    retry_after_max: float = Field(
        60.0, ge=0, description="Longest wait a server may ask for with Retry-After; a longer one is an error."
    )
    parse_retries: int = Field(1, ge=0, le=10, description="Times to ask again when an answer holds no score.")
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once across a batch.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature of the judge (0: repeatable).")
    extra_body: dict[str, Any] | None = Field(
        None, description="More top-level fields of each request, e.g. vLLM's chat_template_kwargs."
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class LocalJudgeSettings(JudgeBase):
    """A judge run in this process by transformers (greedy answers)."""

    model: str = Field(min_length=1, description="Hub id or local folder of the judge's weights.")
    batch: int = Field(8, ge=1, le=256, description="Images answered by one generate call.")


# keyword arguments the registry may pass to any critic factory that are not judge settings
NOT_SETTINGS = ("backbone", "device", "dtype")


def load_settings(
    critic: str, prefix: str, defaults: dict[str, Any], overrides: dict[str, Any], kind: type[JudgeBase] = JudgeSettings
) -> JudgeBase:
    """Defaults, then `<prefix>_<FIELD>` environment variables, then keyword arguments that are not None."""
    if "api_key" in overrides:
        # refuse without echoing the value: it would land in an error message
        raise MilrError(
            f"the {critic} critic reads its API key from the environment only; set {prefix}_API_KEY_ENV "
            "to the name of the variable that holds it (default OPENAI_API_KEY)"
        )
    data = dict(defaults)
    for name in kind.model_fields:
        value = os.environ.get(f"{prefix}_{name.upper()}")
        if value is not None and value != "":
            data[name] = value
    data.update({k: v for k, v in overrides.items() if v is not None and k not in NOT_SETTINGS})
    try:
        return kind(**data)
    except ValidationError as exc:
        raise MilrError(describe(exc, f"{critic} critic settings")) from None
