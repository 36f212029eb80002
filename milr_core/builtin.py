"""What milr-core itself registers: the five search strategies and the file-based benchmarks."""

from .hookspecs import hookimpl
from .strategies import STRATEGIES


@hookimpl
def register_strategies(register):
    for cls in STRATEGIES:
        register(cls.name, cls, (cls.__doc__ or "").strip().splitlines()[0])


@hookimpl
def register_benchmarks(register):
    from .bench.prompts import builtin_benchmarks

    for name, benchmark, description in builtin_benchmarks():
        register(name, lambda b=benchmark, **kw: b, description)
