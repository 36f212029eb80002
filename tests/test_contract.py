"""The bad-input contract: every way a user can get `milr` wrong, or the machine can fail under it,
ends in one line on stderr, a non-zero exit code and no traceback, and loses nothing already written.

Most cases run the CLI in-process on a fake backbone (tests/fakes.py) registered next to the installed
plugins, so they take milliseconds; Ctrl-C and broken plugins need a real process.
"""

import errno
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fakes import FakeBackbone, ScriptedCritic
from milr_core import plugins
from milr_core.cli import app
from milr_core.plugins import build_registry, hookimpl

TESTS = Path(__file__).resolve().parent
runner = CliRunner()


def milr(*args):
    return runner.invoke(app, [str(a) for a in args])


def error_line(output: str, exit_code: int, code: int = 2, alone: bool = True) -> str:
    """The one `error:` line; `alone`: nothing else was printed (mistakes caught before any work)."""
    assert exit_code == code, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    if alone:
        assert lines == errors, output
    return errors[0]


def fails(*args, alone: bool = True) -> str:
    """Run `milr ARGS` in-process and return its one error line (exit code 2)."""
    result = milr(*args)
    return error_line(result.output, result.exit_code, alone=alone)


def _strict_json(text: str):
    def no_nan(name):
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=no_nan)


@pytest.fixture
def fake(monkeypatch):
    """The installed plugins plus a fake backbone and scripted critics; `fake.rewards` feeds `scripted`."""
    state = types.SimpleNamespace(rewards=[0.3])

    @hookimpl
    def register_backbones(register):
        register("fake", lambda **kw: FakeBackbone(), "deterministic stand-in")

    @hookimpl
    def register_critics(register):
        register("scripted", lambda **kw: ScriptedCritic(state.rewards), "rewards from the test")

    module = types.ModuleType("contract-fakes")
    module.register_backbones, module.register_critics = register_backbones, register_critics
    reg = build_registry(extra_plugins=(module,))
    monkeypatch.setattr(plugins, "registry", lambda: reg)
    return state


def trace_of(out: Path) -> list[dict]:
    return [_strict_json(line) for line in (out / "trace.jsonl").read_text().splitlines()]


def assert_steps_kept(out: Path, steps: list[int]):
    """trace.jsonl has whole lines for exactly these steps and every image they name loads."""
    trace = trace_of(out)
    assert [t["step"] for t in trace] == steps
    for t in trace:
        for name in t["images"]:
            Image.open(out / name).load()
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"


# -- mistakes caught before any work -------------------------------------------------
@pytest.mark.parametrize("prompt", ["", "   ", "\n"])
def test_empty_prompt(fake, tmp_path, prompt):
    assert fails("generate", prompt, "-b", "fake", "-o", tmp_path / "run") == "error: the prompt is empty"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flag, kind, known",
    [("--backbone", "backbone", "fake, janus-pro-1b"), ("--critic", "critic", "scripted, self"), ("--strategy", "strategy", "alt, image-only")],
)
def test_unknown_names_list_the_known_ones(fake, flag, kind, known):
    line = fails("generate", "a cat", "-b", "fake", "-c", "scripted", flag, "nope")
    plural = "strategies" if kind == "strategy" else f"{kind}s"
    assert line.startswith(f"error: unknown {kind} 'nope'; known {plural}: ") and known in line


def test_a_backbone_path_that_does_not_exist(fake, tmp_path):
    line = fails("generate", "a cat", "-b", tmp_path / "Janus-Pro-7B")
    # the names are those of every installed backbone plugin, so only these are certain
    assert line.startswith(f"error: backbone folder {tmp_path / 'Janus-Pro-7B'} does not exist (backbone names: ")
    names = line.split("(backbone names: ")[1].rstrip(")").split(", ")
    assert names == sorted(names) and {"fake", "janus-pro-1b", "janus-pro-7b", "janus-shapes", "janus-tiny"} <= set(names)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--threshold", "1.5"], "threshold=1.5: Input should be less than or equal to 1"),
        (["--threshold", "-0.1"], "threshold=-0.1: Input should be greater than or equal to 0"),
        (["--steps", "-1"], "steps=-1: Input should be greater than or equal to 0"),
        (["--samples", "0"], "samples=0: Input should be greater than or equal to 1"),
        (["--lr", "0"], "lr=0.0: Input should be greater than 0"),
    ],
)
def test_out_of_range_flags(fake, tmp_path, args, words):
    line = fails("generate", "a cat", "-b", "fake", "-c", "scripted", "-o", tmp_path / "run", *args)
    assert line == f"error: invalid config: {words}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "text, words",
    [
        ("text_ratio = 0\n", "text_ratio=0: Input should be greater than 0"),
        ("image_ratio = 1.5\n", "image_ratio=1.5: Input should be less than or equal to 1"),
        ("[run]\nsteps = -3\nthreshold = 2\n", "steps=-3: Input should be greater than or equal to 0; threshold=2"),
        ("stepz = 3\n", "stepz=3: Extra inputs are not permitted"),
        ('strategy = 3\n', "strategy=3: Input should be a valid string"),
    ],
)
def test_contradictory_config_file(fake, tmp_path, text, words):
    path = tmp_path / "run.toml"
    path.write_text(text)
    line = fails("generate", "a cat", "-b", "fake", "-c", "scripted", "--config", path)
    assert line.startswith(f"error: invalid {path}: {words}")


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("missing.toml", None, "cannot read config file {path}: No such file or directory"),
        ("folder.toml", "dir", "cannot read config file {path}: Is a directory"),
        ("bad.toml", "steps = = 3", "{path}: not valid TOML: "),
        ("bad.json", "{steps: 3}", "{path}: not valid JSON: "),
        ("list.yaml", "- 1\n- 2\n", "{path}: expected a table of settings at the top level"),
        ("run.ini", "steps=3", "{path}: config files must end in .toml, .yaml, .yml or .json"),
    ],
)
def test_unreadable_config_file(fake, tmp_path, name, content, words):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    line = fails("generate", "a cat", "-b", "fake", "--config", path)
    assert line.startswith("error: " + words.format(path=path))


@pytest.mark.parametrize(
    "benchmark, name, text, words",
    [
        ("geneval", "prompts.jsonl", ('{"prompt": "a cat", "tag": "single_object", "include": [{"class": "cat", "count": 1}]}\n'
                                      '{"prompt": "a dog", oops\n'), ":2: not valid JSON"),
        ("t2i-compbench", "color_val.txt", "a red apple\n\na blue car\n", ":2: empty prompt line"),
    ],
)
def test_prompt_file_with_a_malformed_line(fake, tmp_path, benchmark, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "bench"
    line = fails("bench", benchmark, "--prompts", path, "-b", "fake", "-c", "scripted", "-o", out)
    assert line.startswith(f"error: {path}{words}")
    assert not out.exists()


def test_output_folder_not_writable_or_not_empty(fake, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    line = fails("generate", "a cat", "-b", "fake", "-c", "scripted", "-o", blocker / "run")
    assert line.startswith(f"error: cannot write to output folder {blocker / 'run'}: ")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    line = fails("generate", "a cat", "-b", "fake", "-c", "scripted", "-o", taken)
    assert "is not empty; choose another --out or pass --overwrite" in line
    assert blocker.read_text() == "mine" and (taken / "notes.txt").read_text() == "mine"


def test_weights_folder_missing_files(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "janus"}')
    line = fails("generate", "a photo of a red circle", "--backbone", tmp_path)
    assert line == f"error: {tmp_path} is not a complete Janus checkpoint: missing preprocessor_config.json"
    (tmp_path / "preprocessor_config.json").write_text("{}")
    line = fails("generate", "a photo of a red circle", "--backbone", tmp_path)
    assert line == f"error: {tmp_path} is not a complete Janus checkpoint: missing *.safetensors"


def test_resume_refuses_what_it_cannot_go_on_with(fake, tmp_path):
    out = tmp_path / "run"
    args = ["generate", "a cat", "-b", "fake", "-c", "scripted", "--steps", "3", "--threshold", "1", "-o", out]
    assert milr(*args).exit_code == 0
    result = milr(*args, "--resume")
    assert result.exit_code == 0 and result.output.strip() == f"{out} is already complete; nothing to resume"

    (out / "final.json").unlink()  # as if the run was killed before its end
    settings = f"error: cannot resume {out}: it was run with "
    assert fails("generate", "a dog", *args[2:], "--resume") == settings + "prompt = 'a cat', this command has prompt = 'a dog'"
    assert fails(*args, "-b", "janus-tiny", "--resume") == settings + "backbone = 'fake', this command has backbone = 'janus-tiny'"
    assert fails(*args, "-c", "self", "--resume") == settings + "critic = 'scripted', this command has critic = 'self'"
    assert fails(*args, "--steps", "5", "--resume") == settings + "steps = 3, this command has steps = 5"
    assert fails(*args, "--lr", "0.5", "--resume") == settings + "lr = 0.03, this command has lr = 0.5"
    assert fails(*args, "--resume", "--overwrite") == "error: --resume needs --out, the folder of the run to go on with, and no --overwrite"
    assert fails(*args[:-2], "--resume") == "error: --resume needs --out, the folder of the run to go on with, and no --overwrite"
    assert fails(*args[:-1], tmp_path / "elsewhere", "--resume") == f"error: {tmp_path / 'elsewhere'} holds no generate run to resume (no config.json)"
    config = json.loads((out / "config.json").read_text())
    assert (config["environment"]["device"], config["environment"]["dtype"]) == ("cpu", "float32")
    (out / "config.json").write_text(json.dumps({**config, "environment": {**config["environment"], "device": "cuda"}}))
    line = fails(*args, "--resume")
    assert line == f"error: cannot resume {out}: it was run with device = 'cuda', this one has device = 'cpu' (pass --device cuda)"
    (out / "config.json").write_text(json.dumps(config))
    (out / "state.pt").unlink()
    line = fails(*args, "--resume")
    assert line == f"error: {out} has no state.pt to resume from (stopped before step 0 was saved); start again with --overwrite"
    assert_steps_kept(out, [0, 1, 2, 3])  # refusing changed nothing


# -- faults during a run: what was written stays -----------------------------------------
def test_disk_full_keeps_the_earlier_steps(fake, tmp_path, monkeypatch):
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name.startswith("002_"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "run"
    line = fails("generate", "a cat", "-b", "fake", "-c", "scripted", "--steps", "4", "--threshold", "1", "-o", out, alone=False)
    assert line == f"error: cannot write {out / 'steps' / '002_00.png'}: No space left on device"
    assert_steps_kept(out, [0, 1])
    assert _strict_json((out / "config.json").read_text())["prompt"] == "a cat"


def test_a_trace_line_that_cannot_be_written_is_not_left_half(fake, tmp_path, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:  # step 1's line reached the file, but the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "run"
    line = fails("generate", "a cat", "-b", "fake", "-c", "scripted", "--steps", "3", "--threshold", "1", "-o", out, alone=False)
    assert line == f"error: cannot write {out / 'trace.jsonl'}: No space left on device"
    assert (out / "trace.jsonl").read_text().count("\n") == 1
    assert_steps_kept(out, [0])


def test_a_nan_reward_is_skipped_and_logged(fake, tmp_path):
    fake.rewards = [0.3, math.nan, 0.5]
    out = tmp_path / "run"
    result = milr("generate", "a cat", "-b", "fake", "-c", "scripted", "--steps", "2", "--threshold", "1", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    summary = _strict_json(result.output.strip().splitlines()[-1])
    assert summary["rewards"] == [[0.3], [None], [0.5]] and summary["best_reward"] == 0.5
    trace = trace_of(out)
    assert trace[1]["rewards"] == [None] and trace[1]["details"][0].startswith("NaN reward (skipped)")
    assert trace[2]["loss"] is None  # no update could be made from step 1's only (NaN) reward
    assert _strict_json((out / "final.json").read_text())["step"] == 2


def test_a_critic_that_only_gives_nan(fake, tmp_path):
    fake.rewards = [math.nan]
    out = tmp_path / "run"
    result = milr("generate", "a cat", "-b", "fake", "-c", "scripted", "--steps", "1", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    assert _strict_json(result.output.strip().splitlines()[-1])["best_reward"] is None
    final = _strict_json((out / "final.json").read_text())
    assert final["reward"] is None and final["step"] == 1  # the last image, as the paper returns
    result = milr("generate", "a cat", "-b", "fake", "-c", "scripted", "--steps", "1", "-o", tmp_path / "again",
                  "--config", _config(tmp_path, return_image="best"))
    assert result.exit_code == 0 and "best reward none (the critic gave NaN for every image)" in result.output


def _config(tmp_path, **settings) -> str:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_judge_server_down(fake, tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    for name, value in {"BASE_URL": url, "MAX_RETRIES": "1", "BACKOFF": "0", "CACHE_DIR": "off"}.items():
        monkeypatch.setenv(f"MILR_UNIFIED_{name}", value)
    out = tmp_path / "run"
    line = fails("generate", "a cat", "-b", "fake", "-c", "unified", "-o", out, alone=False)
    # found by the critic's check, before any image is drawn; the new run folder is not left behind
    assert line.startswith("error: cannot reach the unified judge ") and f"at {url}: " in line
    assert not (out / "config.json").exists()


# -- real processes: plugins that break, Ctrl-C ------------------------------------------------
def _fake_distribution(site: Path, name: str, module: str, source: str) -> None:
    """An installed distribution as importlib.metadata sees it: a dist-info folder with a `milr` entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[milr]\n{module} = {module}\n")


def _process(site: Path, *args, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "milr_core", *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_a_plugin_that_raises_on_import_is_reported_and_the_others_work(tmp_path):
    _fake_distribution(tmp_path, "milr-broken-contract", "broken_contract", "raise RuntimeError('broken on purpose')\n")
    stdout, stderr = _process(tmp_path, "plugins").communicate(timeout=120)
    assert "self" in stdout and "joint" in stdout
    assert " ".join(stderr.split()) == "plugin milr-broken-contract failed to load: RuntimeError: broken on purpose"

    proc = _process(tmp_path, "generate", "a cat", "--critic", "missing-one")
    stdout, stderr = proc.communicate(timeout=120)
    line = error_line(stderr, proc.returncode)
    assert "unknown critic 'missing-one'" in line and "plugins that failed to load: milr-broken-contract" in line


SLOW_PLUGIN = '''
import time
from fakes import FakeBackbone
from milr_core.interfaces import Critic, Score
from milr_core.plugins import hookimpl


class Slow(Critic):
    def score(self, images, record):
        time.sleep(0.2)  # a real critic's work: long enough for Ctrl-C to land mid-run
        return [Score(0.25, "slow") for _ in images]


@hookimpl
def register_backbones(register):
    register("fake", lambda **kw: FakeBackbone())


@hookimpl
def register_critics(register):
    register("slow", lambda **kw: Slow())
'''


def test_ctrl_c_keeps_the_partial_run(tmp_path):
    site, out = tmp_path / "site", tmp_path / "run"
    site.mkdir()
    _fake_distribution(site, "milr-slow-contract", "slow_contract", SLOW_PLUGIN)
    proc = _process(site, "generate", "a cat", "-b", "fake", "-c", "slow", "--steps", "1000", "--threshold", "1", "-o", out)
    deadline = time.monotonic() + 120
    while not ((out / "trace.jsonl").exists() and (out / "trace.jsonl").read_text().count("\n") >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    line = error_line(stderr, proc.returncode, code=130, alone=False)
    k = int(line.split("interrupted after step ")[1].split()[0])
    assert line == (
        f"error: interrupted after step {k} of 1000; the steps so far, the best image and the report are in {out}; "
        f"to go on: milr generate 'a cat' --backbone fake --critic slow --steps 1000 --threshold 1.0 --out {out} --resume"
    )
    trace = trace_of(out)
    # three trace lines were on disk; the signal may land between step 2's line and the engine taking
    # step 2 in, so at least steps 0 and 1 are kept
    assert k >= 1 and len(trace) >= 3 and [t["step"] for t in trace][: k + 1] == list(range(k + 1)) and len(trace) <= k + 2
    assert_steps_kept(out, [t["step"] for t in trace])
    assert torch.load(out / "state.pt", weights_only=True)["step"] in (k - 1, k)  # never ahead of the kept steps
    final = _strict_json((out / "final.json").read_text())
    assert final["interrupted"] is True and final["steps_run"] == k and final["reward"] == 0.25
    assert Image.open(out / "final.png").tobytes() == Image.open(out / final["image"]).tobytes()
    assert "interrupted after step" in (out / "report.html").read_text()
