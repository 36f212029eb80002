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


def explain(exc: Exception) -> Exception:
    """An unknown name may be one a broken plugin would have registered: say which failed."""
    from .errors import MilrError, UnknownName
    from .plugins import registry

    if isinstance(exc, UnknownName) and registry().failures:
        broken = ", ".join(source for source, _ in registry().failures)
        return MilrError(f"{exc} (plugins that failed to load: {broken}; see `milr plugins`)")
    return exc
