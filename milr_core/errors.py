"""Errors meant for the user: the CLI prints them as one line and exits non-zero."""


class MilrError(Exception):
    """A mistake in the user's input or environment, explained in one line."""

    exit_code = 2


class UnknownName(MilrError):
    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        listed = ", ".join(sorted(known)) or "none installed"
        plural = "strategies" if kind == "strategy" else f"{kind}s"
        super().__init__(f"unknown {kind} {name!r}; known {plural}: {listed}")


class MissingWeights(MilrError):
    """Weights are neither on disk nor reachable."""
