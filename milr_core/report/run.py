"""The page for one `generate` run folder (finished or interrupted)."""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import MilrError
from ..files import atomic_write
from ..records import Final, RunRecord, TraceLine, read, read_lines
from .page import NO_MATPLOTLIB, data_uri, esc, facts, figure_png, img, made_with, new_figure, number, page, png_uri

CURVE = "reward_curve.png"
THUMB = 160  # px: film-strip frames; baseline and final are embedded at full size


@dataclass
class Run:
    root: Path
    config: RunRecord
    trace: list[TraceLine]
    final: Final | None  # None when the run was killed before it finished

    @property
    def rewards(self) -> list[list[float | None]]:
        # trace.jsonl writes a NaN reward (skipped by the engine) as null
        return [[number(r) for r in t.rewards] for t in self.trace]

    def best(self) -> tuple[int, int, float | None]:
        """(step, sample, reward): final.json's choice, else the engine's rule (earliest highest)."""
        if self.final:
            return self.final.step, self.final.sample, number(self.final.reward)
        seen = [(t.step, i, r) for t, rs in zip(self.trace, self.rewards) for i, r in enumerate(rs) if r is not None]
        return max(seen, key=lambda s: s[2], default=(0, 0, None))  # max keeps the first of equals


def load_run(root: Path) -> Run:
    trace = read_lines(root / "trace.jsonl", TraceLine)
    if not trace:
        raise MilrError(f"{root} has no steps yet (trace.jsonl is empty)")
    final = read(root / "final.json", Final) if (root / "final.json").exists() else None
    return Run(root, read(root / "config.json", RunRecord), trace, final)


def fmt(r: float | None) -> str:
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
    fig = new_figure(7, 3)
    if fig is None:
        return None
    ax = fig.add_subplot()
    steps = [t.step for t in run.trace]
    points = [(k, r) for k, rs in zip(steps, run.rewards) for r in rs if r is not None]
    if points:
        ax.scatter(*zip(*points), s=14, color="#9aa7b8", label="each sample", zorder=2)
    best, best_so_far = -math.inf, []
    for rs in run.rewards:
        best = max([best, *(r for r in rs if r is not None)])
        best_so_far.append(best if best > -math.inf else math.nan)
    ax.plot(steps, best_so_far, color="#1f6feb", lw=2, drawstyle="steps-post", label="best so far", zorder=3)
    threshold = run.config.run.threshold
    if threshold is not None:
        ax.axhline(threshold, color="#d1242f", ls="--", lw=1, label=f"threshold {threshold:g}")
    values = [r for _, r in points] + ([threshold] if threshold is not None else [])
    ax.set_ylim(min([0.0, *values]) - 0.02, max([1.0, *values]) + 0.02)
    ax.set_xlim(-0.3, max(steps) + 0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="step", ylabel="reward")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    return figure_png(fig)


def _header(run: Run) -> str:
    c = run.config
    settings = c.run
    if run.final is None or run.final.interrupted:
        state = f"interrupted after step {run.trace[-1].step}"
    elif run.final.stopped_early:
        state = "stopped early: a reward passed the threshold"
    else:
        state = "ran every step"
    items = [
        ("backbone", c.backbone.name),
        ("critic", c.critic.name),
        ("strategy", settings.strategy),
        ("steps", f"{len(run.trace) - 1} of {settings.steps}"),
        ("samples per step", settings.samples),
        ("outcome", state),
    ]
    return f'<h1>MILR run</h1><p class="prompt">{esc(c.prompt)}</p>{facts(items)}'


def _which(run: Run) -> str:
    """Which image the run returns (RunConfig.return_image): the last or the best."""
    return run.config.run.return_image


def _baseline_vs_final(run: Run) -> str:
    step, sample, reward = run.best()
    final_path = run.root / "final.png" if run.final else run.root / run.trace[step].images[sample]
    cards = [
        (data_uri(run.root / run.trace[0].images[0]), f"baseline (step 0): reward {fmt(run.rewards[0][0])}"),
        (data_uri(final_path), f"MILR ({_which(run)}, step {step} sample {sample}): reward {fmt(reward)}"),
    ]
    figures = "".join(f"<figure>{img(uri, cap, 'big')}<figcaption>{esc(cap)}</figcaption></figure>" for uri, cap in cards)
    return f'<h2>Baseline and final image</h2><div class="pair">{figures}</div>'


def _film_strip(run: Run) -> str:
    best_step, best_sample, _ = run.best()
    frames = []
    for t, rs in zip(run.trace, run.rewards):
        cells = []
        for i, (name, r) in enumerate(zip(t.images, rs)):
            cls = "thumb best" if (t.step, i) == (best_step, best_sample) else "thumb"
            detail = t.details[i] if i < len(t.details) else ""
            label = f"step {t.step} sample {i}: reward {fmt(r)}"
            cells.append(
                f'<div class="cell" title="{esc(detail)}">{img(data_uri(run.root / name, THUMB), label, cls)}'
                f"<span>{esc(fmt(r))}</span></div>"
            )
        moved = "+".join(t.groups) or "start"
        frames.append(f'<div class="frame"><b>step {t.step}</b><small>{esc(moved)}</small>{"".join(cells)}</div>')
    return (
        '<h2>Every step</h2><p class="note">Outlined: the image the run returns. Hover a frame for the critic\'s detail.</p>'
        f'<div class="strip">{"".join(frames)}</div>'
    )


def _reasoning(run: Run) -> str:
    """Each step's reasoning text, words changed since the previous step highlighted.

    Samples whose text and previous text are the same are shown once.
    """
    rows = []
    previous: list[str] = []
    for t, rs in zip(run.trace, run.rewards):
        shown: dict[tuple[str, str], list[int]] = {}
        for i, text in enumerate(t.reasoning):
            before = previous[i] if i < len(previous) else (previous[0] if previous else "")
            shown.setdefault((before, text), []).append(i)
        blocks = []
        for (before, text), samples in shown.items():
            if t.step == 0:
                body = esc(text)
            elif before == text:
                body = f'<span class="same">unchanged</span> {esc(text)}'
            else:
                body = word_diff(before, text)
            who = "" if len(t.reasoning) == 1 else f"<small>sample {', '.join(map(str, samples))}</small> "
            details = "; ".join(t.details[i] for i in samples if i < len(t.details))
            blocks.append(f'<div class="text">{who}{body}<div class="detail">critic: {esc(details)}</div></div>')
        moved = "+".join(t.groups) or "start"
        rows.append(
            f'<tr><th>{t.step}<small>{esc(moved)}</small></th><td class="num">{", ".join(fmt(r) for r in rs)}</td>'
            f'<td>{"".join(blocks)}</td></tr>'
        )
        previous = t.reasoning
    return (
        "<h2>Reasoning text</h2>"
        '<p class="note"><ins>added</ins> and <del>removed</del> words are relative to the previous step.</p>'
        f'<table class="reasoning"><tr><th>step</th><th>reward</th><th>text</th></tr>{"".join(rows)}</table>'
    )


def _settings(run: Run) -> str:
    c = run.config
    items = [(k, json.dumps(v)) for k, v in c.run.model_dump().items()]
    items += [(f"{kind} option {k}", json.dumps(v)) for kind, part in (("backbone", c.backbone), ("critic", c.critic))
              for k, v in part.options.items()]
    return f'<h2>Configuration</h2>{facts(items, "facts settings")}{made_with(c.environment)}'


def run_page(run: Run, curve: bytes | None) -> str:
    plot = NO_MATPLOTLIB if curve is None else f'<img src="{png_uri(curve)}" alt="reward per step">'
    sections = [_header(run), _baseline_vs_final(run), f"<h2>Reward per step</h2>{plot}",
                _film_strip(run), _reasoning(run), _settings(run)]
    return page(f"MILR: {run.config.prompt}", "".join(sections))


def write_run_report(root: Path, target: Path) -> None:
    run = load_run(root)
    curve = reward_curve(run)
    if curve is not None:
        atomic_write(target.parent / f"{target.stem}-{CURVE}", curve)
    atomic_write(target, run_page(run, curve).encode())
