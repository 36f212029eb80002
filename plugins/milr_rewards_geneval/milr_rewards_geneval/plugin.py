"""Registers this package's critics with milr; heavy modules load on first use."""

from milr_core.plugins import hookimpl


def _shapes_oracle(**kwargs):
    from .shapes_oracle import ShapesOracle

    return ShapesOracle(**kwargs)


@hookimpl
def register_critics(register):
    register("shapes-oracle", _shapes_oracle, "GenEval's rules on objects found exactly in shapes-world images")
