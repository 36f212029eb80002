"""GenEval's per-image results JSONL and whole-or-nothing prompt folders, made by the real runner
on the fake backbone with a scripted oracle.

What GenEval's evaluation/summary_scores.py (djghosh13/geneval @ af4902f) does with the JSONL,
read from its code: `pd.read_json(lines=True)`; total images = rows; total prompts = groups of
the `metadata` string; % correct images = mean of `correct`; % correct prompts = per `metadata`
group any(`correct`), then the mean; per `tag` (groupby sort=False: first appearance) the mean
of `correct`; Overall = np.mean of the tag means. It reads no other field.
"""

import json

import pytest

from milr_core.bench.evaluate import evaluate_folder
from milr_core.bench.layout import BenchDir
from milr_core.bench.runner import Bench, BenchSettings, merge_summary, mode_config
from milr_core.config import RunConfig
from milr_core.interfaces import PromptRecord, Score
from milr_core.strategies import STRATEGIES

from fakes import FakeBackbone

RECORDS = [
    PromptRecord("a photo of a cat", "single_object", [{"class": "cat", "count": 1}]),
    PromptRecord("a photo of a dog", "single_object", [{"class": "dog", "count": 1}]),
    PromptRecord("a photo of two cats", "counting", [{"class": "cat", "count": 2}], [{"class": "cat", "count": 3}]),
]
# per image, in run order (prompt 0 runs 0-1, prompt 1 runs 0-1, prompt 2 runs 0-1): 1.0 = correct
REWARDS = [1.0, 0.5, 0.5, 0.5, 1.0, 1.0]
# written by evaluate_images.py; summary_scores.py reads `correct`, `tag` and `metadata`
UPSTREAM_FIELDS = {"filename", "tag", "prompt", "correct", "reason", "metadata"}


class ScriptedOracle:
    """Rewards in order; GenEval's verdict: correct exactly when the reward is 1."""

    name = "geneval"

    def __init__(self, rewards):
        self.rewards = list(rewards)

    def score(self, images, record):
        out = []
        for _ in images:
            value = self.rewards.pop(0)
            detail = "correct" if value == 1.0 else "incorrect: expected more"
            out.append(Score(value, detail, correct=value == 1.0))
        return out


def _bench(root, critic="geneval"):
    cfg = mode_config("baseline", RunConfig(max_reasoning_tokens=4), None)
    settings = BenchSettings(benchmark="geneval", prompts=len(RECORDS), prompts_sha256="x", mode="baseline",
                             images_per_prompt=2, backbone="fake", critic=critic, run=cfg)
    strategy = next(s for s in STRATEGIES if s.name == cfg.strategy)()
    return Bench(settings, RECORDS, BenchDir(root), FakeBackbone(), ScriptedOracle(REWARDS), strategy)


@pytest.fixture
def finished(tmp_path):
    bench = _bench(tmp_path)
    for i in range(len(RECORDS)):
        bench.run_prompt(i)
    return tmp_path, merge_summary(bench.folder, bench.settings)


def upstream_summary(rows):
    """summary_scores.py's numbers, computed the way its pandas calls do."""
    groups: dict[str, list[bool]] = {}
    tags: dict[str, list[bool]] = {}
    for row in rows:
        groups.setdefault(row["metadata"], []).append(row["correct"])
        tags.setdefault(row["tag"], []).append(row["correct"])
    tag_means = {tag: sum(v) / len(v) for tag, v in tags.items()}
    return {
        "images": len(rows),
        "prompts": len(groups),
        "correct_images": sum(r["correct"] for r in rows) / len(rows),
        "correct_prompts": sum(any(v) for v in groups.values()) / len(groups),
        "tags": tag_means,
        "overall": sum(tag_means.values()) / len(tag_means),
    }


def test_results_jsonl_has_upstreams_fields_and_milrs_summary_is_upstreams(finished):
    root, summary = finished
    rows = [json.loads(line) for line in (root / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(row.keys() == UPSTREAM_FIELDS for row in rows)
    assert [r["filename"] for r in rows[:2]] == [str(root / "00000/samples/0000.png"), str(root / "00000/samples/0001.png")]
    for row in rows:
        folder = root / row["filename"].split("/")[-3]
        metadata = json.loads((folder / "metadata.jsonl").read_text())
        assert json.loads(row["metadata"]) == metadata and (row["tag"], row["prompt"]) == (metadata["tag"], metadata["prompt"])
    assert [r["correct"] for r in rows] == [True, False, False, False, True, True]
    assert [r["reason"] for r in rows[:2]] == ["", "incorrect: expected more"]

    upstream = upstream_summary(rows)
    # by hand: single_object 1 of 4 images, counting 2 of 2; prompts 0 and 2 have a correct image
    assert upstream == {"images": 6, "prompts": 3, "correct_images": 0.5, "correct_prompts": 2 / 3,
                        "tags": {"single_object": 0.25, "counting": 1.0}, "overall": 0.625}
    assert summary["all"]["samples"] == upstream["images"] and summary["all"]["prompts"] == upstream["prompts"]
    assert summary["all"]["accuracy"] == upstream["correct_images"]
    assert summary["all"]["prompt_accuracy"] == upstream["correct_prompts"]
    assert {tag: g["accuracy"] for tag, g in summary["tags"].items()} == upstream["tags"]
    assert list(summary["tags"]) == list(upstream["tags"])  # same order of tags
    assert summary["overall"]["accuracy"] == upstream["overall"]


def test_eval_with_the_geneval_critic_writes_the_jsonl_too(finished, monkeypatch):
    root, _ = finished
    import milr_core.plugins as plugins

    class Registry:
        def get(self, kind, name):
            return plugins.Entry(kind, name, lambda backbone=None: ScriptedOracle([1.0] * 6), "", "test")

    monkeypatch.setattr(plugins, "registry", lambda: Registry())
    summary = evaluate_folder(root, "geneval", show_progress=False)
    rows = [json.loads(line) for line in (root / "eval-geneval.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["correct"] for r in rows) and summary["overall"]["accuracy"] == 1.0


def test_other_critics_write_no_geneval_results(tmp_path):
    bench = _bench(tmp_path, critic="mixed")
    bench.run_prompt(0)
    merge_summary(bench.folder, bench.settings)
    assert not (tmp_path / "results.jsonl").exists()


def test_a_prompt_folder_appears_whole_or_not_at_all(tmp_path):
    folder = BenchDir(tmp_path)
    folder.start_prompt(0, RECORDS[0].to_dict())  # killed after its first image: nothing GenEval would read
    folder.write_sample(0, 0, FakeBackbone().decode([[1]])[0])
    assert [p.name for p in tmp_path.iterdir()] == [".00000.part"] and folder.prompt_indices() == []
    assert not folder.finished(0)
    bench = _bench(tmp_path)
    bench.run_prompt(0)  # the rerun starts afresh and moves the whole folder into place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000"]
    assert sorted(p.name for p in (tmp_path / "00000").iterdir()) == ["metadata.jsonl", "result.json", "samples"]
    assert sorted(p.name for p in (tmp_path / "00000/samples").iterdir()) == ["0000.png", "0001.png"]


def test_the_docs_run_genevals_summary_on_the_file_the_runner_writes():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md").read_text()
    assert "python summary_scores.py ../../runs/geneval-milr/results.jsonl" in docs
    assert "--critic geneval" in docs and "--out runs/geneval-milr" in docs
