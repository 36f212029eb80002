"""Where the command line writes: results to stdout, progress and errors to stderr."""

from __future__ import annotations

import typer
from rich.console import Console

# soft_wrap: a path or a prompt is never broken at 80 columns when the output is piped
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """The one-line error every command ends with on a user mistake; exit code 2 unless told."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)
