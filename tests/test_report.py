"""`milr report`: the page holds every image it promises, and shows what changed."""

import base64
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest
from PIL import Image
from typer.testing import CliRunner

from fakes import FakeBackbone, ScriptedCritic
from milr_core.cli import app
from milr_core.config import RunConfig
from milr_core.engine import run_milr
from milr_core.interfaces import PromptRecord
from milr_core.records import Component, RunRecord, environment
from milr_core.report import write_report
from milr_core.report.run import word_diff
from milr_core.runs import RunDir
from milr_core.strategies import Alternate

PROMPT = "a photo of a red cube <left> of a blue ball"  # the angle brackets must be escaped


class Page(HTMLParser):
    """The page's images (decoded) and its visible text."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[tuple[str, Image.Image]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            a = dict(attrs)
            head, data = a["src"].split(",", 1)
            assert head in ("data:image/png;base64", "data:image/jpeg;base64"), "the page must not depend on other files"
            image = Image.open(io.BytesIO(base64.b64decode(data)))
            image.load()
            self.images.append((a.get("alt", ""), image))

    def handle_data(self, data):
        self.text.append(data)

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def make_run(root, rewards, steps=3, samples=2):
    config = RunConfig(steps=steps, samples=samples, threshold=0.95, lr=0.5, strategy="alt")
    run_dir = RunDir.create(root)
    run_dir.write_config(RunRecord(prompt=PROMPT, backbone=Component(name="fake"), critic=Component(name="scripted"),
                                   run=config, environment=environment([])))
    result = run_milr(FakeBackbone(), ScriptedCritic(rewards), Alternate(), PromptRecord(PROMPT), config, run_dir.write_step)
    run_dir.write_final(result, seconds=1.0)
    run_dir.close()
    return result


@pytest.fixture
def run(tmp_path):
    root = tmp_path / "run"
    # step 0: 0.2 0.3, step 1: NaN 0.1, step 2: 0.6 0.4, step 3: 0.5 0.5
    result = make_run(root, [0.2, 0.3, math.nan, 0.1, 0.6, 0.4, 0.5, 0.5])
    return root, result


def test_run_page_embeds_every_image(run):
    root, _ = run
    page_path = write_report([root])
    assert page_path == root / "report.html"
    umask = os.umask(0o022)
    os.umask(umask)
    assert page_path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any file the user makes
    page = Page(page_path.read_text())
    alts = [alt for alt, _ in page.images]
    # baseline and best side by side, the curve, and one frame per image of every step
    assert alts[0] == "baseline (step 0): reward 0.200"
    assert alts[1] == "MILR (last, step 3 sample 0): reward 0.500"  # the best sample of the last step
    assert "reward per step" in alts
    frames = [alt for alt in alts if alt.startswith("step ")]
    assert frames == [f"step {k} sample {i}: reward {r}" for k, i, r in [
        (0, 0, "0.200"), (0, 1, "0.300"), (1, 0, "NaN (skipped)"), (1, 1, "0.100"),
        (2, 0, "0.600"), (2, 1, "0.400"), (3, 0, "0.500"), (3, 1, "0.500")]]
    # the embedded baseline and best images are the files the run wrote
    best = Image.open(root / "final.png")
    assert page.images[1][1].convert("RGB").tobytes() == best.convert("RGB").tobytes()
    curve = Image.open(root / "report-reward_curve.png")
    assert curve.size[0] > 300 and dict(page.images)["reward per step"].size == curve.size
    assert PROMPT in page.visible and "<left>" not in page_path.read_text()


def test_reasoning_changes_are_highlighted(run):
    root, result = run
    page = Page(write_report([root]).read_text())
    # alt moves text latents at odd steps: step 1 rewrites the reasoning, step 2 keeps it
    texts = [s.reasoning for s in result.steps]
    assert texts[1] != texts[0] and texts[2] == texts[1]
    assert "ins" in page.tags and "del" in page.tags
    assert "unchanged" in page.visible
    assert "NaN reward (skipped)" in page.visible  # the critic's detail of the skipped sample
    assert "strategy alt" in page.visible and "steps 3 of 3" in page.visible


def test_word_diff_marks_added_and_removed_words():
    assert word_diff("a red cube on grass", "a blue cube on grass") == "a <del>red</del> <ins>blue</ins> cube on grass"
    assert word_diff("x", "x <y>") == "x <ins>&lt;y&gt;</ins>"


def test_interrupted_run_still_reports(tmp_path):
    root = tmp_path / "run"
    make_run(root, [0.2, 0.3, 0.4, 0.1, 0.6, 0.4, 0.5, 0.5])
    (root / "final.json").unlink()
    (root / "final.png").unlink()
    (root / "steps" / "003_01.png").unlink()  # killed while writing the last image
    page = Page(write_report([root]).read_text())
    assert "interrupted after step 3" in page.visible
    assert "MILR (last, step 2 sample 0): reward 0.600" in [alt for alt, _ in page.images]
    assert page.visible.count("image missing") == 1


def make_bench(root, mode, n, scores):
    """A bench folder in milr_core/bench/layout.py's layout; `scores`: per prompt (reward, correct) or None (not run)."""
    tags = ["counting", "position"]
    results = {}
    for i, score in enumerate(scores):
        if score is None:
            continue
        reward, correct = score
        folder = root / f"{i:05d}"
        (folder / "samples").mkdir(parents=True)
        Image.new("RGB", (24, 24), (int(reward * 255), 0, 0)).save(folder / "samples" / "0000.png")
        results[i] = {"index": i, "prompt": f"prompt {i} <b>", "tag": tags[i], "mode": mode,
                      "samples": [{"file": "samples/0000.png", "reward": reward, "correct": correct, "detail": "d",
                                   "best_step": 2}]}
        (folder / "result.json").write_text(json.dumps(results[i]))

    def group(rs):
        return {"prompts": len(rs), "accuracy": sum(r["samples"][0]["correct"] for r in rs) / len(rs),
                "reward": sum(r["samples"][0]["reward"] for r in rs) / len(rs), "images": n or 1, "steps": 0}

    by_tag = {r["tag"]: group([r]) for r in results.values()}
    summary = {"benchmark": "shapes", "mode": mode, "critic": "shapes-oracle", "prompts": len(scores),
               "finished": len(results), "tags": by_tag, "all": group(list(results.values())),
               "overall": {m: sum(g[m] for g in by_tag.values()) / len(by_tag) for m in ("accuracy", "reward", "images", "steps")}}
    (root / "summary.json").write_text(json.dumps(summary))
    (root / "config.json").write_text(json.dumps({"settings": {"mode": mode, "n": n}}))
    return root


def test_bench_folders_side_by_side(tmp_path):
    folders = [
        make_bench(tmp_path / "base", "baseline", None, [(0.2, False), (0.7, True)]),
        make_bench(tmp_path / "bon", "best-of-n", 3, [(0.4, False), (0.8, True)]),
        make_bench(tmp_path / "milr", "milr", None, [(0.9, True), None]),
    ]
    # MILR's trajectory for prompt 0: one trace line per step (NaN written as null)
    lines = [{"sample": 0, "step": k, "rewards": [r]} for k, r in enumerate([0.1, None, 0.9])]
    (tmp_path / "milr" / "00000" / "trace.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "compare.html"
    assert write_report(folders, out) == out
    text = out.read_text()
    page = Page(text)
    assert "baseline best-of-n (N=3) milr" in page.visible
    # one table per metric: accuracy first, tags then the totals, the best of each row in bold
    assert "counting 1 0.000 0.000 1.000 position 1 1.000 1.000 - overall (tag mean) 0.500 0.500 1.000" in page.visible
    assert '<td class="num best">1.000</td></tr>' in text
    alts = [alt for alt, _ in page.images]
    assert alts[:2] == ["accuracy by tag", "accuracy versus images"]
    assert (tmp_path / "compare-accuracy_by_tag.png").is_file() and (tmp_path / "compare-accuracy_vs_images.png").is_file()
    assert alts[2:] == ["baseline, prompt 0: reward 0.200", "best-of-n (N=3), prompt 0: reward 0.400",
                        "milr, prompt 0: reward 0.900", "baseline, prompt 1: reward 0.700",
                        "best-of-n (N=3), prompt 1: reward 0.800"]
    assert "not run" in page.visible and "prompt 0 <b>" in page.visible
    assert "step 0: 0.10, best at step 2 of 2" in page.visible and 'title="best reward per step: 0.10 → NaN → 0.90"' in text


def test_comparison_goes_to_its_own_page(tmp_path, monkeypatch):
    a = make_bench(tmp_path / "a", "best-of-n", 2, [(0.4, False), (0.8, True)])
    b = make_bench(tmp_path / "b", "milr", None, [(0.9, True), (0.95, True)])
    (a / "eval-geneval.json").write_text(json.dumps({"critic": "geneval", "tags": {}, "all": {},
                                                     "overall": {"accuracy": 0.25}}))
    for folder in (a, b):
        write_report([folder])
    before = {p: p.read_bytes() for folder in (a, b) for p in folder.rglob("*") if p.is_file()}

    page_path = tmp_path / "cmp.html"
    result = CliRunner().invoke(app, ["report", str(a), str(b), "--out", str(page_path)])
    assert result.exit_code == 0, result.output
    after = {p: p.read_bytes() for folder in (a, b) for p in folder.rglob("*") if p.is_file()}
    assert after == before  # neither folder's own page (nor anything else in it) changed

    page = Page(page_path.read_text())
    plot = dict(page.images)["accuracy versus images"]
    assert plot.convert("L").getextrema()[0] < 128  # drawn, not blank
    assert "Judged by other critics (milr eval) critic best-of-n (N=2) milr geneval 0.250 -" in page.visible

    monkeypatch.chdir(tmp_path)  # several folders and no --out: comparison.html here
    assert CliRunner().invoke(app, ["report", str(a), str(b)]).exit_code == 0
    assert (tmp_path / "comparison.html").is_file()


def test_cli_report_and_its_errors(run, tmp_path):
    root, _ = run
    result = CliRunner().invoke(app, ["report", str(root)])
    assert result.exit_code == 0 and result.output.strip() == f"report: {root / 'report.html'}"
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and result.output.strip() == f"error: {tmp_path / 'nowhere'} is not a folder"
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "neither a generate run folder" in result.output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed")
def test_page_renders_in_a_browser(run, tmp_path):
    root, _ = run
    page = write_report([root])
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
            capture_output=True, timeout=120, check=True,
        )
    image = Image.open(shot).convert("L")
    # the blue outline of the best frame and the curve are drawn: the page is not blank
    assert image.size == (1200, 1600) and image.getextrema()[0] < 100
