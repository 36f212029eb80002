"""The hook specifications a plugin implements (one `register_*` hook per kind of component).

Kept apart from the registry so that milr-core's own registrations (builtin.py) and the
registry that loads them import this module, not each other.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

GROUP = "milr"

hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)


class Hookspecs:
    @hookspec
    def register_backbones(self, register: Callable[..., None]) -> None:
        """Register Backbone factories: register(name, factory, description, options)."""

    @hookspec
    def register_critics(self, register: Callable[..., None]) -> None:
        """Register Critic factories: register(name, factory, description, options)."""

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
