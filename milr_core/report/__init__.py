"""`milr report`: one HTML page that shows what a run or a benchmark did.

The page is self-contained: every image is embedded as base64 (full size for a
run's baseline and final image, JPEG thumbnails elsewhere), so the one file can
be mailed or attached to an issue. Its plots are also written as PNG files beside
it, named after it: `report-reward_curve.png`, `report-accuracy_by_tag.png` ...

- one `generate` run folder (it has trace.jsonl) -> `<run>/report.html`
- one `bench` folder (it has summary.json) -> `<bench>/report.html`
- several bench folders side by side (e.g. baseline, Best-of-N and MILR) -> the
  page named by `--out` (default `comparison.html` here): no folder's own page changes
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MilrError

PAGE = "report.html"
COMPARISON = Path("comparison.html")


def write_report(roots: list[Path], out: Path | None = None) -> Path:
    """Write the page for one run folder or for bench folders; return its path."""
    kinds = []
    for root in roots:
        if not root.is_dir():
            raise MilrError(f"{root} is not a folder")
        if (root / "summary.json").is_file():
            kinds.append("bench")
        elif (root / "trace.jsonl").is_file():
            kinds.append("run")
        else:
            raise MilrError(f"{root} is neither a generate run folder (no trace.jsonl) nor a bench folder (no summary.json)")
    target = out or (roots[0] / PAGE if len(roots) == 1 else COMPARISON)
    if kinds == ["run"]:
        from .run import write_run_report

        write_run_report(roots[0], target)
    elif set(kinds) == {"bench"}:
        from .bench import write_bench_report

        write_bench_report(roots, target)
    else:
        raise MilrError("give one generate run folder, or one or more bench folders")
    return target
