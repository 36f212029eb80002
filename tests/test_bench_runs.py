"""`milr bench` end to end on the tiny Janus: GenEval's layout, resume after kill -9, torchrun
with 2 gloo ranks, config mismatch, re-scoring. Every run must reproduce the reference byte for byte."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from milr_core.cli import app

PROMPTS = 6
# Short reasoning keeps each prompt near a second; the tiny model's self-critic rewards sit around 0.47,
# so this threshold stops some prompts early and not others: steps and images vary across prompts.
SETTINGS = "max_reasoning_tokens = 8\nthreshold = 0.473\nprefix_rule = \"ceil\"\n"  # tiny Janus: 16 image tokens


def _args(backbone, config, out, *extra):
    return ["bench", "shapes", "--limit", str(PROMPTS), "--steps", "2", "--critic", "self", "--backbone", backbone,
            "--config", str(config), "--out", str(out), "--json", *extra]


def _env():
    # one thread per process: floating-point sums then do not depend on how many processes share the CPU
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _milr(*args, **kw):
    return subprocess.run([sys.executable, "-m", "milr_core", *args], env=_env(), capture_output=True, text=True,
                          timeout=300, **kw)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_janus_dir):
    root = tmp_path_factory.mktemp("bench")
    config = root / "small.toml"
    config.write_text(SETTINGS)
    reference = root / "reference"
    done = _milr(*_args(str(tiny_janus_dir), config, reference))
    assert done.returncode == 0, done.stderr
    return {"backbone": str(tiny_janus_dir), "config": config, "root": root, "reference": reference}


def _copy(setup, name):
    return shutil.copytree(setup["reference"], setup["root"] / name)


def outputs(folder):
    """Everything a run wrote that must not depend on how it ran (timings and config.json's
    environment aside), keyed by path."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_dir() or rel == "config.json" or rel.startswith("eval-"):
            continue
        if path.suffix == ".png":
            found[rel] = path.read_bytes()
        elif path.name == "trace.jsonl":
            lines = [json.loads(x) for x in path.read_text().splitlines()]
            found[rel] = [{k: v for k, v in line.items() if k != "seconds"} for line in lines]
        else:
            found[rel] = {k: v for k, v in json.loads(path.read_text()).items() if k != "seconds"}
    return found


def test_layout_is_what_genevals_evaluator_reads(setup):
    ref = setup["reference"]
    from milr_core.plugins import registry

    expected = registry().create("benchmark", "shapes").load(None, PROMPTS)
    folders = sorted(p for p in ref.iterdir() if p.is_dir())
    assert [p.name for p in folders] == [f"{i:05d}" for i in range(PROMPTS)]
    for i, folder in enumerate(folders):
        with open(folder / "metadata.jsonl") as f:
            metadata = json.load(f)  # GenEval reads the file as ONE JSON object
        assert metadata == expected[i].to_dict() and {"tag", "include", "prompt"} <= metadata.keys()
        assert [p.name for p in (folder / "samples").iterdir()] == ["0000.png"]
        assert all(re.match(r"\d+\.png", p.name) for p in (folder / "samples").iterdir())
        assert sorted(p.name for p in folder.iterdir()) == ["metadata.jsonl", "result.json", "samples", "trace.jsonl"]
    config = json.loads((ref / "config.json").read_text())
    assert config["settings"]["run"]["steps"] == 2 and config["settings"]["critic"] == "self"
    env = config["environment"]
    assert config["world_size"] == 1 and "torch" in env["versions"] and "milr-janus" in env["versions"]
    assert env["device"] == "cpu" and env["schema_version"] == 1 and env["date"]
    assert not (ref / ".milr.lock").exists()  # released at the end
    summary = json.loads((ref / "summary.json").read_text())
    assert summary["finished"] == PROMPTS and len(summary["tags"]) == PROMPTS
    results = [json.loads((ref / f"{i:05d}/result.json").read_text()) for i in range(PROMPTS)]
    steps = {s["steps"] for r in results for s in r["samples"]}
    assert len(steps) > 1, "the settings should stop some prompts early and not others"


def test_a_run_killed_midway_resumes_to_the_same_results(setup):
    out = setup["root"] / "killed"
    cmd = [sys.executable, "-m", "milr_core", *_args(setup["backbone"], setup["config"], out)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(list(out.glob("*/result.json"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert len(list(out.glob("*/result.json"))) < PROMPTS and not (out / "summary.json").exists()
    done = _milr(*_args(setup["backbone"], setup["config"], out))
    assert done.returncode == 0, done.stderr
    assert outputs(out) == outputs(setup["reference"])
    assert json.loads(done.stdout)["finished"] == PROMPTS


def test_ctrl_c_says_what_is_kept_and_the_same_command_goes_on(setup):
    out = setup["root"] / "interrupted"
    cmd = [sys.executable, "-m", "milr_core", *_args(setup["backbone"], setup["config"], out)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while len(list(out.glob("*/result.json"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be interrupted"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130 and stdout == ""
    done = len(list(out.glob("*/result.json")))
    *progress, last = stderr.strip().splitlines()  # plain progress lines: stderr is no terminal here
    assert all(line.startswith("shapes milr: ") for line in progress)
    assert last == (f"error: interrupted; {done} of {PROMPTS} prompts are finished and kept in {out}; run the same "
                    "command again to go on with the rest")
    again = _milr(*_args(setup["backbone"], setup["config"], out))
    assert again.returncode == 0, again.stderr
    assert outputs(out) == outputs(setup["reference"])


def test_two_gloo_ranks_write_exactly_what_one_process_writes(setup):
    # `janus-tiny` by name on an empty cache: both ranks want to build it on first use (the same
    # weights as the reference's folder), which must not race
    out = setup["root"] / "torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "milr_core", *_args("janus-tiny", setup["config"], out)]
    env = {**_env(), "MILR_CACHE": str(setup["root"] / "cache")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    ours, reference = outputs(out), outputs(setup["reference"])
    assert ours["summary.json"].pop("backbone") == "janus-tiny"
    reference["summary.json"].pop("backbone")
    assert ours == reference
    assert json.loads(done.stdout.strip().splitlines()[-1])["finished"] == PROMPTS  # printed by rank 0 only


runner = CliRunner()


def test_a_rerun_of_a_finished_folder_recomputes_nothing(setup):
    out = _copy(setup, "rerun")
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/result.json")}
    result = runner.invoke(app, _args(setup["backbone"], setup["config"], out))
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/result.json")} == before
    assert outputs(out) == outputs(setup["reference"])


def test_changed_settings_refuse_with_one_line_unless_forced(setup):
    out = _copy(setup, "changed")
    result = runner.invoke(app, _args(setup["backbone"], setup["config"], out, "--steps", "3"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.output.strip()
    assert line.startswith("error:") and "run.steps: 2 -> 3" in line and "--force-mix" in line
    forced = runner.invoke(app, _args(setup["backbone"], setup["config"], out, "--steps", "3", "--force-mix"))
    assert forced.exit_code == 0, forced.output
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["run"]["steps"] == 3 and config["mixed_with"][0]["run"]["steps"] == 2


def test_a_larger_limit_goes_on_with_the_same_folder(setup):
    from milr_core.plugins import registry

    out = _copy(setup, "grown")
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/result.json")}
    # a prompt file whose first prompts are the folder's (the shapes set itself changes with --limit)
    records = [(out / f"{i:05d}" / "metadata.jsonl").read_text().strip() for i in range(PROMPTS)]
    records.append(json.dumps(registry().create("benchmark", "shapes").load(None, PROMPTS + 1)[-1].to_dict()))
    prompts = setup["root"] / "grown.jsonl"
    prompts.write_text("\n".join(records) + "\n")
    args = [*_args(setup["backbone"], setup["config"], out), "--prompts", str(prompts)]
    result = runner.invoke(app, [*args, "--limit", str(PROMPTS + 1)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["finished"] == PROMPTS + 1
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/result.json") if p in before} == before
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["prompts"] == PROMPTS + 1 and "mixed_with" not in config
    smaller = runner.invoke(app, [*args, "--limit", "2"])
    assert smaller.exit_code == 2 and "prompts: 7 -> 2" in smaller.output


def test_eval_rescores_the_saved_images_with_another_critic(setup):
    out = _copy(setup, "eval")
    result = runner.invoke(app, ["eval", str(out), "--critic", "shapes-oracle", "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "eval-shapes-oracle.json").read_text())
    assert written["critic"] == "shapes-oracle" and written["tags"].keys() == {
        "single_object", "two_object", "counting", "colors", "position", "color_attr"}
    first = written["results"][0]["samples"][0]
    ran = json.loads((out / "00000/result.json").read_text())["samples"][0]
    assert first["judged_by"] == "critic" and first["file"] == "samples/0000.png"
    assert (first["images"], first["steps"]) == (ran["images"], ran["steps"])
