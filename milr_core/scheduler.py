"""Many MILR searches at once: the second driver of engine.Milr.search.

Each round answers all running searches' calls of one kind together (all
reasoning texts, then all images, then all pixels, then all scores), so the
backbone decodes many prompts' rows per token instead of one search's. A
search that finishes hands its slot to the next waiting one at the start of the
next round (continuous batching). Every search draws from its own generator
(calls.py), so what it produces does not depend on which searches ran beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Iterable
from typing import Any

from .calls import DecodeCall, DrawCall, ReasonCall, ScoreCall, serve
from .interfaces import Backbone, Critic

#: The order in which a round answers calls: the order of one MILR step.
ROUND = (ReasonCall, DrawCall, DecodeCall, ScoreCall)


def run_searches(
    backbone: Backbone,
    critic: Critic,
    searches: Iterable[tuple[Hashable, Callable[[], Generator]]],
    slots: int,
    on_result: Callable[[Hashable, Any], None],
    pool: bool = True,
) -> None:
    """Run `(key, start)` searches, at most `slots` at a time; `start()` makes the search
    generator (engine.Milr.search) when a slot frees, and `on_result(key, result)` gets
    each search's Result as soon as it is done. `pool`: see calls.serve and hardware.pool_searches."""
    waiting = iter(searches)
    running: dict[Hashable, tuple[Generator, Any]] = {}

    def advance(key: Hashable, search: Generator, answer: Any) -> None:
        try:
            running[key] = (search, search.send(answer))
        except StopIteration as stop:
            running.pop(key, None)
            on_result(key, stop.value)

    def fill() -> None:
        while len(running) < slots:
            nxt = next(waiting, None)
            if nxt is None:
                return
            key, start = nxt
            if key in running:
                raise ValueError(f"two searches share the key {key!r}")
            advance(key, start(), None)

    fill()
    while running:
        for kind in ROUND:
            keys = [k for k, (_, call) in running.items() if type(call) is kind]
            if keys:
                answers = serve(backbone, critic, [running[k][1] for k in keys], pool)
                for key, answer in zip(keys, answers):
                    advance(key, running[key][0], answer)
        fill()


def slots_for(backbone: Backbone, rows_per_search: int) -> int:
    """How many searches run at once: as many as their images of one step fit in one draw."""
    return max(1, backbone.max_rows() // max(1, rows_per_search))
