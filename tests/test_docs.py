"""The docs say what the code does: generated pages are current, copied commands and files match,
and the example plugin package works when installed as a third party would install it."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from milr_core.interfaces import PromptRecord

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "milr-critic-example"


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", DOCS / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["cli.md", "configuration.md"])
def test_generated_pages_are_current(page):
    expected = _gen_docs().PAGES[page]()
    assert (DOCS / page).read_text() == expected, f"docs/{page} is out of date: run `python docs/gen_docs.py`"


def test_cli_page_covers_every_command_and_option():
    text = (DOCS / "cli.md").read_text()
    for command in ("generate", "plugins", "report"):
        assert f"## milr {command}" in text
    for option in ("`--backbone`", "`--critic`", "`--strategy`", "`--steps`", "`--config`", "`--json`"):
        assert option in text
    config = (DOCS / "configuration.md").read_text()
    assert "| `threshold` | float | `0.9` | >= 0, <= 1 |" in config


def test_quickstart_has_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^# (?:run|test):.*\n(.+)$", readme, flags=re.MULTILINE)
    assert len(commands) == 2
    quickstart = (DOCS / "quickstart.md").read_text()
    for command in commands:
        assert command in quickstart


def test_plugin_guide_shows_the_example_files_as_they_are():
    guide = (DOCS / "write-a-plugin.md").read_text()
    files = [p for p in EXAMPLE.rglob("*") if p.is_file() and "egg-info" not in str(p) and p.suffix in (".py", ".toml")]
    assert len(files) == 4
    for path in files:
        rel = path.relative_to(EXAMPLE).as_posix()
        assert f"`{rel}`:\n\n```{'toml' if path.suffix == '.toml' else 'python'}\n{path.read_text()}```" in guide, rel


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    target = tmp_path_factory.mktemp("example-site")
    build = tmp_path_factory.mktemp("example-src")
    # pip builds in the source folder; copy it so the repository stays clean
    for path in EXAMPLE.rglob("*"):
        if path.is_file() and "egg-info" not in str(path) and "__pycache__" not in str(path):
            (build / path.relative_to(EXAMPLE)).parent.mkdir(parents=True, exist_ok=True)
            (build / path.relative_to(EXAMPLE)).write_bytes(path.read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(build)],
        check=True,
    )
    return target


def _milr(args, site):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "milr_core", *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_example_plugin_is_listed_and_drives_generate(example_site, tiny_janus_dir, tmp_path, monkeypatch):
    listed = json.loads(_milr(["plugins", "--json"], example_site).stdout)
    critics = {e["name"]: e for e in listed["critic"]}
    assert critics["colour-share"]["source"] == "milr-critic-example"
    assert critics["colour-share"]["description"] == "share of pixels in the colour the prompt names"

    out = tmp_path / "run"
    result = _milr(["generate", "a photo of a gray square", "--critic", "colour-share", "--backbone", str(tiny_janus_dir),
                    "--steps", "1", "--threshold", "1.0", "--out", str(out), "--json"], example_site)
    assert result.returncode == 0, result.stderr
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert json.loads(result.stdout)["rewards"] == [t["rewards"] for t in trace]

    # every reward is the example critic's verdict on the saved image
    monkeypatch.syspath_prepend(str(example_site))
    from milr_critic_example.critic import ColourShare

    for t in trace:
        (score,) = ColourShare().score([Image.open(out / t["images"][0])], PromptRecord("a photo of a gray square"))
        assert t["rewards"] == [score.value] and t["details"] == [score.detail]
        assert t["details"][0].endswith("of the pixels are gray") and 0 < score.value <= 1
