"""The page for `milr bench` folders, side by side (e.g. baseline, Best-of-N and MILR).

Reads the folder layout of milr_core/bench/layout.py: `summary.json` (per tag,
`overall` = mean of the tag means, `all` = every image), `config.json`
(`settings.mode`, `settings.n`) and per prompt `<index:05d>/result.json` with
its `samples` (file, reward, correct) and, for MILR, `trace.jsonl` (rewards per step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import atomic_write
from ..records import Environment, PromptResult, Summary, read
from .page import NO_MATPLOTLIB, data_uri, esc, facts, figure_png, img, made_with, new_figure, number, page, png_uri, read_json

CHART = "accuracy_by_tag.png"
COST_CHART = "accuracy_vs_images.png"
COLOURS = {"baseline": "#6e7781", "best-of-n": "#bf8700", "milr": "#1f6feb", "resample": "#8250df"}
THUMB = 128
TOTALS = (("overall", "overall (tag mean)"), ("all", "all images"))
METRICS = (  # (summary key, title, digits, bold the highest: costs are not ranked)
    ("accuracy", "Accuracy: share of correct images", 3, True),
    ("reward", "Mean reward of the final images", 3, True),
    ("images", "Images generated per final image (cost)", 2, False),
    ("steps", "Optimisation steps per final image", 2, False),
)


@dataclass
class Bench:
    root: Path
    label: str
    summary: dict[str, Any]
    results: dict[int, dict[str, Any]]  # prompt index -> result.json
    config: dict[str, Any]  # config.json: settings and how the run was made
    evals: dict[str, dict[str, Any]]  # critic -> eval-<critic>.json (`milr eval`)

    @property
    def mode(self) -> str:
        return self.summary.get("mode") or self.config.get("settings", {}).get("mode") or self.root.name

    def value(self, row: str, metric: str) -> float | None:
        group = self.summary.get(row) if row in dict(TOTALS) else self.summary.get("tags", {}).get(row)
        return (group or {}).get(metric)


def load_bench(root: Path) -> Bench:
    summary = read(root / "summary.json", Summary).model_dump()
    config = read_json(root / "config.json") if (root / "config.json").is_file() else {}
    settings = config.get("settings", {})
    mode = summary.get("mode") or settings.get("mode") or root.name
    label = f"{mode} (N={settings['n']})" if settings.get("n") else mode
    results = {
        int(p.name): read(p / "result.json", PromptResult).model_dump()
        for p in sorted(root.iterdir())
        if p.name.isdigit() and (p / "result.json").is_file()
    }
    evals = {}
    for path in sorted(root.glob("eval-*.json")):
        data = read(path, Summary).model_dump()
        evals[str(data.get("critic") or path.stem.removeprefix("eval-"))] = data
    return Bench(root, label, summary, results, config, evals)


def _labelled(benches: list[Bench]) -> list[Bench]:
    """Two folders of the same mode are told apart by their folder names."""
    labels = [b.label for b in benches]
    for b in benches:
        if labels.count(b.label) > 1:
            b.label = f"{b.label} · {b.root.name}"
    return benches


def _rows(benches: list[Bench]) -> list[tuple[str, str]]:
    """(summary key, shown name): every tag in order of first appearance, then the totals."""
    tags = dict.fromkeys(t for b in benches for t in b.summary.get("tags", {}))
    return [(t, t) for t in tags] + list(TOTALS)


def _table(benches: list[Bench], metric: str, title: str, digits: int, rank: bool) -> str:
    head = "".join(f'<th class="num">{esc(b.label)}</th>' for b in benches)
    rows = []
    for key, name in _rows(benches):
        values = [b.value(key, metric) for b in benches]
        known = [v for v in values if v is not None]
        top = max(known) if rank and len(set(known)) > 1 else None  # no bold for a tie
        cells = "".join(
            f'<td class="num{" best" if v is not None and v == top else ""}">{"-" if v is None else f"{v:.{digits}f}"}</td>'
            for v in values
        )
        prompts = next((g["prompts"] for b in benches if (g := b.summary.get("tags", {}).get(key))), "")
        total = ' class="total"' if key == TOTALS[0][0] else ""
        rows.append(f'<tr{total}><th>{esc(name)}</th><td class="num">{prompts}</td>{cells}</tr>')
    return (
        f"<div><h3>{esc(title)}</h3>"
        f'<table class="scores"><tr><th>tag</th><th class="num">prompts</th>{head}</tr>{"".join(rows)}</table></div>'
    )


def accuracy_chart(benches: list[Bench]) -> bytes | None:
    """Grouped bars: accuracy per tag and overall, one colour per folder; None without matplotlib."""
    rows = _rows(benches)[:-1]  # "all images" is another weighting of the same numbers
    fig = new_figure(min(10.0, 2.0 + 0.4 * len(rows) * len(benches)), 3.2)
    if fig is None:
        return None
    ax = fig.add_subplot()
    width = 0.8 / len(benches)
    for j, b in enumerate(benches):
        xs = [i + (j - (len(benches) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [b.value(key, "accuracy") or 0.0 for key, _ in rows], width, label=b.label)
    ax.set_xticks(range(len(rows)), [name.replace(" (tag mean)", "") for _, name in rows], fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(benches), frameon=False)
    return figure_png(fig)


def accuracy_vs_images(benches: list[Bench]) -> bytes | None:
    """Accuracy (tag mean) against mean images per final image, one line per mode: MILR's claim
    is more accuracy per image than Best-of-N at several N; None without matplotlib."""
    fig = new_figure(6.0, 3.4)
    if fig is None:
        return None
    ax = fig.add_subplot()
    modes: dict[str, list[tuple[float, float, str]]] = {}
    for b in benches:
        images, accuracy = b.value("all", "images"), b.value("overall", "accuracy")
        if images is not None and accuracy is not None:
            modes.setdefault(b.mode, []).append((images, accuracy, b.label))
    for mode, points in modes.items():
        points.sort()
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, ys, marker="o", color=COLOURS.get(mode), label=mode)
        for x, y, label in points:
            ax.annotate(label.removeprefix(mode).strip(" ·") or mode, (x, y), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    ax.set(xlabel="images generated per final image", ylabel="accuracy (tag mean)", ylim=(0, 1.05))
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    if modes:
        ax.legend(fontsize=8)
    return figure_png(fig)


def _made(benches: list[Bench]) -> str:
    """Per folder: the settings that decide its numbers, then when, where and with what it ran."""
    rows = []
    for b in benches:
        s = b.config.get("settings", {})
        run = s.get("run", {})
        shown = [("backbone", s.get("backbone")), ("critic", s.get("critic")), ("K", run.get("steps")),
                 ("samples", run.get("samples")), ("N", s.get("n")), ("images per prompt", s.get("images_per_prompt")),
                 ("seed", run.get("seed")), ("strategy", run.get("strategy")), ("threshold", run.get("threshold"))]
        shown += [(f"critic option {k}", v) for k, v in (s.get("critic_options") or {}).items()]
        shown += [(f"backbone option {k}", v) for k, v in (s.get("backbone_options") or {}).items()]
        env = b.config.get("environment")
        rows.append(f"<h3>{esc(b.label)} <small>{esc(str(b.root))}</small></h3>"
                    f"{facts([(k, v) for k, v in shown if v is not None], 'facts settings')}"
                    f"{made_with(Environment.model_validate(env) if env else None)}")
    return "<h2>How each folder was made</h2>" + "".join(rows)


def _evals(benches: list[Bench]) -> str:
    """`milr eval` results: accuracy (tag mean) by the critic that judged each folder's final images."""
    critics = sorted({c for b in benches for c in b.evals})
    if not critics:
        return ""
    head = "".join(f'<th class="num">{esc(b.label)}</th>' for b in benches)
    rows = []
    for c in critics:
        cells = []
        for b in benches:
            value = (b.evals.get(c) or {}).get("overall", {}).get("accuracy")
            cells.append(f'<td class="num">{"-" if value is None else f"{value:.3f}"}</td>')
        rows.append(f"<tr><th>{esc(c)}</th>{''.join(cells)}</tr>")
    return ("<h2>Judged by other critics (milr eval)</h2>"
            f'<table class="scores"><tr><th>critic</th>{head}</tr>{"".join(rows)}</table>')


def trajectory(folder: Path) -> list[float | None]:
    """Best reward at each step of the first MILR run of a prompt (its trace.jsonl); [] without one."""
    path = folder / "trace.jsonl"
    if not path.is_file():
        return []
    best = []
    for line in path.read_text().splitlines():
        t = json.loads(line)
        if t.get("sample", 0) == 0:
            rewards = [r for r in map(number, t["rewards"]) if r is not None]
            best.append(max(rewards, default=None))
    return best


def _trajectory_note(folder: Path, sample: dict[str, Any]) -> str:
    steps = trajectory(folder)
    if len(steps) < 2 or steps[0] is None:
        return ""
    full = " → ".join("NaN" if r is None else f"{r:.2f}" for r in steps)
    best = sample.get("best_step", len(steps) - 1)
    return f'<small title="best reward per step: {full}">step 0: {steps[0]:.2f}, best at step {best} of {len(steps) - 1}</small>'


def _prompt_grid(benches: list[Bench]) -> str:
    """One row per prompt: each folder's first final image with its reward and verdict."""
    indices = sorted({i for b in benches for i in b.results})
    head = "".join(f"<th>{esc(b.label)}</th>" for b in benches)
    rows = []
    for i in indices:
        first = next(b.results[i] for b in benches if i in b.results)
        cells = []
        for b in benches:
            samples = b.results.get(i, {}).get("samples", [])
            if not samples:
                cells.append('<td class="note">not run</td>')
                continue
            s = samples[0]
            mark = {True: '<span class="ok">✓</span>', False: '<span class="wrong">✗</span>'}.get(s.get("correct"), "")
            reward = "-" if s.get("reward") is None else f"{s['reward']:.3f}"
            correct = sum(bool(x.get("correct")) for x in samples)
            more = f"<small>{correct}/{len(samples)} correct</small>" if len(samples) > 1 else ""
            more += _trajectory_note(b.root / f"{i:05d}", s)
            alt = f"{b.label}, prompt {i}: reward {reward}"
            cells.append(
                f'<td><div class="cell" title="{esc(s.get("detail", ""))}">'
                f"{img(data_uri(b.root / f'{i:05d}' / s['file'], THUMB), alt, 'thumb')}"
                f"<span>{mark} {reward}</span>{more}</div></td>"
            )
        rows.append(
            f'<tr><td class="num">{i}</td><td>{esc(first.get("prompt", ""))}<small>{esc(first.get("tag") or "")}</small></td>'
            f'{"".join(cells)}</tr>'
        )
    return (
        "<h2>Every prompt</h2>"
        '<p class="note">The first final image of each prompt; ✓ correct, ✗ not. Hover an image for the critic\'s detail.</p>'
        f'<table class="prompts"><tr><th>#</th><th>prompt</th>{head}</tr>{"".join(rows)}</table>'
    )


def bench_page(benches: list[Bench], chart: bytes | None, cost_chart: bytes | None = None) -> str:
    names = sorted({str(b.summary.get("benchmark", "?")) for b in benches})
    items = [(b.label, (f"{b.summary.get('finished', '?')}/{b.summary.get('prompts', '?')} prompts · "
                        f"critic {b.summary.get('critic', '?')} · {b.root}")) for b in benches]
    plot = NO_MATPLOTLIB if chart is None else f'<img src="{png_uri(chart)}" alt="accuracy by tag">'
    cost = "" if cost_chart is None else f'<img src="{png_uri(cost_chart)}" alt="accuracy versus images">'
    body = [
        f"<h1>MILR benchmark: {esc(', '.join(names))}</h1>",
        facts(items),
        f"<h2>Scores</h2>{plot}",
        f'<div class="tables">{"".join(_table(benches, *m) for m in METRICS)}</div>',
        '<p class="note">Bold: the best of a row, where they differ.</p>',
        f"<h2>Accuracy against cost</h2>{cost or NO_MATPLOTLIB}",
        _evals(benches),
        _made(benches),
        _prompt_grid(benches),
    ]
    return page(f"MILR benchmark: {', '.join(names)}", "".join(body))


def write_bench_report(roots: list[Path], target: Path) -> None:
    """The page, and its plots as PNG files beside it, named after it (`<page>-accuracy_by_tag.png`)."""
    benches = _labelled([load_bench(r) for r in roots])
    chart, cost_chart = accuracy_chart(benches), accuracy_vs_images(benches)
    for name, data in ((CHART, chart), (COST_CHART, cost_chart)):
        if data is not None:
            atomic_write(target.parent / f"{target.stem}-{name}", data)
    atomic_write(target, bench_page(benches, chart, cost_chart).encode())
