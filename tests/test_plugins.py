"""Plugins are found through the `milr` entry-point group, and a broken one harms no other."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from milr_core.errors import UnknownName
from milr_core.plugins import registry

GOOD = '''
from milr_core.interfaces import Critic, Score
from milr_core.plugins import hookimpl


class Constant(Critic):
    name = "constant-demo"

    def score(self, images, record):
        return [Score(0.5, "always a half") for _ in images]


@hookimpl
def register_critics(register):
    register("constant-demo", lambda **kw: Constant(), "scores every image 0.5")
'''

BROKEN = "raise RuntimeError('this plugin is broken on purpose')\n"

EXITS = "import sys\nsys.exit(3)\n"

# takes names that are already registered: milr-core's `joint`, and another plugin's critic
DUPLICATE = '''
from milr_core.plugins import hookimpl


@hookimpl
def register_strategies(register):
    register("joint", lambda **kw: "not a strategy", "an impostor")


@hookimpl
def register_critics(register):
    register("constant-demo", lambda **kw: "not a critic", "an impostor")
'''


def _package(root: Path, name: str, module_source: str) -> Path:
    src = root / name
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text(module_source)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "{name.replace('_', '-')}"
            version = "0.0.1"
            [project.entry-points.milr]
            {name} = "{name}"
            """
        )
    )
    return src


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two third-party packages pip-installed into a folder: one works, one raises on import."""
    root = tmp_path_factory.mktemp("plugins")
    target = root / "site"
    packages = (("milr_demo_critic", GOOD), ("milr_broken_demo", BROKEN), ("milr_exits_demo", EXITS),
                ("milr_zz_duplicate_demo", DUPLICATE))
    for name, source in packages:
        pkg = _package(root, name, source)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(pkg)],
            check=True,
        )
    return target


def _milr(args, site=None, **kw):
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "milr_core", *args], capture_output=True, text=True, env=env, **kw)


def test_installed_plugins_are_listed_with_their_distribution():
    listed = {(k, e["name"]): e["source"] for k, es in json.loads(_milr(["plugins", "--json"]).stdout).items() if k != "failures" for e in es}
    for name in ("janus-pro-1b", "janus-pro-7b", "janus-tiny"):
        assert listed[("backbone", name)] == "milr-janus"
    assert listed[("critic", "self")] == "milr-janus"
    assert listed[("critic", "shapes-oracle")] == "milr-rewards-geneval"
    for name in ("joint", "alt", "t2v", "text-only", "image-only"):
        assert listed[("strategy", name)] == "milr-core"


def test_third_party_plugin_is_found_and_a_broken_one_is_reported(site):
    result = _milr(["plugins", "--json"], site)
    data = json.loads(result.stdout)
    critics = {e["name"]: e["source"] for e in data["critic"]}
    assert critics["constant-demo"] == "milr-demo-critic"
    assert "self" in critics  # the others still work
    assert any(f["source"] == "milr-broken-demo" and "broken on purpose" in f["error"] for f in data["failures"])

    table = _milr(["plugins"], site)
    assert table.returncode == 0 and "constant-demo" in table.stdout
    assert "milr-broken-demo failed to load" in " ".join(table.stderr.split())


def test_a_plugin_that_exits_on_import_is_named_and_the_rest_work(site):
    result = _milr(["plugins", "--json"], site)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"source": "milr-exits-demo", "error": "SystemExit: 3"} in data["failures"]
    assert "constant-demo" in {e["name"] for e in data["critic"]}


def test_a_name_registered_twice_keeps_the_first_and_names_both(site):
    data = json.loads(_milr(["plugins", "--json"], site).stdout)
    sources = {(kind, e["name"]): e["source"] for kind in ("critic", "strategy") for e in data[kind]}
    assert sources[("strategy", "joint")] == "milr-core"
    assert sources[("critic", "constant-demo")] == "milr-demo-critic"
    errors = [f["error"] for f in data["failures"] if f["source"] == "milr-zz-duplicate-demo"]
    assert sorted(errors) == [
        "critic 'constant-demo' is already registered by milr-demo-critic; the first registration is kept, "
        "this one from milr-zz-duplicate-demo is ignored",
        "strategy 'joint' is already registered by milr-core; the first registration is kept, "
        "this one from milr-zz-duplicate-demo is ignored",
    ]
    table = " ".join(_milr(["plugins"], site).stderr.split())
    assert "strategy 'joint' is already registered by milr-core" in table


def test_third_party_critic_drives_generate(site, tmp_path):
    short = tmp_path / "short.json"
    short.write_text('{"max_reasoning_tokens": 16}')
    result = _milr(
        ["generate", "a red cube", "--critic", "constant-demo", "--steps", "1", "--config", str(short),
         "--out", str(tmp_path / "run"), "--json"],
        site,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rewards"] == [[0.5], [0.5]]


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownName, match=r"unknown critic 'nope'; known critics: .*self"):
        registry().get("critic", "nope")
