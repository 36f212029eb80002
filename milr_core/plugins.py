"""Plugin hooks and the registry of backbones, critics and strategies.

A plugin is a distribution with an entry point in the `milr` group pointing at
a module that implements some of the hooks below, e.g.::

    from milr_core.plugins import hookimpl

    @hookimpl
    def register_critics(register):
        register("my-critic", make_my_critic, "what it rewards")

`register(name, factory, description="", options=None)` records a factory; nothing heavy is
imported or loaded until `Registry.create` calls it. `options`, a pydantic model, declares the
keyword arguments a user may set (`--critic-option key=value`, a `[critic]` table in a config
file); the validated values reach the factory as keyword arguments and are recorded in every run.

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
from pydantic import BaseModel, ValidationError

from .errors import MilrError, UnknownName
from .hookspecs import GROUP, Hookspecs, hookimpl  # noqa: F401 - plugins import hookimpl from here

KINDS = ("backbone", "critic", "strategy", "benchmark")

@dataclass
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    source: str  # distribution that registered it
    #: the options the factory takes as keyword arguments (pydantic model), None: it takes none
    options: type[BaseModel] | None = None

    def resolve(self, given: dict[str, Any] | None) -> BaseModel | None:
        """`given` (from --critic-option k=v, a [critic] table, the API) validated against the
        declared options: an unknown key or a bad value is a one-line error naming it."""
        given = given or {}
        if self.options is None:
            if given:
                raise MilrError(f"{self.kind} {self.name} takes no options (given: {', '.join(sorted(given))})")
            return None
        unknown = sorted(set(given) - set(self.options.model_fields))
        if unknown:
            known = ", ".join(self.options.model_fields) or "none"
            raise MilrError(f"{self.kind} {self.name} has no option {unknown[0]!r}; its options: {known}")
        try:
            return self.options(**given)
        except ValidationError as exc:
            from .config import describe

            raise MilrError(describe(exc, f"{self.kind} {self.name} options")) from None

    def make(self, options: BaseModel | None, **kwargs: Any) -> Any:
        """The component, with its resolved options as keyword arguments."""
        return self.factory(**kwargs, **(options.model_dump() if options is not None else {}))


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

    def backbone_entry(self, name: str) -> Entry | None:
        """The registered backbone of that name, or None for a checkpoint folder; else a one-line error."""
        if name in self.entries["backbone"]:
            return self.entries["backbone"][name]
        if Path(name).expanduser().is_dir():
            return None
        if "/" in name or name.startswith((".", "~")):
            # a path, not a name: say so rather than "unknown backbone"
            raise MilrError(f"backbone folder {name} does not exist (backbone names: {', '.join(self.names('backbone'))})")
        raise UnknownName("backbone", name, self.names("backbone"))

    def backbone(self, name: str, device: str | None = None, dtype: str | None = None,
                 options: BaseModel | None = None) -> Any:
        """A registered backbone by name, or one loaded from a checkpoint folder by the plugin that knows its format."""
        entry = self.backbone_entry(name)
        if entry is not None:
            return entry.make(options, device=device, dtype=dtype)
        loaded = self.pm.hook.backbone_from_path(path=str(Path(name).expanduser()), device=device, dtype=dtype)
        if loaded is None:
            raise MilrError(f"no installed plugin can load the checkpoint folder {name}")
        return loaded


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

            def register(name: str, factory: Callable[..., Any], description: str = "",
                         options: type[BaseModel] | None = None, _s=source, _k=kind):
                first = registry.entries[_k].get(name)
                if first is not None:
                    registry.failures.append(
                        (_s, f"{_k} {name!r} is already registered by {first.source}; the first registration is "
                             f"kept, this one from {_s} is ignored")
                    )
                    return
                registry.entries[_k][name] = Entry(_k, name, factory, description, _s, options)

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
