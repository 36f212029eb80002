"""BAGEL through the command line, installed as a separate distribution: `milr plugins` lists it,
`milr generate --backbone <BAGEL folder>` finds it by the folder's layout and runs a search whose
text latents move the plan and redraw the image, and a resumed run ends where the whole one does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a photo of two red circles above a blue square"  # one that shapes-oracle, a weight-free critic, can read


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """milr-bagel installed the way a user installs it (not from this checkout's path)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(ROOT / "plugins" / "milr_bagel")], check=True)
    return target


def milr(site, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "milr_core", *map(str, args)], capture_output=True, text=True, env=env)


def test_plugins_lists_the_bagel_backbones(site):
    listed = json.loads(milr(site, "plugins", "--json").stdout)
    sources = {e["name"]: e["source"] for e in listed["backbone"]}
    assert sources["bagel-7b"] == sources["bagel-tiny"] == "milr-bagel"


def test_generate_with_a_bagel_folder(site, tiny_bagel_dir, tmp_path):
    short = tmp_path / "short.toml"
    short.write_text("max_reasoning_tokens = 12\nlr = 5.0\ncontinuation_temperature = 0.0\n")
    out = tmp_path / "run"
    args = ["generate", PROMPT, "--backbone", tiny_bagel_dir, "--critic", "shapes-oracle", "--strategy", "joint",
            "--config", short, "--steps", "2", "--threshold", "1.0", "--out", out, "--json"]
    result = milr(site, *args)
    assert result.returncode == 0, result.stderr
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert [t["step"] for t in trace] == [0, 1, 2]
    assert [t["groups"] for t in trace] == [[], ["text"], ["text"]]  # joint reduces to text on BAGEL
    assert trace[1]["reasoning"] != trace[0]["reasoning"]  # a large step moves the plan's prefix
    images = [(out / t["images"][0]).read_bytes() for t in trace]
    assert len(set(images)) == 3  # a new image at every step

    refused = milr(site, "generate", PROMPT, "--backbone", tiny_bagel_dir, "--critic", "shapes-oracle",
                   "--strategy", "image-only", "--out", tmp_path / "refused")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert lines[-1].startswith("error: strategy image-only moves no latent group") and "Traceback" not in refused.stderr
