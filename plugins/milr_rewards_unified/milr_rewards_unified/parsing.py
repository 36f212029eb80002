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

# WISE (PKU-YuanGroup/WISE @ eb51174): its judges' answers are read as its own scripts read
# them, quirks included (tests/test_wise_upstream.py pins each case).
# WISE_legacy/gpt_eval.py `extract_scores`: every "<label><up to two *><spaces><optional :><spaces>
# <one digit>", case-insensitive and anywhere (no word boundary), the last one of a label winning;
# the digit is not range-checked ("Consistency: 5" is 5) and "1.5" reads as 1. Only when no label
# is found at all: the first three lines that are a bare 0, 1 or 2, as C, R, A.
WISE_PARTS = ("consistency", "realism", "aesthetic_quality")
WISE_WEIGHTS = {"consistency": 0.7, "realism": 0.2, "aesthetic_quality": 0.1}
_WISE_LABEL = re.compile(r"(consistency|realism|aesthetic quality)\*{0,2}\s*:?\s*(\d)", re.IGNORECASE)
_WISE_BARE_PART = re.compile(r"^\s*([0-2])\s*$", re.MULTILINE)
# vllm_eval.py (WISE_Verified): think blocks and stray closing tags removed, then the first
# "Score<up to two *><spaces><optional :><spaces>0 or 1" ending a word; else exactly one bare 0/1 line.
_VERIFIED_THINK = (re.compile(r"<think>.*?</think>\s*", re.DOTALL), re.compile(r"</think>\s*"))
_VERIFIED_LABEL = re.compile(r"score\*{0,2}\s*:?\s*([01])\b", re.IGNORECASE)
_VERIFIED_BARE = re.compile(r"^\s*([01])\s*$", re.MULTILINE)


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
    """WISE legacy's three sub-scores as `extract_scores` reads them; None when it would not get all
    three (upstream then asks again)."""
    found = {label.lower().replace(" ", "_"): float(digit) for label, digit in _WISE_LABEL.findall(answer)}
    if not found:
        bare = _WISE_BARE_PART.findall(answer)
        if len(bare) >= 3:
            found = dict(zip(WISE_PARTS, map(float, bare)))
    return found if set(WISE_PARTS) <= found.keys() else None


def wiscore(parts: dict[str, float]) -> float:
    """WISE's WiScore: (0.7 consistency + 0.2 realism + 0.1 aesthetic quality) / 2 (Calculate.py)."""
    return (sum(WISE_WEIGHTS[p] * parts[p] for p in WISE_PARTS)) / 2


def parse_wise_verified(answer: str) -> float | None:
    """WISE_Verified's 0/1 score as vllm_eval.py reads it; None when it finds none."""
    for pattern in _VERIFIED_THINK:
        answer = pattern.sub("", answer)
    answer = answer.strip()
    m = _VERIFIED_LABEL.search(answer)
    if m:
        return float(m.group(1))
    bare = _VERIFIED_BARE.findall(answer)
    return float(bare[0]) if len(bare) == 1 else None
