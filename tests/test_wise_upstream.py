"""WISE read and scored as its own scripts do (issue 15), pinned to upstream's outputs.

Expected values are derived by reading PKU-YuanGroup/WISE @ eb51174:
- WISE_legacy/gpt_eval.py `extract_scores`: findall of (Consistency|Realism|Aesthetic Quality)
  followed by up to two '*', spaces, an optional ':', spaces and ONE digit, case-insensitive, into
  a dict (the last of a label wins); only when that finds nothing, lines that are a bare 0-2, the
  first three as C, R, A. An answer counts when all three keys are there (else it asks again).
- WISE_legacy/Calculate.py: WiScore = (0.7 C + 0.2 R + 0.1 A) / 2; categories by prompt_id
  range; Overall = 0.4 CULTURE + 0.167 TIME + 0.133 SPACE + 0.1 (BIOLOGY + PHYSICS + CHEMISTRY).
- vllm_eval.py `_chat_completion_via_vllm` strips <think>...</think> and stray </think>;
  `extract_scores` takes the first Score (up to two '*', spaces, optional ':', spaces) followed
  by 0 or 1 at a word end, else the single bare 0/1 line.
- calculate_verified.py: Overall = 0.4 CULTURE + 0.12 (TIME + SPACE + BIOLOGY + PHYSICS + CHEMISTRY).
"""

import pytest

from milr_core.bench.summary import summarize
from milr_rewards_unified.parsing import parse_wise, parse_wise_verified, wiscore


def parts(c, r, a):
    return {"consistency": float(c), "realism": float(r), "aesthetic_quality": float(a)}


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Consistency: 2\nRealism: 1\nAesthetic Quality: 0", parts(2, 1, 0)),
        ("**Consistency**: 1\n**Realism**: 2\n**Aesthetic Quality**: 1", parts(1, 2, 1)),
        ("consistency:2 realism:1 AESTHETIC QUALITY:2", parts(2, 1, 2)),
        ("Consistency 0\nRealism 0\nAesthetic Quality 1", parts(0, 0, 1)),  # the colon is optional
        ("Consistency: 5\nRealism: 1\nAesthetic Quality: 1", parts(5, 1, 1)),  # no range check
        ("Consistency: 1.5\nRealism: 2\nAesthetic Quality: 0", parts(1, 2, 0)),  # one digit
        # a repeated label: the last one wins
        ("The consistency 1 is arguable.\nConsistency: 2\nRealism: 1\nAesthetic Quality: 1", parts(2, 1, 1)),
        ("Inconsistency: 0\nRealism: 1\nAesthetic Quality: 1", parts(0, 1, 1)),  # no word boundary
        ("Consistency: \uff12\nRealism: 1\nAesthetic Quality: 1", parts(2, 1, 1)),  # any Unicode digit
        ("The image is off.\n1\n2\n0\n", parts(1, 2, 0)),  # bare lines: C, R, A
        ("2\n 1 \n0\n2", parts(2, 1, 0)),  # the first three
        ("**Consistency:** 2\n**Realism:** 1\n**Aesthetic Quality:** 1", None),  # '*' after ':' stops it
        ("Consistency - 2\nRealism - 1\nAesthetic Quality - 1", None),
        ("Consistency: 2\nRealism: 1", None),  # incomplete: asked again
        ("Consistency: 2\nRealism: 1\n1\n1\n0", None),  # a label was found: no fallback
        ('{"consistency": 2, "realism": 2, "aesthetic_quality": 1}', None),  # JSON is not read
        ("Aesthetic  Quality: 2\nConsistency: 1\nRealism: 1", None),  # two spaces: no label
        ("3\n1\n0", None),  # only two bare lines of 0-2
        ("great", None),
    ],
)
def test_legacy_answers_read_as_extract_scores(answer, expected):
    assert parse_wise(answer) == expected


def test_a_justification_before_the_labels_changes_wiscore_as_upstream():
    answer = "Consistency 1 at first sight, but the explanation holds.\nConsistency: 2\nRealism: 1\nAesthetic Quality: 1"
    assert wiscore(parse_wise(answer)) == pytest.approx(0.85)  # (0.7*2 + 0.2*1 + 0.1*1) / 2; not 0.50


@pytest.mark.parametrize("c, r, a, expected", [(2, 2, 2, 1.0), (0, 0, 0, 0.0), (2, 1, 0, 0.8), (1, 2, 0, 0.55)])
def test_wiscore(c, r, a, expected):
    assert wiscore(parts(c, r, a)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Score: 1", 1.0),
        ("score 0", 0.0),
        ("**Score**: 1", 1.0),
        ("**Score:** 1", None),  # '*' after ':' stops it, and no bare line
        ("The final score: 0", 0.0),  # no word boundary before "score"
        ("Score: 1.0", 1.0),
        ("Score: 10", None),  # "1" does not end a word
        ("Score: 2", None),
        ("<think>Score: 1</think>\nScore: 0", 0.0),  # think blocks go first
        ("Thinking it over: score 1.</think>\nScore: 0", 1.0),  # only the stray closing tag goes
        ("Score: 0, though one could say Score: 1", 0.0),  # the first
        ("1", 1.0),
        ("The image is wrong.\n0", 0.0),
        ("0\n1", None),  # two bare lines
        ("yes", None),
    ],
)
def test_verified_answers_read_as_vllm_eval(answer, expected):
    assert parse_wise_verified(answer) == expected


def one(tag, reward):
    return {"tag": tag, "samples": [{"reward": reward, "correct": reward >= 0.5, "images": 1, "steps": 0}]}


def test_overall_is_wises_weighted_overall():
    rewards = {"CULTURE": 0.8, "TIME": 0.5, "SPACE": 0.25, "BIOLOGY": 0.6, "PHYSICS": 0.4, "CHEMISTRY": 0.1}

    def upstream_means(sizes):  # Calculate.py: sum(scores) / len(scores) per category
        return {tag: sum([rewards[tag]] * n) / n for tag, n in sizes.items()}

    legacy = {"CULTURE": 400, "TIME": 167, "SPACE": 133, "BIOLOGY": 100, "PHYSICS": 100, "CHEMISTRY": 100}
    m = upstream_means(legacy)
    expected = (0.4 * m["CULTURE"] + 0.167 * m["TIME"] + 0.133 * m["SPACE"] + 0.1 * m["BIOLOGY"]
                + 0.1 * m["PHYSICS"] + 0.1 * m["CHEMISTRY"])  # fmt: skip
    summary = summarize([one(tag, rewards[tag]) for tag, n in legacy.items() for _ in range(n)])
    assert summary["overall"]["reward"] == expected  # the same float: same weights, same order of additions
    assert summary["overall"]["reward"] != pytest.approx(sum(m.values()) / 6)  # not GenEval's mean of means

    verified = {tag: 400 if tag == "CULTURE" else 120 for tag in rewards}
    m = upstream_means(verified)
    expected = (0.4 * m["CULTURE"] + 0.12 * m["TIME"] + 0.12 * m["SPACE"] + 0.12 * m["BIOLOGY"]
                + 0.12 * m["PHYSICS"] + 0.12 * m["CHEMISTRY"])  # fmt: skip
    summary = summarize([one(tag, rewards[tag]) for tag, n in verified.items() for _ in range(n)])
    assert summary["overall"]["reward"] == expected


def test_other_tags_keep_genevals_mean_of_tag_means():
    summary = summarize([one("colors", 1.0), one("colors", 0.0), one("counting", 1.0)])
    assert summary["overall"]["reward"] == 0.75
