"""What both report pages share: embedded images, plots, the style sheet, the frame."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import MilrError
from ..records import Environment

esc = html.escape
NO_MATPLOTLIB = '<p class="note">Plots need matplotlib: pip install "milr-core[report]".</p>'


def number(x: Any) -> float | None:
    """A reward as read back from JSON: null, NaN and infinities are no number."""
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise MilrError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise MilrError(f"{path}: not valid JSON: {exc}") from None


def data_uri(path: Path, thumb: int | None = None) -> str | None:
    """The image as a data URI: full size as PNG, or a JPEG thumbnail of at most `thumb` px
    (a photo's PNG thumbnail is several times larger). None when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.load()
            buf = io.BytesIO()
            if thumb is None:
                im.save(buf, format="PNG")
            else:
                im = im.convert("RGB")
                im.thumbnail((thumb, thumb))
                im.save(buf, format="JPEG", quality=88)
    except (OSError, ValueError):  # an interrupted run may have lost its last image
        return None
    kind = "png" if thumb is None else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode()


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def img(uri: str | None, alt: str, cls: str = "") -> str:
    if uri is None:
        return f'<div class="missing {cls}">image missing</div>'
    return f'<img class="{cls}" src="{uri}" alt="{esc(alt)}">'


def new_figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas (no pyplot state, no display); None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1f2328; max-width: 1100px; margin: 24px auto; padding: 0 16px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.prompt { font-size: 20px; margin: 4px 0 12px; } .prompt::before, .prompt::after { content: '"'; color: #8c959f; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 0; }
.facts dt { font-size: 12px; color: #656d76; } .facts dd { margin: 0; font-weight: 600; }
.settings dd { font-weight: normal; font-family: ui-monospace, monospace; font-size: 13px; }
.note { color: #656d76; font-size: 13px; }
img { image-rendering: pixelated; background: #f6f8fa; max-width: 100%; }
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
.tables { display: flex; flex-wrap: wrap; gap: 0 40px; } .tables > div { flex: 1 1 420px; }
.scores td.num, .scores th.num { text-align: right; }
.scores .best { font-weight: 700; } .scores tr.total { border-top: 2px solid #d0d7de; }
.prompts td { vertical-align: middle; } .prompts .cell { align-items: flex-start; }
.prompts small { display: block; color: #656d76; font-size: 11px; }
.ok { color: #1a7f37; font-weight: 700; } .wrong { color: #cf222e; font-weight: 700; }
"""


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def facts(items: list[tuple[str, Any]], cls: str = "facts") -> str:
    inner = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(str(v))}</dd></div>" for k, v in items)
    return f'<dl class="{cls}">{inner}</dl>'


def made_with(env: Environment | None) -> str:
    """One line on how a result was made: date, host, device, versions, git revision."""
    if env is None:
        return ""
    versions = ", ".join(f"{k} {v}" for k, v in (env.versions or {}).items())
    parts = [f"{env.date}" if env.date else "", f"on {env.host}" if env.host else "",
             f"{env.device or '?'} {env.dtype or ''}".strip(), versions, f"git {env.git}" if env.git else ""]
    return f'<p class="note">{esc(" · ".join(p for p in parts if p))}</p>'

