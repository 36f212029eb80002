"""Which latent groups move at step k of K (MILR.md, "Strategies")."""

from __future__ import annotations

from .interfaces import IMAGE, TEXT, Strategy

BOTH = frozenset({TEXT, IMAGE})


class Joint(Strategy):
    """Text and image latents together at every step (the paper's default)."""

    name = "joint"

    def groups(self, step: int, steps: int) -> frozenset[str]:
        return BOTH


class Alternate(Strategy):
    """Odd steps move text latents, even steps image latents."""

    name = "alt"

    def groups(self, step: int, steps: int) -> frozenset[str]:
        return frozenset({TEXT if step % 2 == 1 else IMAGE})


class TextThenImage(Strategy):
    """Text latents for the first floor(K/2) steps, image latents for the rest."""

    name = "t2v"

    def groups(self, step: int, steps: int) -> frozenset[str]:
        return frozenset({TEXT if step <= steps // 2 else IMAGE})


class TextOnly(Strategy):
    """Ablation: only the reasoning-text latents move."""

    name = "text-only"

    def groups(self, step: int, steps: int) -> frozenset[str]:
        return frozenset({TEXT})


class ImageOnly(Strategy):
    """Ablation: only the image latents move."""

    name = "image-only"

    def groups(self, step: int, steps: int) -> frozenset[str]:
        return frozenset({IMAGE})


STRATEGIES = (Joint, Alternate, TextThenImage, TextOnly, ImageOnly)
