"""A critic small enough to read in one go: how much of the image has the prompt's colour."""

import re

from milr_core.interfaces import Critic, Score

PALETTE = {
    "red": (220, 40, 40), "orange": (245, 140, 30), "yellow": (240, 220, 40), "green": (50, 170, 60),
    "blue": (40, 80, 220), "purple": (130, 60, 170), "pink": (240, 140, 190), "brown": (120, 75, 40),
    "black": (15, 15, 15), "white": (240, 240, 240), "gray": (128, 128, 128),
}


def nearest(pixel):
    return min(PALETTE, key=lambda name: sum((a - b) ** 2 for a, b in zip(pixel, PALETTE[name])))


class ColourShare(Critic):
    """Reward = share of pixels whose nearest palette colour is the first colour named in the prompt,
    divided by the share wanted (`target`), at most 1."""

    name = "colour-share"

    def __init__(self, target=0.05):
        self.target = target

    def score(self, images, record):
        wanted = next((w for w in re.findall(r"[a-z]+", record.prompt.lower()) if w in PALETTE), None)
        if wanted is None:
            return [Score(0.0, "the prompt names no colour") for _ in images]
        return [self._share(image, wanted) for image in images]

    def _share(self, image, wanted):
        data = image.convert("RGB").resize((64, 64)).tobytes()
        pixels = zip(data[0::3], data[1::3], data[2::3])
        share = sum(nearest(p) == wanted for p in pixels) / (64 * 64)
        return Score(min(1.0, share / self.target), f"{share:.0%} of the pixels are {wanted}")
