"""Reading a score out of a judge's free-text answer.

Judges answer in many shapes ("Final Score: 4", "Score: 4/5", "0.8", "8 out of
10", `{"score": 7}`, "Yes."); each reader below recognises one shape, tried from
the most explicit to the least. A number that lies outside the scale the judge
was asked for is not guessed at: the answer counts as unparseable, and so does
an answer in which the judge says it could not judge the image ("No, I cannot
see any image"): its "No" is no verdict on the image.
"""

from __future__ import annotations

import json
import re

NUM = r"[-+]?\d+(?:\.\d+)?"
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_SCORE_KEYS = ("final_score", "final score", "score", "rating")
# "Final Score: 4", "**Score:** 4/5", "Score (1-5): 3.5", "a score of 8 out of 10"
_LABEL = re.compile(
    rf"\b(final\s+score|score|rating)\b(?:\s*\([^)]*\))?(?:\s+of)?[\s*]*[:：=]?[\s*]*({NUM})"
    rf"(?:\s*(?:/|out\s+of)\s*({NUM}))?",
    re.IGNORECASE,
)
_FRACTION = re.compile(rf"({NUM})\s*(?:/|out\s+of)\s*({NUM})", re.IGNORECASE)
_YES_NO = re.compile(r"[\W_]*(yes|no)\b", re.IGNORECASE)
# a judge saying it could not look at or judge the image: no score, whatever numbers follow
_DECLINED = re.compile(
    r"\b(?:can ?not|can't|can’t|unable to|not able to|don't|do not)\s+(?:see|view|access|open|load|process|"
    r"analy[sz]e|evaluate|assess)\s+(?:any|an|the|this|that|your|a)?\s*(?:attached|provided|uploaded|given)?\s*"
    r"(?:image|picture|photo)s?\b"
    r"|\bno (?:image|picture|photo)\b[^.\n]{0,30}?\b(?:provided|attached|shown|given|uploaded|included)\b",
    re.IGNORECASE,
)
_BARE = re.compile(rf"[\s*]*({NUM})[\s*.!]*")
# UnifiedReward's element list: "red cube (object): 0" marks an element the image lacks
_ELEMENT_MISSING = re.compile(
    r"^[\s*\-]*(?:\d+[.)]\s+)?([^:\n]+?\([^)\n]+\))[\s*]*:[\s*]*0(?:\.0+)?[\s*]*$", re.MULTILINE
)

WISE_PARTS = ("consistency", "realism", "aesthetic")
WISE_WEIGHTS = {"consistency": 0.7, "realism": 0.2, "aesthetic": 0.1}
_WISE_LABELS = {
    "consistency": re.compile(rf"\bconsistency\b[^0-9\n]{{0,20}}?({NUM})", re.IGNORECASE),
    "realism": re.compile(rf"\brealism\b[^0-9\n]{{0,20}}?({NUM})", re.IGNORECASE),
    "aesthetic": re.compile(rf"\baesthetics?(?:\s+quality)?\b[^0-9\n]{{0,20}}?({NUM})", re.IGNORECASE),
}
_WISE_BARE_LINE = re.compile(rf"^[\s*]*({NUM})[\s*.]*$", re.MULTILINE)


def strip_think(text: str) -> str:
    """Drop <think>...</think> blocks: reasoning judges may mention scores they then revise."""
    return _THINK.sub(" ", text)


def _json_objects(text: str):
    for match in _JSON_OBJECT.finditer(text):
        try:
            obj = json.loads(match.group())
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield {str(k).lower(): v for k, v in obj.items()}, match.group()


def _read(text: str, lo: float, hi: float) -> tuple[float | None, str] | None:
    """(value in [0, 1] or None when out of scale, the fragment read), or None when no score is found."""
    for obj, fragment in _json_objects(text):
        for key in _SCORE_KEYS:
            if key in obj:
                value = obj[key]
                if isinstance(value, bool):
                    return float(value), fragment
                if isinstance(value, (int, float)):
                    return _normalise(float(value), None, lo, hi), fragment
                if isinstance(value, str):
                    inner = _read(value, lo, hi)
                    return (inner[0], fragment) if inner else None
    labels = list(_LABEL.finditer(text))
    if labels:
        finals = [m for m in labels if m.group(1).lower().startswith("final")]
        m = finals[-1] if finals else labels[0]  # the concluding score wins over scores of parts
        return _normalise(float(m.group(2)), _float(m.group(3)), lo, hi), m.group().strip()
    m = _FRACTION.search(text)
    if m:
        return _normalise(float(m.group(1)), float(m.group(2)), lo, hi), m.group()
    m = _YES_NO.match(text)
    if m:
        return (1.0 if m.group(1).lower() == "yes" else 0.0), m.group(1)
    m = _BARE.fullmatch(text)
    if m:
        return _normalise(float(m.group(1)), None, lo, hi), m.group(1)
    return None


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


def _normalise(x: float, denominator: float | None, lo: float, hi: float) -> float | None:
    # "4/5" from a judge asked for 1..5 means the same as a bare "4"; any other
    # denominator is a fraction of its own scale.
    if denominator is not None and denominator != hi:
        return x / denominator if denominator > 0 and 0 <= x <= denominator else None
    return (x - lo) / (hi - lo) if lo <= x <= hi else None


def declined(answer: str) -> str | None:
    """The words in which the judge says it could not judge the image, or None."""
    m = _DECLINED.search(strip_think(answer))
    return " ".join(m.group().split()) if m else None


def parse_score(answer: str, lo: float = 0.0, hi: float = 1.0) -> tuple[float, str] | None:
    """(score in [0, 1], the fragment it was read from), or None if the answer holds no score on the lo..hi scale
    or the judge declined to judge."""
    if declined(answer):
        return None
    found = _read(strip_think(answer).strip(), lo, hi)
    if found is None or found[0] is None:
        return None
    return found[0], found[1]


def not_generated(answer: str) -> list[str]:
    """Elements a UnifiedReward-style answer marks as not generated (value 0)."""
    return [m.group(1).strip() for m in _ELEMENT_MISSING.finditer(strip_think(answer))]


def parse_wise(answer: str) -> dict[str, float] | None:
    """WISE's three sub-scores (0..2 each), by label, from JSON, or as the first three bare lines (C, R, A)."""
    text = strip_think(answer)
    for obj, _ in _json_objects(text):
        found = {}
        for part in WISE_PARTS:
            key = next((k for k in obj if k.replace("_", " ").startswith(part)), None)
            if key is not None and isinstance(obj[key], (int, float)) and not isinstance(obj[key], bool):
                found[part] = float(obj[key])
        if len(found) == 3:
            return found if _in_range(found) else None
    found = {}
    for part, pattern in _WISE_LABELS.items():
        m = pattern.search(text)
        if m:
            found[part] = float(m.group(1))
    if len(found) < 3:
        bare = _WISE_BARE_LINE.findall(text)
        if len(bare) < 3:
            return None
        found = dict(zip(WISE_PARTS, map(float, bare[:3])))
    return found if _in_range(found) else None


def _in_range(parts: dict[str, float]) -> bool:
    return all(0 <= v <= 2 for v in parts.values())


def wiscore(parts: dict[str, float]) -> float:
    """WISE's WiScore: (0.7 consistency + 0.2 realism + 0.1 aesthetic) / 2, in [0, 1]."""
    return sum(WISE_WEIGHTS[p] * parts[p] for p in WISE_PARTS) / 2
