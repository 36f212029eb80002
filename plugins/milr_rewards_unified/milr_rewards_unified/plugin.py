"""Registers the VLM-judge critics: unified (UnifiedReward-qwen) behind a server or in this
process (unified-local), gpt-4o and wise (WiScore).

Registration imports nothing heavy; openai is imported when a critic is made.
"""

from __future__ import annotations

import os
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from milr_core.plugins import hookimpl

OPENAI_API = "https://api.openai.com/v1"


def _options(prefix: str, local: bool = False) -> type[BaseModel]:
    """The `--critic-option` model of a judge: every setting, unset by default (then the critic's
    default, overridden by the environment variable <prefix>_<SETTING>)."""
    from .settings import JudgeSettings, LocalJudgeSettings

    kind = LocalJudgeSettings if local else JudgeSettings
    fields = {
        name: (Optional[info.annotation], Field(None, description=f"{info.description} (else {prefix}_{name.upper()})"))
        for name, info in kind.model_fields.items()
    }
    return create_model(f"{prefix.title().replace('_', '')}Options", __config__=ConfigDict(extra="forbid"), **fields)


def _make(name: str, prefix: str, defaults: dict, overrides: dict, wise: bool = False):
    from .critics import JudgeCritic, WiseCritic
    from .settings import load_settings

    settings = load_settings(name, prefix, defaults, overrides)
    critic = (WiseCritic if wise else JudgeCritic)(name, settings)
    critic.options = settings  # resolved (defaults, environment, options): what a run records
    return critic


def unified(**kwargs):
    from . import prompts

    lo, hi = prompts.UNIFIED_SCALE
    defaults = {
        "base_url": "http://127.0.0.1:8000/v1",
        "model": "CodeGoat24/UnifiedReward-qwen-7b",
        # its own variable: an OpenAI key must not travel to a self-hosted server
        "api_key_env": "MILR_UNIFIED_API_KEY",
        "template": prompts.UNIFIED,
        "scale_min": lo,
        "scale_max": hi,
    }
    return _make("unified", "MILR_UNIFIED", defaults, kwargs)


def unified_local(backbone=None, device=None, dtype=None, **kwargs):
    from . import prompts
    from .local import LocalJudgeCritic, LocalVLM
    from .settings import LocalJudgeSettings, load_settings

    lo, hi = prompts.UNIFIED_SCALE
    defaults = {"model": "CodeGoat24/UnifiedReward-qwen-7b", "template": prompts.UNIFIED, "scale_min": lo, "scale_max": hi}
    settings = load_settings("unified-local", "MILR_UNIFIED_LOCAL", defaults, kwargs, LocalJudgeSettings)
    if device is None and backbone is not None:  # beside the backbone, on its device
        device = str(getattr(backbone, "device", "")) or None
    critic = LocalJudgeCritic("unified-local", settings, LocalVLM(settings.model, device=device, dtype=dtype))
    critic.options = settings  # resolved (defaults, environment, options): what a run records
    return critic


def gpt4o(**kwargs):
    from . import prompts

    lo, hi = prompts.GPT4O_SCALE
    defaults = {
        "base_url": os.environ.get("OPENAI_BASE_URL") or OPENAI_API,
        "model": "gpt-4o",
        "template": prompts.GPT4O,
        "scale_min": lo,
        "scale_max": hi,
    }
    return _make("gpt-4o", "MILR_GPT4O", defaults, kwargs)


def wise(**kwargs):
    from . import prompts

    defaults = {
        "base_url": os.environ.get("OPENAI_BASE_URL") or OPENAI_API,
        "model": "gpt-4o-2024-05-13",  # the WISE paper's judge (WISE_legacy/gpt_eval.py)
        "template": prompts.WISE,
        "system": prompts.WISE_SYSTEM,
        "max_tokens": 1000,
    }
    return _make("wise", "MILR_WISE", defaults, kwargs, wise=True)


@hookimpl
def register_critics(register):
    register("unified", unified, "UnifiedReward-qwen-7b behind an OpenAI-compatible server (MILR_UNIFIED_BASE_URL)",
             options=_options("MILR_UNIFIED"))
    register(
        "unified-local",
        unified_local,
        "UnifiedReward-qwen-7b run in this process by transformers (MILR_UNIFIED_LOCAL_MODEL: hub id or folder)",
        options=_options("MILR_UNIFIED_LOCAL", local=True),
    )
    register("gpt-4o", gpt4o, "GPT-4o as judge through the OpenAI API (OPENAI_API_KEY)", options=_options("MILR_GPT4O"))
    register("wise", wise, "WISE's WiScore from a VLM judge: 0.7 consistency + 0.2 realism + 0.1 aesthetic",
             options=_options("MILR_WISE"))
