"""Registers the VLM-judge critics: unified (UnifiedReward-qwen) behind a server or in this
process (unified-local), gpt-4o, wise (WISE legacy's WiScore) and wise-verified (WISE_Verified's 0/1).

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


def _make(name: str, prefix: str, defaults: dict, overrides: dict, kind=None):
    from .critics import JudgeCritic
    from .settings import load_settings

    settings = load_settings(name, prefix, defaults, overrides)
    critic = (kind or JudgeCritic)(name, settings)
    critic.options = settings  # resolved (defaults, environment, options): what a run records
    return critic


def _wise(name: str, prefix: str, protocol: str, defaults: dict, overrides: dict):
    """A WISE judge asking WISE's own prompt (read from the checkout at `wise_repo` or MILR_WISE_REPO)
    unless a template is given."""
    from .critics import WiseCritic, WiseVerifiedCritic
    from .prompts import wise_judge_text

    overrides = dict(overrides)
    repo = overrides.pop("wise_repo", None)
    if not (overrides.get("template") or os.environ.get(f"{prefix}_TEMPLATE")):
        system, template = wise_judge_text(repo, protocol)
        defaults = {**defaults, "system": system, "template": template}
    kind = WiseVerifiedCritic if protocol == "verified" else WiseCritic
    return _make(name, prefix, defaults, overrides, kind)


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
    defaults = {  # WISE_legacy/gpt_eval.py: GPT-4o-2024-05-13, temperature 0, 2000 tokens, 3 attempts
        "base_url": os.environ.get("OPENAI_BASE_URL") or OPENAI_API,
        "model": "gpt-4o-2024-05-13",
        "max_tokens": 2000,
        "parse_retries": 2,
    }
    return _wise("wise", "MILR_WISE", "legacy", defaults, kwargs)


def wise_verified(**kwargs):
    defaults = {  # vllm_eval.py / eval_qwen.sh: a vLLM server, thinking off, 500 tokens, 3 attempts, 300 s
        "base_url": "http://127.0.0.1:8000/v1",
        "model": "Qwen3.5-35B-A3B",
        "api_key_env": "MILR_WISE_VERIFIED_API_KEY",  # an OpenAI key must not travel to a self-hosted server
        "max_tokens": 500,
        "parse_retries": 2,
        "timeout": 300.0,
        "extra_body": {"chat_template_kwargs": {"enable_thinking": False}},
    }
    return _wise("wise-verified", "MILR_WISE_VERIFIED", "verified", defaults, kwargs)


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
    register("wise", wise, "WISE legacy's WiScore from GPT-4o: 0.7 consistency + 0.2 realism + 0.1 aesthetic, "
             "with WISE's own prompt (MILR_WISE_REPO: a WISE checkout)", options=_options("MILR_WISE"))
    register("wise-verified", wise_verified, "WISE_Verified's 0/1 judge on any OpenAI-compatible server "
             "(default a Qwen behind vLLM), with WISE's own prompt (MILR_WISE_REPO)",
             options=_options("MILR_WISE_VERIFIED"))
