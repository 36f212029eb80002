"""Run folders through the Python API: --overwrite starts empty, one writer at a time, and a damaged
folder is refused on --resume with one line naming the file, nothing on disk changed."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

import milr_core as milr
from fakes import FakeBackbone, ScriptedCritic
from milr_core.errors import MilrError
from milr_core.files import LOCK

PROMPT = "a red cube"


def run(out, steps=3, **kwargs):
    return milr.generate(PROMPT, backbone=FakeBackbone(), critic=ScriptedCritic([0.2]), out=out, steps=steps,
                         threshold=1.0, **kwargs)


def interrupted(out, **kwargs):
    """A run stopped by Ctrl-C after step 2 was on disk (state.pt at step 1)."""

    def ctrl_c(step):
        if step.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(milr.Interrupted):
        run(out, steps=4, on_step=ctrl_c, **kwargs)
    return out


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_api_returns_the_best_image_and_saves_the_layout(tmp_path):
    result = milr.generate(PROMPT, backbone=FakeBackbone(), critic=ScriptedCritic([0.1, 0.7, 0.3]), steps=2,
                           threshold=1.0, return_image="best")
    assert result.out is None and result.reward == 0.7 and len(result.steps) == 3
    assert result.image is result.steps[1].images[0] and result.reasoning == result.steps[1].reasoning[0]
    folder = result.save(tmp_path / "saved")
    assert json.loads((folder / "final.json").read_text())["reward"] == 0.7
    assert len((folder / "trace.jsonl").read_text().splitlines()) == 3 and not (folder / LOCK).exists()


def test_overwrite_starts_from_an_empty_folder(tmp_path):
    out = tmp_path / "run"
    run(out, steps=3)
    assert (out / "steps" / "003_00.png").is_file()
    with pytest.raises(MilrError, match="not empty"):
        run(out, steps=1)
    run(out, steps=1, overwrite=True)
    assert sorted(p.name for p in (out / "steps").iterdir()) == ["000_00.png", "001_00.png"]

    class Broken(ScriptedCritic):
        def score(self, images, record):
            raise MilrError("the critic failed")

    with pytest.raises(MilrError, match="critic failed"):
        milr.generate(PROMPT, backbone=FakeBackbone(), critic=Broken([0]), out=out, overwrite=True, steps=1)
    # the failed new run left its config and nothing of the old run: no final.json to "resume" from
    assert not (out / "final.json").exists() and not (out / "trace.jsonl").exists()
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "steps"]


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(MilrError, match=f"in use by process {live.pid}"):
            run(out)
        (out / LOCK).write_text(json.dumps({"pid": live.pid, "host": "elsewhere"}))
        with pytest.raises(MilrError, match="on host elsewhere"):
            run(out)
    finally:
        live.kill()
        live.wait()
    (out / LOCK).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))  # its process is gone
    run(out, overwrite=True)
    assert (out / "final.json").is_file() and not (out / LOCK).exists()


def damage_trace_garbage(out):
    with open(out / "trace.jsonl", "a") as f:
        f.write("{not json\n")
    return "trace.jsonl line 4: not valid JSON"


def damage_trace_missing_line(out):
    lines = (out / "trace.jsonl").read_text().splitlines(keepends=True)
    (out / "trace.jsonl").write_text(lines[0] + lines[2])
    return "trace.jsonl line 2: step 2 where step 1 belongs"


def damage_no_trace(out):
    (out / "trace.jsonl").unlink()
    return "trace.jsonl is missing"


def damage_step_image(out):
    (out / "steps" / "001_00.png").unlink()
    return "001_00.png is missing"


def damage_config_not_json(out):
    (out / "config.json").write_text("{")
    return "config.json: not valid JSON"


def damage_config_without_run(out):
    config = json.loads((out / "config.json").read_text())
    del config["run"]
    (out / "config.json").write_text(json.dumps(config))
    return "config.json: not a RunRecord record: run: Field required"


def damage_state_later_step(out):
    state = torch.load(out / "state.pt", weights_only=True)
    state["step"] = 9
    torch.save(state, out / "state.pt")
    return "state.pt is from step 9, but"


def damage_state_of_another_run(out):
    other = interrupted(out.parent / "other", seed=5)
    (out / "state.pt").write_bytes((other / "state.pt").read_bytes())
    return "state.pt belongs to another run"


def damage_state_empty(out):
    (out / "state.pt").write_bytes(b"")
    return "state.pt is empty"


@pytest.mark.parametrize("damage", [damage_trace_garbage, damage_trace_missing_line, damage_no_trace, damage_step_image,
                                    damage_config_not_json, damage_config_without_run, damage_state_later_step,
                                    damage_state_of_another_run, damage_state_empty])
def test_resume_names_the_damaged_file_and_changes_nothing(tmp_path, damage):
    out = interrupted(tmp_path / "run")
    expected = damage(out)
    before = snapshot(out)
    with pytest.raises(MilrError) as caught:
        run(out, steps=4, resume=True)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert type(caught.value) is MilrError
    assert snapshot(out) == before


def test_resume_goes_on_when_nothing_is_damaged(tmp_path):
    out = interrupted(tmp_path / "run")
    result = run(out, steps=4, resume=True)
    assert [s.step for s in result.steps] == [0, 1, 2, 3, 4] and (out / "final.json").is_file()
    again = run(out, steps=4, resume=True)
    assert again.already_complete


def test_reading_records_imports_no_torch():
    code = "import sys, milr_core, milr_core.report, milr_core.bench.export; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    assert done.stdout.strip() == "False"


def test_a_critic_check_fails_before_any_backbone_loads(tmp_path, monkeypatch):
    from milr_core import plugins
    from milr_core.plugins import build_registry, hookimpl

    loaded = []

    class Picky(ScriptedCritic):
        def check(self, record):
            raise MilrError(f"picky cannot read {record.prompt!r}")

    class Plugin:
        @hookimpl
        def register_backbones(self, register):
            register("counted", lambda **kw: loaded.append(1) or FakeBackbone(), "loads are counted")

        @hookimpl
        def register_critics(self, register):
            register("picky", lambda backbone=None, **kw: Picky([0.5]), "refuses every prompt")

    reg = build_registry(extra_plugins=(Plugin(),))
    monkeypatch.setattr(plugins, "registry", lambda: reg)
    out = tmp_path / "run"
    with pytest.raises(MilrError, match="picky cannot read 'a red cube'"):
        milr.generate(PROMPT, backbone="counted", critic="picky", out=out)
    assert loaded == [] and not out.exists()  # no weights loaded, no folder left behind
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"tag": "single_object", "include": [{"class": "cat", "count": 1}],
                                   "prompt": "a photo of a cat"}) + "\n")
    with pytest.raises(MilrError, match="picky cannot read 'a photo of a cat'"):
        milr.bench("geneval", prompts=prompts, backbone="counted", critic="picky", out=tmp_path / "bench")
    assert loaded == [] and not (tmp_path / "bench" / "config.json").exists()
