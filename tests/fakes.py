"""A deterministic stand-in backbone and a scripted critic, for engine tests
that must not depend on what a random transformer happens to generate."""

from __future__ import annotations

import torch
from PIL import Image

from milr_core.interfaces import TEXT, Backbone, Critic, Drawing, Reasoning, Score

D, TEXT_VOCAB, IMAGE_VOCAB, N_IMAGE = 8, 11, 7, 50


class FakeBackbone(Backbone):
    """Linear heads over random hidden states; records what it was asked to do."""

    name = "fake"

    def __init__(self, text_len: int = 10, rows: int = 8, oom_above: int | None = None):
        self.rows, self.oom_above = rows, oom_above
        torch.manual_seed(0)  # the heads are initialised from the global generator
        g = torch.Generator().manual_seed(0)
        self.text_head = torch.nn.Linear(D, TEXT_VOCAB).requires_grad_(False)
        self.image_head = torch.nn.Linear(D, IMAGE_VOCAB).requires_grad_(False)
        self.hidden_text = torch.randn(text_len, D, generator=g)
        self.hidden_image = torch.randn(N_IMAGE, 2, D, generator=g)  # conditional and unconditional CFG rows
        self.reason_calls: list[torch.Tensor | None] = []
        self.reason_temperatures: list[float] = []
        self.draw_calls: list[tuple[list[str], torch.Tensor | None]] = []

    hidden_size = D
    num_image_tokens = N_IMAGE
    device = torch.device("cpu")
    dtype = torch.float32

    def reason(self, prompt, prefixes, max_new_tokens, temperature=0.0, generator=None):
        self.reason_calls.append(prefixes)
        self.reason_temperatures.append(temperature)
        rows = 1 if prefixes is None else prefixes.shape[0]
        tokens = self.text_head(self.hidden_text).argmax(-1)
        out = []
        for i in range(rows):
            t = tokens.clone()
            if prefixes is not None:
                t[: prefixes.shape[1]] = prefixes[i]
            out.append(t)
        texts = [" ".join(map(str, t.tolist())) for t in out]
        return Reasoning(out, [self.hidden_text.clone() for _ in out], texts, [True] * rows)

    def draw(self, prompt, reasoning, prefixes, *, cfg_scale, temperature, keep_hidden, generator=None):
        if self.oom_above is not None and len(reasoning) > self.oom_above:
            raise torch.OutOfMemoryError("fake: too many rows")
        self.draw_calls.append((list(reasoning), prefixes))
        n = len(reasoning)
        probs = torch.softmax(self.image_logits(self.hidden_image, cfg_scale), -1)
        tokens = torch.multinomial(probs, n, replacement=True, generator=generator).T.contiguous()
        if prefixes is not None:
            tokens[:, : prefixes.shape[1]] = prefixes
        return Drawing(tokens, self.hidden_image[:keep_hidden].expand(n, -1, -1, -1).clone())

    def max_rows(self):
        return self.rows

    def text_logits(self, latents):
        return self.text_head(latents)

    def image_logits(self, latents, cfg_scale=None):
        cond, uncond = self.image_head(latents).unbind(-2)
        return cond if cfg_scale is None else uncond + cfg_scale * (cond - uncond)

    def decode(self, tokens):
        return [Image.new("RGB", (4, 4), (int(t[0]) * 30, 0, 0)) for t in tokens]


class ScriptedCritic(Critic):
    """Returns the given rewards in order, one per image scored."""

    name = "scripted"

    def __init__(self, rewards):
        self.rewards = list(rewards)
        self.calls = 0

    def score(self, images, record):
        out = []
        for _ in images:
            value = self.rewards[min(self.calls, len(self.rewards) - 1)]
            self.calls += 1
            out.append(Score(value, f"scripted {value}"))
        return out


class PixelBackbone(FakeBackbone):
    """A backbone with text latents only that draws pixels itself, like a diffusion-decoded model
    (BAGEL): no image head, no image tokens, no decode. Any engine use of those raises."""

    name = "fake-pixels"
    latent_groups = {TEXT: None}

    @property
    def num_image_tokens(self):
        raise AssertionError("the engine asked a text-only backbone for its image tokens")

    def image_logits(self, latents, cfg_scale=None):
        raise AssertionError("the engine asked a text-only backbone for image logits")

    def decode(self, tokens):
        raise AssertionError("the engine asked a text-only backbone to decode image tokens")

    def draw(self, prompt, reasoning, prefixes, *, cfg_scale, temperature, keep_hidden, generator=None):
        assert prefixes is None, "image prefixes for a backbone without image latents"
        self.draw_calls.append((list(reasoning), prefixes))
        shades = torch.randint(0, 256, (len(reasoning),), generator=generator)
        return Drawing(images=[Image.new("RGB", (4, 4), (int(s), len(r) % 256, 0)) for s, r in zip(shades, reasoning)])
