"""docs/python-api.md runs as written: every python block of the page, in order, in a fresh process
from an empty folder; the README's example is the page's first block."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "python-api.md"


def blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def test_the_readme_shows_the_first_example():
    assert blocks(PAGE)[0] in blocks(ROOT / "README.md")


def test_every_example_runs_as_written(tmp_path):
    outputs = []
    for i, code in enumerate(blocks(PAGE)):
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              env=os.environ, timeout=900)
        assert done.returncode == 0, f"block {i}:\n{code}\n{done.stderr}"
        outputs.append(done.stdout)
    reward, reasoning = outputs[0].split(" ", 1)
    assert 0 <= float(reward) <= 1 and reasoning.strip()
    assert (tmp_path / "three-triangles.png").is_file()
    assert re.fullmatch(r"(a photo of .+: reward \d\.\d\d after \d steps\n){2}", outputs[1])
    accuracy, images = map(float, outputs[2].split())
    assert 0 <= accuracy <= 1 and images == 1.0  # baseline: one image per final image
    assert (tmp_path / "runs" / "api-bench-baseline" / "summary.json").is_file()
