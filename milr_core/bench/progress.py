"""Rank 0's progress view: prompts done / total across all ranks, with an ETA.

Done is counted from the result.json files on disk, the same source of truth
as resume, so it includes every rank's work with no communication. The ETA
uses this session's pace only (prompts finished by an earlier, resumed run
would make it look fast).
"""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .layout import BenchDir

POLL_SECONDS = 2.0  # a stat per prompt per poll: cheap on local disks, gentle on shared ones


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class DiskProgress:
    """A bar on a terminal; elsewhere (a log file, a pipe) one plain line each time the count moves."""

    def __init__(self, folder: BenchDir, indices: list[int], label: str, console: Console, enabled: bool = True):
        self.folder, self.indices, self.enabled, self.label = folder, indices, enabled, label
        self.console = console
        self.plain = console is None or not console.is_terminal
        self.shown = -1
        self.progress = Progress(
            TextColumn(f"[bold]{label}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("prompts  ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console,
            disable=self.plain,
        )
        self.task = self.progress.add_task("bench", total=len(indices), eta="-")
        self.start_done = folder.count_finished(indices)
        self.start_time = time.monotonic()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def update(self) -> None:
        done = self.folder.count_finished(self.indices)
        gained, elapsed = done - self.start_done, time.monotonic() - self.start_time
        left = len(self.indices) - done
        eta = _eta(elapsed / gained * left) if gained > 0 else "-"
        eta = eta if left else "0:00:00"
        self.progress.update(self.task, completed=done, eta=eta)
        if self.plain and done != self.shown:
            self.shown = done
            print(f"{self.label}: {done}/{len(self.indices)} prompts, ETA {eta}", file=sys.stderr, flush=True)

    def _poll(self) -> None:
        while not self.stop_event.wait(POLL_SECONDS):
            self.update()

    def __enter__(self) -> DiskProgress:
        if self.enabled:
            self.progress.start()
            self.update()
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stop_event.set()
            self.thread.join()
            self.update()
            self.progress.stop()
