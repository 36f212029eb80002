"""The scenes table's plan and its arithmetic (benchmarks/scenes_ablation.py, scenes_table.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scenes_ablation  # noqa: E402
import scenes_table  # noqa: E402
from milr_core.config import RunConfig  # noqa: E402


def test_budget_rows_spend_the_same_images():
    budget = [r for n, r in scenes_ablation.ROWS.items() if n.startswith("samples-") or n == "advantage-norm"]
    assert len(budget) == 5
    for row in budget:
        assert row.settings["samples"] * (row.steps + 1) == scenes_ablation.BUDGET


def test_every_row_is_a_valid_run_config_and_command(tmp_path):
    for name, row in scenes_ablation.ROWS.items():
        RunConfig(**row.settings)  # an unknown field or value would fail here, not on the GPU
        cmd = scenes_ablation.command(tmp_path, name, 100000, 7, None, "cpu")
        assert cmd[cmd.index("--limit") + 1] == "7" and cmd[cmd.index("--dtype") + 1] == "float32"
        assert ("--steps" in cmd) == (row.steps is not None)
    smoke = scenes_ablation.command(tmp_path, "best-of-16-sampled-text", 0, 2, 1, None)
    assert smoke[smoke.index("--n") + 1] == "2"
    comparisons = {x for pair in scenes_ablation.COMPARISONS for x in pair}
    assert comparisons <= set(scenes_ablation.ROWS)


def _folder(correct, tags, proxy=None):
    return {"settings": {"run": {}}, "folder": "f",
            "prompts": {i: {"tag": t, "correct": c, "proxy": None if proxy is None else proxy[i], "images": 1}
                        for i, (c, t) in enumerate(zip(correct, tags))}}


def test_comparisons_are_paired_differences_of_the_overall():
    tags = ["a"] * 4 + ["b"] * 4
    rows = {"x": [_folder([1, 1, 1, 0, 1, 0, 0, 0], tags)], "y": [_folder([1, 0, 0, 0, 1, 0, 0, 0], tags)],
            "z": [_folder([0] * 8, tags, proxy=[1, 1, 0, 0, 0, 0, 0, 0])]}
    out = scenes_table.build(rows, "y", 500, (("x", "y"), ("x", "missing")))
    assert out["rows"]["x"]["accuracy"] == pytest.approx(0.5)  # (3/4 + 1/4) / 2
    assert out["comparisons"]["x - y"]["difference"] == pytest.approx(0.25)
    low, high = out["comparisons"]["x - y"]["interval"]
    assert 0 <= low <= 0.25 <= high  # x is never below y on any prompt
    assert list(out["comparisons"]) == ["x - y"]
    assert out["rows"]["z"]["proxy_pass_oracle_fail"] == pytest.approx(0.25)
    assert np.isclose(out["rows"]["x"]["minus_reference"], 0.25)


def test_a_set_stopped_early_that_covers_the_tags_unevenly_is_refused_unless_partial():
    tags = ["a"] * 4 + ["b"] * 4
    done = _folder([1] * 8, tags)
    stopped = _folder([1] * 5, tags[:5])  # ordered by tag: the stopped run holds all of a, one of b
    with pytest.raises(SystemExit, match="unevenly"):
        scenes_table.build({"x": [done], "y": [stopped]}, None, 10)
    out = scenes_table.build({"x": [done], "y": [stopped]}, None, 10, partial=True)
    assert out["prompts"] == 5 and out["tags"] == {"a": 4, "b": 1}
    even = {**done, "prompts": {i: done["prompts"][i] for i in (0, 1, 4, 5)}}  # 2 of a, 2 of b: accepted
    assert scenes_table.build({"x": [done], "y": [even]}, None, 10)["tags"] == {"a": 2, "b": 2}


def test_a_proxy_guided_folder_is_judged_once_and_the_verdict_kept(tmp_path):
    from PIL import Image

    folder, prompt = tmp_path / "self-s0", tmp_path / "self-s0" / "00000"
    (prompt / "samples").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"settings": {"critic": "self", "run": {"threshold": 0.9}}}))
    (prompt / "metadata.jsonl").write_text(json.dumps(
        {"prompt": "a photo of a cross", "tag": "single_object", "include": [{"class": "cross", "count": 1}]}) + "\n")
    (prompt / "result.json").write_text(json.dumps({"index": 0, "tag": "single_object", "samples": [
        {"file": "samples/0000.png", "reward": 0.95, "images": 11}]}))
    Image.new("RGB", (128, 128), "white").save(prompt / "samples" / "0000.png")  # no cross: the oracle fails it
    first = scenes_table.load_folder(folder)["prompts"][0]
    assert first == {"tag": "single_object", "correct": False, "proxy": True, "images": 11}  # passed by the proxy
    assert json.loads((prompt / "oracle.json").read_text())["correct"] is False
    (prompt / "samples" / "0000.png").unlink()  # packed without images: the kept verdict is read instead
    (prompt / "oracle.json").write_text(json.dumps({"correct": True}))
    assert scenes_table.load_folder(folder)["prompts"][0]["correct"] is True
