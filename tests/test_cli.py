"""`milr` as a user meets it: exit codes, one-line errors, and the files generate writes."""

import json
import re
import shlex

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from milr_core.cli import app
from milr_core.runs import RunDir

runner = CliRunner()
# the plain progress lines of generate ("step k/K ...") and bench ("<benchmark> <mode>: n/N prompts, ETA ...")
PROGRESS = re.compile(r"(step \d+/\d+ reward \S+ best \S+|\S+ \S+: \d+/\d+ prompts, ETA .*)$")


def run(*args):
    return runner.invoke(app, list(args))


def one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    # progress lines ("step k/K ...") go to stderr too when it is not a terminal
    lines = [line for line in result.output.strip().splitlines() if line.strip() and not PROGRESS.match(line)]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture
def tiny(tiny_janus_dir):
    return str(tiny_janus_dir)


def test_unknown_backbone_lists_known_ones():
    line = one_line_error(run("generate", "a cat", "--backbone", "nope"))
    assert "unknown backbone 'nope'" in line and "janus-pro-7b" in line and "janus-pro-1b" in line


def test_unknown_critic_and_strategy(tiny):
    line = one_line_error(run("generate", "a cat", "--backbone", tiny, "--critic", "nope"))
    assert "unknown critic 'nope'" in line and "self" in line
    line = one_line_error(run("generate", "a cat", "--backbone", tiny, "--strategy", "zigzag"))
    assert "unknown strategy 'zigzag'" in line and "joint" in line


def test_bad_values_and_empty_prompt(tiny):
    assert "threshold=1.5" in one_line_error(run("generate", "a cat", "--backbone", tiny, "--threshold", "1.5"))
    assert "prompt is empty" in one_line_error(run("generate", "  ", "--backbone", tiny))


def test_missing_weights_folder(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "janus"}')
    line = one_line_error(run("generate", "a photo of a red circle", "--backbone", str(tmp_path)))
    assert "not a complete Janus checkpoint" in line


def test_generate_writes_the_documented_files(tiny, tmp_path):
    out = tmp_path / "run"
    short = tmp_path / "short.toml"
    short.write_text("max_reasoning_tokens = 24\nprefix_rule = \"ceil\"\n")  # the random model never stops on its own
    result = run("generate", "a photo of a red cube", "--backbone", tiny, "--critic", "self", "--config", str(short),
                 "--steps", "2", "--threshold", "1.0", "--out", str(out), "--json", "--seed", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert [t["step"] for t in trace] == [0, 1, 2]
    assert all(0 <= t["rewards"][0] <= 1 and t["reasoning"] and t["details"] for t in trace)
    assert [t["rewards"] for t in trace] == summary["rewards"]
    for t in trace:
        assert Image.open(out / t["images"][0]).size == (32, 32)
    final = json.loads((out / "final.json").read_text())
    assert final["reward"] == trace[-1]["rewards"][0]  # the last image, as the paper returns
    assert summary["best_reward"] == max(t["rewards"][0] for t in trace)
    assert Image.open(out / "final.png").tobytes() == Image.open(out / final["image"]).tobytes()
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["steps"] == 2 and config["run"]["seed"] == 1 and config["critic"]["name"] == "self"
    assert config["critic"]["source"] == "milr-janus" and config["schema_version"] == 1
    assert config["run"]["max_reasoning_tokens"] == 24
    env = config["environment"]
    assert {"torch", "milr-core", "milr-janus", "python"} <= set(env["versions"]) and env["device"] == "cpu"
    assert env["command"] and env["host"]  # sys.argv: under CliRunner, pytest's and env["date"][:2] == "20"
    assert final["seconds"] > 0 and final["finished"] >= env["date"]

    again = run("generate", "a photo of a red cube", "--backbone", tiny, "--out", str(out))
    assert "not empty" in one_line_error(again)


def test_unwritable_output_folder(tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "cannot write to output folder" in one_line_error(run("generate", "a cat", "--backbone", tiny, "--out", str(blocker / "sub")))


def test_an_interrupted_run_resumes_to_the_same_end(tiny, tmp_path, monkeypatch):
    short = tmp_path / "short.toml"
    short.write_text("max_reasoning_tokens = 16\nprefix_rule = \"ceil\"\n")
    args = ["generate", "a photo of a red cube", "--backbone", tiny, "--critic", "self", "--config", str(short),
            "--steps", "4", "--threshold", "1.0", "--seed", "3", "--json"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run(*args, "--out", str(whole)).exit_code == 0

    write_step = RunDir.write_step

    def ctrl_c_after_step_2(self, step):
        write_step(self, step)
        if step.step == 2:
            raise KeyboardInterrupt  # step 2 is on disk but its state is not: the resumed run redoes it

    monkeypatch.setattr(RunDir, "write_step", ctrl_c_after_step_2)
    line = one_line_error(run(*args, "--out", str(part)), 130)
    monkeypatch.undo()
    assert [t["step"] for t in _trace(part)] == [0, 1, 2]
    assert torch.load(part / "state.pt", weights_only=True)["step"] == 1
    assert json.loads((part / "final.json").read_text())["interrupted"] is True

    command = shlex.split(line.split("; to go on: ")[1])
    assert command[:2] == ["milr", "generate"] and command[-3:] == ["--out", str(part), "--resume"]
    result = run(*command[1:])
    assert result.exit_code == 0, result.output
    assert [{**t, "seconds": None} for t in _trace(part)] == [{**t, "seconds": None} for t in _trace(whole)]
    for t in _trace(whole):
        for name in t["images"]:
            assert (part / name).read_bytes() == (whole / name).read_bytes()
    when = ("finished", "seconds")
    assert _without(part / "final.json", when) == _without(whole / "final.json", when)
    assert (part / "final.png").read_bytes() == (whole / "final.png").read_bytes()


def _without(path, keys):
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in keys}


def _trace(out):
    return [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]


def test_an_empty_or_damaged_state_is_named_on_resume(tiny, tmp_path):
    short = tmp_path / "short.toml"
    short.write_text("max_reasoning_tokens = 8\nprefix_rule = \"ceil\"\n")
    out = tmp_path / "run"
    args = ["generate", "a red cube", "--backbone", tiny, "--critic", "self", "--config", str(short), "--steps", "1",
            "--threshold", "1.0", "--out", str(out)]
    assert run(*args).exit_code == 0
    (out / "final.json").unlink()  # as if it had been stopped before the end
    state = out / "state.pt"
    state.write_bytes(b"")
    assert one_line_error(run(*args, "--resume")) == (
        f"error: {state} is empty (written by an interrupted copy?); start again with --overwrite"
    )
    state.write_bytes(b"\x80\x02 not a torch file at all")
    line = one_line_error(run(*args, "--resume"))
    assert line.startswith(f"error: cannot resume from {state}: not a search state that milr saved, or cut short (")


def test_a_prompt_too_long_is_refused_before_anything_loads(tmp_path):
    prompt = "a red cube " * 2000
    line = one_line_error(run("generate", prompt, "--backbone", "janus-pro-7b", "--out", str(tmp_path / "run")))
    assert line == "error: the prompt is 22,000 characters long; at most 2,000 are allowed"
    assert not (tmp_path / "run").exists()
