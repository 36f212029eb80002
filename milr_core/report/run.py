"""`milr report`: one HTML page that shows what a run did.

For a `generate` run folder it writes `<run>/report.html` and `<run>/reward_curve.png`.
The page is self-contained: every image is embedded as base64 (film-strip
frames as thumbnails), so the one file can be mailed or attached to an issue.
For bench folders (each with a `summary.json`) it writes one table that puts
the folders side by side (`report.html` in the first folder, or `--out`).
"""

from __future__ import annotations

import base64
import difflib
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import MilrError
from .runs import atomic_write

PAGE = "report.html"
CURVE = "reward_curve.png"
THUMB = 160  # px: film-strip frames; baseline and final are embedded at full size
esc = html.escape


@dataclass
class Run:
    """A `generate` folder as read back from disk (finished or interrupted)."""

    root: Path
    config: dict[str, Any]
    trace: list[dict[str, Any]]
    final: dict[str, Any] | None  # None when the run was killed before it finished

    @property
    def rewards(self) -> list[list[float | None]]:
        # trace.jsonl writes a NaN reward (skipped by the engine) as null
        return [[_number(r) for r in t["rewards"]] for t in self.trace]

    def best(self) -> tuple[int, int, float | None]:
        """(step, sample, reward): final.json's choice, else the engine's rule (earliest highest)."""
        if self.final:
            return self.final["step"], self.final["sample"], _number(self.final["reward"])
        seen = [(t["step"], i, r) for t, rs in zip(self.trace, self.rewards) for i, r in enumerate(rs) if r is not None]
        return max(seen, key=lambda s: s[2], default=(0, 0, None))  # max keeps the first of equals


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise MilrError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise MilrError(f"{path}: not valid JSON: {exc}") from None


def load_run(root: Path) -> Run:
    lines = (root / "trace.jsonl").read_text().splitlines()
    trace = []
    for number, line in enumerate(lines, start=1):
        try:
            trace.append(json.loads(line))
        except ValueError as exc:
            raise MilrError(f"{root / 'trace.jsonl'} line {number}: not valid JSON: {exc}") from None
    if not trace:
        raise MilrError(f"{root} has no steps yet (trace.jsonl is empty)")
    config = _read_json(root / "config.json") if (root / "config.json").exists() else {}
    final = _read_json(root / "final.json") if (root / "final.json").exists() else None
    return Run(root, config, trace, final)


# -- pieces of the page ------------------------------------------------------
def data_uri(path: Path, max_side: int | None = None) -> str | None:
    """The image as a PNG data URI, shrunk to max_side; None when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.load()
            if max_side and max(im.size) > max_side:
                im.thumbnail((max_side, max_side))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
    except (OSError, ValueError):  # an interrupted run may have lost its last image
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(uri: str | None, alt: str, cls: str = "") -> str:
    if uri is None:
        return f'<div class="missing {cls}">image missing</div>'
    return f'<img class="{cls}" src="{uri}" alt="{esc(alt)}">'


def _fmt(r: float | None) -> str:
    return "NaN (skipped)" if r is None else f"{r:.3f}"


def word_diff(old: str, new: str) -> str:
    """`new` as HTML with the words added since `old` in <ins> and the removed ones in <del>."""
    a, b = old.split(), new.split()
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(esc(" ".join(b[j1:j2])))
        if op in ("delete", "replace"):
            parts.append(f"<del>{esc(' '.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            parts.append(f"<ins>{esc(' '.join(b[j1:j2]))}</ins>")
    return " ".join(parts)


def reward_curve(run: Run) -> bytes | None:
    """PNG of every sample's reward per step, the best so far and the threshold; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    steps = [t["step"] for t in run.trace]
    rewards = run.rewards
    fig = Figure(figsize=(7, 3), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = [(k, r) for k, rs in zip(steps, rewards) for r in rs if r is not None]
    if points:
        ax.scatter(*zip(*points), s=14, color="#9aa7b8", label="each sample", zorder=2)
    best, best_so_far = -math.inf, []
    for rs in rewards:
        best = max([best, *(r for r in rs if r is not None)])
        best_so_far.append(best if best > -math.inf else math.nan)
    ax.plot(steps, best_so_far, color="#1f6feb", lw=2, drawstyle="steps-post", label="best so far", zorder=3)
    threshold = run.config.get("run", {}).get("threshold")
    if threshold is not None:
        ax.axhline(threshold, color="#d1242f", ls="--", lw=1, label=f"threshold {threshold:g}")
    values = [r for _, r in points] + ([threshold] if threshold is not None else [])
    ax.set_ylim(min([0.0, *values]) - 0.02, max([1.0, *values]) + 0.02)
    ax.set_xlim(-0.3, max(steps) + 0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _header(run: Run) -> str:
    c = run.config
    settings = c.get("run", {})
    done = len(run.trace) - 1
    if run.final is None:
        state = f"interrupted after step {run.trace[-1]['step']}"
    elif run.final.get("stopped_early"):
        state = "stopped early: a reward passed the threshold"
    else:
        state = "ran every step"
    facts = [
        ("backbone", c.get("backbone", "?")),
        ("critic", c.get("critic", "?")),
        ("strategy", settings.get("strategy", "?")),
        ("steps", f"{done} of {settings.get('steps', '?')}"),
        ("samples per step", settings.get("samples", len(run.trace[0]["rewards"]))),
        ("outcome", state),
    ]
    items = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(str(v))}</dd></div>" for k, v in facts)
    return f'<h1>MILR run</h1><p class="prompt">{esc(c.get("prompt", "(prompt unknown)"))}</p><dl class="facts">{items}</dl>'


def _baseline_vs_final(run: Run) -> str:
    step, sample, reward = run.best()
    first = run.trace[0]
    final_path = run.root / "final.png" if run.final else run.root / run.trace[step]["images"][sample]
    cards = [
        (data_uri(run.root / first["images"][0]), f"baseline (step 0): reward {_fmt(run.rewards[0][0])}"),
        (data_uri(final_path), f"MILR (best, step {step} sample {sample}): reward {_fmt(reward)}"),
    ]
    figures = "".join(f"<figure>{_img(uri, cap, 'big')}<figcaption>{esc(cap)}</figcaption></figure>" for uri, cap in cards)
    return f'<h2>Baseline and final image</h2><div class="pair">{figures}</div>'


def _film_strip(run: Run) -> str:
    best_step, best_sample, _ = run.best()
    frames = []
    for t, rs in zip(run.trace, run.rewards):
        cells = []
        for i, (name, r) in enumerate(zip(t["images"], rs)):
            cls = "thumb best" if (t["step"], i) == (best_step, best_sample) else "thumb"
            detail = t["details"][i] if i < len(t["details"]) else ""
            label = f"step {t['step']} sample {i}: reward {_fmt(r)}"
            cells.append(
                f'<div class="cell" title="{esc(detail)}">{_img(data_uri(run.root / name, THUMB), label, cls)}'
                f"<span>{esc(_fmt(r))}</span></div>"
            )
        moved = "+".join(t["groups"]) or "start"
        frames.append(f'<div class="frame"><b>step {t["step"]}</b><small>{esc(moved)}</small>{"".join(cells)}</div>')
    return f'<h2>Every step</h2><p class="note">Outlined: the best image. Hover a frame for the critic\'s detail.</p><div class="strip">{"".join(frames)}</div>'


def _reasoning(run: Run) -> str:
    """Each step's reasoning text, words changed since the previous step highlighted.

    Samples whose text and previous text are the same are shown once.
    """
    rows = []
    previous: list[str] = []
    for t, rs in zip(run.trace, run.rewards):
        shown: dict[tuple[str, str], list[int]] = {}
        for i, text in enumerate(t["reasoning"]):
            before = previous[i] if i < len(previous) else (previous[0] if previous else "")
            shown.setdefault((before, text), []).append(i)
        blocks = []
        for (before, text), samples in shown.items():
            if t["step"] == 0:
                body = esc(text)
            elif before == text:
                body = f'<span class="same">unchanged</span> {esc(text)}'
            else:
                body = word_diff(before, text)
            who = "" if len(t["reasoning"]) == 1 else f"<small>sample {', '.join(map(str, samples))}</small> "
            details = "; ".join(t["details"][i] for i in samples if i < len(t["details"]))
            blocks.append(f'<div class="text">{who}{body}<div class="detail">critic: {esc(details)}</div></div>')
        rewards = ", ".join(_fmt(r) for r in rs)
        moved = "+".join(t["groups"]) or "start"
        rows.append(f'<tr><th>{t["step"]}<small>{esc(moved)}</small></th><td class="num">{rewards}</td><td>{"".join(blocks)}</td></tr>')
        previous = t["reasoning"]
    return (
        "<h2>Reasoning text</h2>"
        '<p class="note"><ins>added</ins> and <del>removed</del> words are relative to the previous step.</p>'
        f'<table class="reasoning"><tr><th>step</th><th>reward</th><th>text</th></tr>{"".join(rows)}</table>'
    )


def _settings(run: Run) -> str:
    settings = run.config.get("run", {})
    items = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(json.dumps(v))}</dd></div>" for k, v in settings.items())
    versions = ", ".join(f"{k} {v}" for k, v in run.config.get("versions", {}).items())
    return f'<h2>Configuration</h2><dl class="facts settings">{items}</dl><p class="note">{esc(versions)}</p>'


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1f2328; max-width: 1100px; margin: 24px auto; padding: 0 16px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.prompt { font-size: 20px; margin: 4px 0 12px; } .prompt::before, .prompt::after { content: '"'; color: #8c959f; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 0; }
.facts dt { font-size: 12px; color: #656d76; } .facts dd { margin: 0; font-weight: 600; }
.note { color: #656d76; font-size: 13px; }
img { image-rendering: pixelated; background: #f6f8fa; }
.pair { display: flex; gap: 24px; flex-wrap: wrap; } .pair figure { margin: 0; }
.big { width: 384px; height: 384px; object-fit: contain; border: 1px solid #d0d7de; }
.strip { display: flex; gap: 10px; overflow-x: auto; padding: 4px 0 12px; }
.frame { display: flex; flex-direction: column; align-items: center; gap: 4px; flex: none; }
.frame small, th small { color: #656d76; font-size: 11px; display: block; font-weight: normal; }
.cell { display: flex; flex-direction: column; align-items: center; font-size: 12px; }
.thumb { width: 112px; height: 112px; object-fit: contain; border: 3px solid transparent; }
.thumb.best { border-color: #1f6feb; }
.missing { display: flex; align-items: center; justify-content: center; color: #8c959f; background: #f6f8fa;
  border: 1px dashed #d0d7de; font-size: 12px; }
.missing.big { width: 384px; height: 384px; } .missing.thumb { width: 112px; height: 112px; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; vertical-align: top; padding: 6px 8px; }
tr + tr { border-top: 1px solid #eaeef2; }
.reasoning td:last-child { overflow-wrap: anywhere; } .reasoning tr > :not(:last-child) { width: 1%; }
.num { white-space: nowrap; font-variant-numeric: tabular-nums; }
.text + .text { margin-top: 8px; } .detail { color: #656d76; font-size: 12px; margin-top: 2px; }
.same { color: #8c959f; font-style: italic; }
ins { background: #dafbe1; text-decoration: none; } del { background: #ffebe9; color: #82071e; }
.settings dd { font-weight: normal; font-family: ui-monospace, monospace; font-size: 13px; }
.bench td.num, .bench th.num { text-align: right; } .bench .best { font-weight: 700; }
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def run_page(run: Run, curve: bytes | None) -> str:
    if curve is None:
        plot = '<p class="note">The reward curve needs matplotlib: pip install "milr-core[report]".</p>'
    else:
        uri = "data:image/png;base64," + base64.b64encode(curve).decode()
        plot = f'<img class="curve" src="{uri}" alt="reward per step">'
    body = "".join(
        [_header(run), _baseline_vs_final(run), f"<h2>Reward per step</h2>{plot}", _film_strip(run), _reasoning(run), _settings(run)]
    )
    return _page(f"MILR: {run.config.get('prompt', run.root.name)}", body)


def write_run_report(root: Path, target: Path) -> None:
    run = load_run(root)
    curve = reward_curve(run)
    if curve is not None:
        atomic_write(root / CURVE, curve)
    atomic_write(target, run_page(run, curve).encode())


# -- bench folders ------------------------------------------------------------
def _flatten(data: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON object as {"a.b": value}: no assumption about the summary's shape."""
    if isinstance(data, dict):
        out: dict[str, float] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return {prefix[:-1]: float(data)}
    return {}


def bench_page(roots: list[Path]) -> str:
    columns = [(root.name, _flatten(_read_json(root / "summary.json"))) for root in roots]
    keys = list(dict.fromkeys(k for _, values in columns for k in values))
    head = "".join(f'<th class="num">{esc(name)}</th>' for name, _ in columns)
    rows = []
    for key in keys:
        cells = [values.get(key) for _, values in columns]
        top = max((v for v in cells if v is not None), default=None)
        tds = "".join(
            f'<td class="num{" best" if v == top and len(columns) > 1 else ""}">{"" if v is None else f"{v:.4g}"}</td>'
            for v in cells
        )
        rows.append(f"<tr><th>{esc(key)}</th>{tds}</tr>")
    body = (
        "<h1>MILR benchmark</h1>"
        f'<p class="note">{len(roots)} folder(s): {esc(", ".join(str(r) for r in roots))}. Bold: the highest value of a row.</p>'
        f'<table class="bench"><tr><th></th>{head}</tr>{"".join(rows)}</table>'
    )
    return _page("MILR benchmark", body)


def write_report(roots: list[Path], out: Path | None = None) -> Path:
    """Write the report for one run folder or for bench folders; return the page's path."""
    kinds = []
    for root in roots:
        if not root.is_dir():
            raise MilrError(f"{root} is not a folder")
        if (root / "trace.jsonl").is_file():
            kinds.append("run")
        elif (root / "summary.json").is_file():
            kinds.append("bench")
        else:
            raise MilrError(f"{root} is neither a generate run folder (no trace.jsonl) nor a bench folder (no summary.json)")
    target = out or roots[0] / PAGE
    if kinds == ["run"]:
        write_run_report(roots[0], target)
    elif set(kinds) == {"bench"}:
        atomic_write(target, bench_page(roots).encode())
    else:
        raise MilrError("give one generate run folder, or one or more bench folders")
    return target
