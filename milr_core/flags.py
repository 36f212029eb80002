"""Command-line flags made once from RunConfig, for `milr generate` and `milr bench` alike.

`run_options(command)` gives a typer command one `--<field>` option per RunConfig field
(choices for Literal fields, the model's default and description in `--help`) and hands the
ones typed on the command line to the command as one dict, `run`. A field added to RunConfig is a flag of both
commands with no edit here. `--backbone-option` / `--critic-option KEY=VALUE` are parsed here too.
"""

from __future__ import annotations

import enum
import functools
import inspect
import typing
from typing import Any, Callable

import typer

from .config import RunConfig
from .errors import MilrError

SHORT = {"steps": "-k", "strategy": "-s"}  # the letters these flags had before they were generated


def choices(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """An Enum typer shows as {a|b|c} and checks; the command reads `.value`."""
    return enum.Enum(name, [(v, v) for v in values], type=str)


def _option(name: str, info) -> inspect.Parameter:
    annotation = info.annotation
    if typing.get_origin(annotation) is typing.Literal:
        annotation = choices(name, tuple(str(a) for a in typing.get_args(annotation)))
    default = annotation(info.default) if isinstance(annotation, type) and issubclass(annotation, enum.Enum) else info.default
    flags = [f"--{name.replace('_', '-')}", *([SHORT[name]] if name in SHORT else [])]
    option = typer.Option(default, *flags, help=info.description, show_default=True)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command(..., run: dict)` becomes a typer command with a flag per RunConfig field."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "run"]
    taken = {p.name for p in own}
    fields = [name for name in RunConfig.model_fields if name not in taken]
    wants_ctx = any(p.annotation is typer.Context for p in own)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # only the flags typed: a value from --config must not be overridden by a flag's shown default
        ctx = kwargs["ctx"] if wants_ctx else kwargs.pop("ctx")
        given = {name: kwargs.pop(name) for name in fields}
        run = {name: getattr(value, "value", value) for name, value in given.items()
               if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}
        return command(*args, **kwargs, run=run)

    context = [] if wants_ctx else [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                      annotation=typer.Context)]
    params = context + own + [_option(name, RunConfig.model_fields[name]) for name in fields]
    wrapper.__signature__ = inspect.Signature(params)
    del wrapper.__wrapped__  # typer must read the signature above, not the command's
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def key_values(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """['k=v', ...] as a dict; a pair without '=' is a one-line error naming the flag."""
    found: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise MilrError(f"{flag} takes KEY=VALUE, got {pair!r}")
        found[key.strip().replace("-", "_")] = value
    return found


BACKBONE_OPTION = typer.Option(None, "--backbone-option", metavar="KEY=VALUE",
                               help="A backbone option (repeatable; see `milr plugins --options NAME`).")
CRITIC_OPTION = typer.Option(None, "--critic-option", metavar="KEY=VALUE",
                             help="A critic option (repeatable; see `milr plugins --options NAME`).")
CONFIG_OPTION = typer.Option(None, "--config",
                             help="TOML, YAML or JSON file: run settings, and backbone / critic option tables.")
DTYPE_OPTION = typer.Option(None, "--dtype", help="float32, bfloat16, float16 (default: by device).")
