"""What milr-core itself registers: the five search strategies."""

from .plugins import hookimpl
from .strategies import STRATEGIES


@hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls.name, cls, (cls.__doc__ or "").strip().splitlines()[0])
