"""The runner's modes, files and summaries on the fake backbone and a scripted critic (no subprocess, no model)."""

import json
import re
from types import SimpleNamespace

import pytest

from milr_core.bench.layout import BenchDir
from milr_core.bench.runner import Bench, BenchSettings, merge_summary, mode_config
from milr_core.bench.summary import summarize
from milr_core.config import RunConfig
from milr_core.errors import MilrError
from milr_core.interfaces import PromptRecord, Score
from milr_core.strategies import STRATEGIES

from fakes import FakeBackbone, ScriptedCritic

RECORDS = [PromptRecord("a photo of a cat", "single_object"), PromptRecord("a photo of two dogs", "counting")]


def _bench(tmp_path, mode, critic, n=None, images_per_prompt=1, slots=1, **run):
    # one search at a time: the scripted critic answers in the order it is called
    cfg = mode_config(mode, RunConfig(max_reasoning_tokens=4, **run), n)
    settings = BenchSettings(benchmark="demo", prompts=len(RECORDS), prompts_sha256="x", mode=mode, n=n,
                             images_per_prompt=images_per_prompt, backbone="fake", critic="scripted", run=cfg)
    strategy = next(s for s in STRATEGIES if s.name == cfg.strategy)()
    return Bench(settings, RECORDS, BenchDir(tmp_path), FakeBackbone(), critic, strategy, slots=slots)


def test_baseline_is_one_image_at_step_zero(tmp_path):
    bench = _bench(tmp_path, "baseline", ScriptedCritic([0.95]), steps=5, samples=4)
    assert (bench.settings.run.steps, bench.settings.run.samples) == (0, 1)
    bench.run_prompt(0)
    result = json.loads((tmp_path / "00000" / "result.json").read_text())
    (sample,) = result["samples"]
    assert (sample["images"], sample["steps"], sample["reward"]) == (1, 0, 0.95)
    assert sample["correct"] is True and sample["judged_by"] == "reward > 0.9"
    assert not (tmp_path / "00000" / "trace.jsonl").exists()  # only MILR has a trajectory


def test_best_of_n_keeps_the_critics_best_of_n_images(tmp_path):
    bench = _bench(tmp_path, "best-of-n", ScriptedCritic([0.2, 0.7, 0.4]), n=3)
    bench.run_prompt(1)
    (sample,) = json.loads((tmp_path / "00001" / "result.json").read_text())["samples"]
    assert (sample["images"], sample["steps"], sample["reward"], sample["correct"]) == (3, 0, 0.7, False)


def test_milr_writes_trajectory_and_independent_runs_per_prompt(tmp_path):
    # run 0 stops at step 2 (0.95 > 0.9); run 1 reads the last value for every image and stops at once
    bench = _bench(tmp_path, "milr", ScriptedCritic([0.1, 0.3, 0.95]), images_per_prompt=2, steps=4, seed=10)
    bench.run_prompt(1)
    folder = tmp_path / "00001"
    result = json.loads((folder / "result.json").read_text())
    assert [s["file"] for s in result["samples"]] == ["samples/0000.png", "samples/0001.png"]
    assert [s["seed"] for s in result["samples"]] == [10 + 1 * 2 + 0, 10 + 1 * 2 + 1]
    assert [(s["steps"], s["images"], s["stopped_early"]) for s in result["samples"]] == [(2, 3, True), (0, 1, True)]
    trace = [json.loads(line) for line in (folder / "trace.jsonl").read_text().splitlines()]
    assert [(t["sample"], t["step"], t["rewards"]) for t in trace] == [
        (0, 0, [0.1]), (0, 1, [0.3]), (0, 2, [0.95]), (1, 0, [0.95])
    ]
    assert json.loads((folder / "metadata.jsonl").read_text()) == RECORDS[1].to_dict()
    assert sorted(p.name for p in (folder / "samples").iterdir()) == ["0000.png", "0001.png"]


def test_the_verdict_in_the_score_decides_correctness_and_nothing_is_scored_twice(tmp_path):
    class Oracle(ScriptedCritic):
        def score(self, images, record):
            return [Score(s.value, s.detail, correct=True) for s in super().score(images, record)]

        def verdict(self, image, record):  # a method of that name means nothing to the runner
            raise AssertionError("the runner must judge from the score it already has")

    critic = Oracle([0.1])
    bench = _bench(tmp_path, "baseline", critic, reward_shaping="fraction")  # the graded score stays the reward
    bench.run_prompt(0)
    (sample,) = json.loads((tmp_path / "00000" / "result.json").read_text())["samples"]
    assert (sample["correct"], sample["judged_by"], sample["reward"]) == (True, "critic", 0.1)
    assert critic.calls == 1  # the final image was scored once


def test_binary_reward_shaping_uses_the_verdict(tmp_path):
    class Oracle(ScriptedCritic):
        def score(self, images, record):
            return [Score(s.value, s.detail, correct=False) for s in super().score(images, record)]

    bench = _bench(tmp_path, "baseline", Oracle([0.75]), reward_shaping="binary")
    bench.run_prompt(0)
    (sample,) = json.loads((tmp_path / "00000" / "result.json").read_text())["samples"]
    assert (sample["correct"], sample["reward"]) == (False, 0.0)


def test_resample_is_milr_with_frozen_latents(tmp_path):
    run = RunConfig(steps=3)
    assert mode_config("resample", run, None).frozen and not mode_config("milr", run, None).frozen
    bench = _bench(tmp_path, "resample", ScriptedCritic([0.1, 0.2, 0.3, 0.4]), steps=3)
    bench.run_prompt(0)
    (sample,) = json.loads((tmp_path / "00000" / "result.json").read_text())["samples"]
    assert (sample["steps"], sample["images"]) == (3, 4)
    assert (tmp_path / "00000" / "trace.jsonl").exists()


def test_a_rerun_of_a_killed_prompt_removes_half_written_files(tmp_path):
    stale = tmp_path / "00000" / "samples" / ".0000.png.abc.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    _bench(tmp_path, "baseline", ScriptedCritic([0.5])).run_prompt(0)
    assert not stale.exists() and (tmp_path / "00000" / "result.json").exists()


def test_summary_is_merged_from_disk(tmp_path):
    bench = _bench(tmp_path, "baseline", ScriptedCritic([0.95, 0.5]))
    bench.run_prompt(0)
    assert merge_summary(bench.folder, bench.settings)["finished"] == 1
    bench.run_prompt(1)
    summary = merge_summary(bench.folder, bench.settings)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["tags"]["single_object"]["accuracy"] == 1.0 and summary["tags"]["counting"]["accuracy"] == 0.0
    assert summary["all"]["reward"] == pytest.approx(0.725) and summary["finished"] == 2


def test_overall_is_the_mean_of_tag_means_and_all_pools_images():
    def prompt(tag, *correct):
        return {"tag": tag, "samples": [{"reward": float(c), "correct": c, "images": 2, "steps": 1} for c in correct]}

    summary = summarize([prompt("a", True, False), prompt("a", False, False), prompt("b", True, True)])
    assert summary["tags"]["a"] == {"prompts": 2, "samples": 4, "reward": 0.25, "accuracy": 0.25,
                                    "prompt_accuracy": 0.5, "images": 2.0, "steps": 1.0}
    assert summary["overall"]["accuracy"] == pytest.approx((0.25 + 1.0) / 2)
    assert summary["all"]["accuracy"] == pytest.approx(3 / 6)
    assert summary["all"]["prompt_accuracy"] == pytest.approx(2 / 3)


def test_mode_settings_and_their_errors():
    run = RunConfig(steps=7, samples=3)
    assert mode_config("milr", run, None) == run
    assert mode_config("best-of-n", run, 5).samples == 5
    with pytest.raises(MilrError, match="best-of-n needs --n"):
        mode_config("best-of-n", run, None)
    with pytest.raises(MilrError, match="--n is the N of best-of-n"):
        mode_config("milr", run, 4)
    with pytest.raises(MilrError, match="unknown mode 'beam'"):
        mode_config("beam", run, None)


def test_changed_settings_are_refused_unless_mixing_is_forced(tmp_path):
    folder = BenchDir(tmp_path)
    settings = {"mode": "milr", "run": {"steps": 2, "lr": 0.03}}
    assert folder.check(settings, force_mix=False) is None
    folder.write_config(settings, {"versions": {}}, None)
    assert folder.check(settings, force_mix=False)["settings"] == settings
    changed = {"mode": "milr", "run": {"steps": 3, "lr": 0.03}}
    with pytest.raises(MilrError, match=re.escape("other settings (run.steps: 2 -> 3)")):
        folder.check(changed, force_mix=False)
    old = folder.check(changed, force_mix=True)
    folder.write_config(changed, {"versions": {}}, old)
    assert json.loads((tmp_path / "config.json").read_text())["mixed_with"] == [settings]


def test_a_folder_made_before_a_field_existed_resumes_while_the_field_is_at_its_default(tmp_path):
    folder = BenchDir(tmp_path)
    folder.write_config({"mode": "milr", "run": {"steps": 2}}, {"versions": {}}, None)  # no image_lr_scale yet
    assert folder.check({"mode": "milr", "run": {"steps": 2, "image_lr_scale": 1.0}}, force_mix=False)
    with pytest.raises(MilrError, match=re.escape("run.image_lr_scale: None -> 3.0")):
        folder.check({"mode": "milr", "run": {"steps": 2, "image_lr_scale": 3.0}}, force_mix=False)


def test_a_foreign_folder_is_not_mixed_into(tmp_path):
    (tmp_path / "00000").mkdir()
    with pytest.raises(MilrError, match="prompt folders but no config.json"):
        BenchDir(tmp_path).check({"mode": "milr"}, force_mix=False)



def test_n_from_takes_a_milr_runs_mean_images(tmp_path):
    from milr_core.bench.api import n_from as _n_from

    (tmp_path / "summary.json").write_text(json.dumps({"all": {"images": 4.6}}))
    assert _n_from(tmp_path) == 5
    with pytest.raises(MilrError, match="no summary with mean images"):
        _n_from(tmp_path / "missing")


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "nope"], "unknown benchmark 'nope'; known benchmarks: geneval, "),
        (["bench", "geneval"], "geneval needs --prompts"),
        (["bench", "shapes", "--mode", "best-of-n"], "best-of-n needs --n N"),
        (["bench", "shapes", "--critic", "nope"], "unknown critic 'nope'"),
        (["bench", "shapes", "--steps", "-1"], "steps=-1"),
    ],
)
def test_bench_mistakes_are_one_line_errors_before_any_model_loads(tmp_path, args, message):
    from typer.testing import CliRunner

    from milr_core.cli import app

    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.strip().startswith("error:") and message in result.output, result.output
    assert not (tmp_path / "out").exists()
