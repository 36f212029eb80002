"""The one place that turns names and options into backbones, critics and strategies.

Resolving (`Spec`) needs no weights: names and options are checked first, and a run records
each component as `records.Component` before anything loads. Critics are made with a
`LazyBackbone`, which loads the backbone only when the critic first uses it, so that a
critic's `check` runs before any backbone weights load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from . import plugins
from .plugins import Entry
from .records import Component, distribution_version, public_options


@dataclass
class Spec:
    """A backbone or critic named and configured, not loaded."""

    kind: str
    name: str
    entry: Entry | None  # None: a backbone checkpoint folder
    options: BaseModel | None

    @classmethod
    def resolve(cls, kind: str, name: str, options: dict[str, Any] | None = None) -> Spec:
        reg = plugins.registry()  # looked up on each call: tests swap the registry
        entry = reg.backbone_entry(name) if kind == "backbone" else reg.get(kind, name)
        if entry is None and options:
            from .errors import MilrError

            raise MilrError(f"a backbone checkpoint folder takes no options (given: {', '.join(sorted(options))})")
        return cls(kind, name, entry, entry.resolve(options) if entry is not None else None)

    def describe(self, made: Any = None) -> Component:
        """What a record says of it; a made component's own `options` (resolved with its
        environment fallbacks) win over the declared ones."""
        source = self.entry.source if self.entry is not None else None
        resolved = getattr(made, "options", None)
        options = resolved if isinstance(resolved, BaseModel) else self.options
        return Component(name=self.name, source=source, version=distribution_version(source),
                         options=public_options(options))


class LazyBackbone:
    """Stands for a backbone until something touches it; then it loads, once."""

    def __init__(self, spec: Spec, device: str | None, dtype: str | None):
        self._spec, self._device, self._dtype, self._loaded = spec, device, dtype, None

    def load(self) -> Any:
        if self._loaded is None:
            self._loaded = plugins.registry().backbone(self._spec.name, device=self._device, dtype=self._dtype,
                                               options=self._spec.options)
        return self._loaded

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)


def make_critic(spec: Spec, backbone: Any) -> Any:
    return spec.entry.make(spec.options, backbone=backbone)


def make_strategy(name: str) -> Any:
    return plugins.registry().create("strategy", name)


def hardware(backbone: Any) -> tuple[str | None, str | None]:
    """The device type and dtype a backbone runs on, as `--device` / `--dtype` name them."""
    device = getattr(backbone, "device", None)
    dtype = getattr(backbone, "dtype", None)
    return (None if device is None else str(getattr(device, "type", device)),
            None if dtype is None else str(dtype).removeprefix("torch."))
