"""Plugin hooks and the registry of backbones, critics and strategies.

A plugin is a distribution with an entry point in the `milr` group pointing at
a module that implements some of the hooks below, e.g.::

    from milr_core.plugins import hookimpl

    @hookimpl
    def register_critics(register):
        register("my-critic", make_my_critic, "what it rewards")

`register(name, factory, description="")` records a factory; nothing heavy is
imported or loaded until `Registry.create` calls it.

A plugin that fails while it is imported or registers (any exception, SystemExit
included: only KeyboardInterrupt goes through) is recorded in
`Registry.failures` with its distribution, and the others load as usual. A name
registered a second time keeps its first registration (milr-core's, then the
plugins' in the order of their distribution names); the second is recorded as a
failure naming both distributions.
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from .errors import MilrError, UnknownName

GROUP = "milr"
KINDS = ("backbone", "critic", "strategy", "benchmark")

hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)


class Hookspecs:
    @hookspec
    def register_backbones(self, register: Callable[..., None]) -> None:
        """Register Backbone factories: register(name, factory, description)."""

    @hookspec
    def register_critics(self, register: Callable[..., None]) -> None:
        """Register Critic factories: register(name, factory, description)."""

    @hookspec
    def register_strategies(self, register: Callable[..., None]) -> None:
        """Register Strategy factories: register(name, factory, description)."""

    @hookspec
    def register_benchmarks(self, register: Callable[..., None]) -> None:
        """Register prompt sets for `milr bench`: register(name, factory, description); the
        factory returns a milr_core.bench.prompts.Benchmark."""

    @hookspec(firstresult=True)
    def backbone_from_path(self, path: str, device: str | None, dtype: str | None) -> Any:
        """Load a Backbone from a local checkpoint folder this plugin understands, else return None."""


@dataclass
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    source: str  # distribution that registered it


@dataclass
class Registry:
    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    #: (distribution, error) for each plugin that failed to load
    failures: list[tuple[str, str]] = field(default_factory=list)
    pm: pluggy.PluginManager | None = None

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        try:
            return self.entries[kind][name]
        except KeyError:
            raise UnknownName(kind, name, self.names(kind)) from None

    def create(self, kind: str, name: str, **kwargs: Any) -> Any:
        return self.get(kind, name).factory(**kwargs)

    def backbone(self, name: str, device: str | None = None, dtype: str | None = None) -> Any:
        """A registered backbone by name, or one loaded from a checkpoint folder by the plugin that knows its format."""
        if name not in self.entries["backbone"] and Path(name).expanduser().is_dir():
            loaded = self.pm.hook.backbone_from_path(path=str(Path(name).expanduser()), device=device, dtype=dtype)
            if loaded is None:
                raise MilrError(f"no installed plugin can load the checkpoint folder {name}")
            return loaded
        if name not in self.entries["backbone"] and ("/" in name or name.startswith((".", "~"))):
            # a path, not a name: say so rather than "unknown backbone"
            raise MilrError(f"backbone folder {name} does not exist (backbone names: {', '.join(self.names('backbone'))})")
        return self.create("backbone", name, device=device, dtype=dtype)


def _dist(ep: importlib.metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist else ep.value


def _describe(exc: BaseException) -> str:
    """`Type: first line of the message`: what `milr plugins` shows of a plugin's failure."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def build_registry(extra_plugins: tuple[object, ...] = ()) -> Registry:
    """Load every `milr` entry point; a plugin that fails is recorded, not fatal."""
    from . import builtin

    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(Hookspecs)
    pm.register(builtin, name="milr-core")
    registry = Registry(pm=pm)
    sources: dict[int, str] = {id(builtin): "milr-core"}
    # in order of distribution name: which registration of a name comes first must not depend on sys.path
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda ep: (_dist(ep), ep.name)):
        dist = _dist(ep)
        try:
            module = ep.load()
            if pm.is_registered(module):  # one module behind two entry points
                continue
            # named by distribution too: two distributions may pick the same entry-point name
            pm.register(module, name=f"{dist}:{ep.name}")  # pluggy checks the hooks' signatures here
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a plugin's bug (even sys.exit) must not take down the others
            registry.failures.append((dist, _describe(exc)))
            continue
        sources[id(module)] = dist
    for plugin in extra_plugins:
        pm.register(plugin)
        sources[id(plugin)] = getattr(plugin, "__name__", repr(plugin))

    for kind, hook in (
        ("backbone", pm.hook.register_backbones),
        ("critic", pm.hook.register_critics),
        ("strategy", pm.hook.register_strategies),
        ("benchmark", pm.hook.register_benchmarks),
    ):
        for impl in hook.get_hookimpls():
            source = sources[id(impl.plugin)]

            def register(name: str, factory: Callable[..., Any], description: str = "", _s=source, _k=kind):
                first = registry.entries[_k].get(name)
                if first is not None:
                    registry.failures.append(
                        (_s, f"{_k} {name!r} is already registered by {first.source}; the first registration is "
                             f"kept, this one from {_s} is ignored")
                    )
                    return
                registry.entries[_k][name] = Entry(_k, name, factory, description, _s)

            try:
                impl.function(register=register)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001
                registry.failures.append((source, _describe(exc)))
    return registry


@functools.lru_cache(maxsize=1)
def registry() -> Registry:
    return build_registry()
