"""Default judge prompts. Placeholders: {prompt} and {explanation}; write literal braces as {{ }}.

The wording of UNIFIED and GPT4O is ours. WISE's critics ask WISE's own judge
prompt, which milr does not ship: `wise_judge_text` reads it from a WISE
checkout. The `unified` template keeps the structure UnifiedReward-qwen was
trained on (CodeGoat24/UnifiedReward, inference_qwen/image_generation/
qwen_point_score_image_generation.py): alignment with the caption plus overall
quality, a list of the caption's elements marked 0/1, a 1-5 score after
"Final Score:", and the caption in brackets after "Text Caption:". For the
upstream text verbatim, set MILR_UNIFIED_TEMPLATE.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from milr_core.errors import MilrError

UNIFIED = (
    "You are given a text caption and an image generated from it. Judge the image on two criteria:\n"
    "1. Alignment with the caption: are the objects, their attributes and their relations as the caption "
    "describes them?\n"
    "2. Overall image quality: clarity, detail, colour accuracy and aesthetic appeal.\n"
    "List the key elements of the caption and whether each appears in the image, one per line as "
    "'element (type): value' (value 1 = generated, 0 = not generated), then give a score from 1 to 5 "
    "after 'Final Score:'.\n"
    "The task:\n"
    "Text Caption: [{prompt}]"
)
UNIFIED_SCALE = (1.0, 5.0)

GPT4O = (
    "You are judging how faithfully a generated image depicts its text prompt.\n"
    "Prompt: {prompt}\n"
    "Check every object, its count, colour and other attributes, and every spatial relation the prompt "
    "names. An object that is missing, a wrong count, a wrong colour or a wrong relation are serious faults; "
    "image quality matters only where it hides what the prompt asks for.\n"
    "Reply with at most three sentences of justification, then a last line 'Score: N', where N is an "
    "integer from 0 (the image does not match the prompt at all) to 10 (every element matches exactly)."
)
GPT4O_SCALE = (0.0, 10.0)

#: what {explanation} becomes when the record has none
NO_EXPLANATION = "(none given: judge against the prompt alone)"

# WISE's judges (PKU-YuanGroup/WISE @ eb51174): `build_evaluation_messages` in each script builds
# a system message and a user message whose text formats the prompt record's Prompt and Explanation.
WISE_REPO_ENV = "MILR_WISE_REPO"
WISE_SCRIPTS = {"legacy": "WISE_legacy/gpt_eval.py", "verified": "vllm_eval.py"}
_WISE_FIELDS = {"Prompt": "{prompt}", "Explanation": "{explanation}"}


def wise_judge_text(repo: str | Path | None, protocol: str) -> tuple[str, str]:
    """(system message, user template) of WISE's `protocol` judge, read without running anything
    from the script in a WISE checkout (`repo`, else MILR_WISE_REPO)."""
    root = repo or os.environ.get(WISE_REPO_ENV)
    if not root:
        raise MilrError(
            f"WISE's {protocol} judge prompt is read from a WISE checkout: set {WISE_REPO_ENV} to a clone of "
            "github.com/PKU-YuanGroup/WISE (or pass wise_repo=...), or give your own template"
        )
    path = Path(root).expanduser() / WISE_SCRIPTS[protocol]
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise MilrError(f"cannot read WISE's judge prompt from {path}: {getattr(exc, 'strerror', None) or exc}") from None
    builder = next((node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                    and node.name == "build_evaluation_messages"), None)  # fmt: skip
    texts = sorted(
        (value.lineno, value.col_offset, value)
        for node in ast.walk(builder or ast.Module(body=[], type_ignores=[]))
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values)
        if isinstance(key, ast.Constant) and key.value == "text"
    )
    if len(texts) != 2:
        raise MilrError(f"{path}: expected build_evaluation_messages with a system and a user text; "
                        "is this WISE @ eb51174?")
    (_, _, system), (_, _, user) = texts
    if not (isinstance(system, ast.Constant) and isinstance(system.value, str)):
        raise MilrError(f"{path}:{system.lineno}: expected the judge's system message as a plain string")
    return system.value, _template(user, path)  # the system message is sent as it is, never formatted


def _template(node: ast.expr, path: Path) -> str:
    """A string constant or f-string as a template: literal braces doubled, the record's fields as placeholders."""
    parts = node.values if isinstance(node, ast.JoinedStr) else [node]
    out = []
    for part in parts:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            out.append(part.value.replace("{", "{{").replace("}", "}}"))
        elif (isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Subscript)
              and isinstance(part.value.slice, ast.Constant) and part.value.slice.value in _WISE_FIELDS):  # fmt: skip
            out.append(_WISE_FIELDS[part.value.slice.value])
        else:
            raise MilrError(f"{path}:{part.lineno}: the judge prompt formats something other than Prompt and Explanation")
    return "".join(out)
