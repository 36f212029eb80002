"""BAGEL as a milr Backbone: think (plan text), then denoise an image conditioned on the plan.

The context is one causal token sequence of chat blocks, `<|im_start|> text <|im_end|>`:
the planning system prompt, the user prompt, then the plan. The plan is written
greedily after `<|im_start|>` until `<|im_end|>`. The image is a block of
`<|vision_start|>`, h*w noisy VAE-latent patches and `<|vision_end|>`, all at one
rotary position, attending to the whole context and to each other; 50 rectified-flow
Euler steps (timesteps bent by the shift) move it from noise to latents, with
text classifier-free guidance inside the guidance interval against a context of
the system prompt alone, the velocity rescaled to the conditional one's norm.

Only the plan's latents can move under MILR: BAGEL has no categorical image head,
so `latent_groups` declares text alone and `draw` returns pixels.

Two paths, the same maths. The fast one (default) keeps the KV of recent contexts
and extends the longest cached prefix, so the system prompt and the prompt run once
per run, the plan written by `reason` is not run again when the image is drawn,
and a forced plan prefix is fed in one call; guided and unguided rows of a flow
step run in one batch. `fast=False` is the reference-style loop: every call starts
from an empty cache, forced tokens go in one at a time, and the two guidance
branches run one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from milr_core.errors import MissingWeights
from milr_core.hardware import pick_device, pick_dtype, rows_that_fit
from milr_core.interfaces import TEXT, Backbone, Drawing, Reasoning

from .model import KV, Bagel

#: The system prompt BAGEL was trained with for planning before an image (the model's input, verbatim).
THINK_PROMPT = (
    "You should first think about the planning process in the mind and then generate the image. \n"
    "The planning process is enclosed within <think> </think> tags, i.e. <think> planning process here </think> image here"
)


@dataclass
class Context:
    """A token sequence already run: its ids, its KV (one row) and its final hidden states (len, d)."""

    ids: list[int]
    kv: KV
    hidden: torch.Tensor


def causal_mask(new: int, past: int, device) -> torch.Tensor | None:
    """New tokens see the whole past and the new tokens up to themselves (None: one token sees all)."""
    if new == 1:
        return None
    return torch.arange(past + new, device=device)[None] <= past + torch.arange(new, device=device)[:, None]


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class ContextCache:
    """The KV of the last few contexts; a new context runs only past its longest cached prefix."""

    def __init__(self, model: Bagel, capacity: int):
        self.model, self.capacity = model, capacity
        self.entries: list[Context] = []

    def get(self, ids: list[int]) -> Context:
        best, n = None, 0
        for entry in self.entries:
            k = common_prefix(entry.ids, ids)
            if k > n:
                best, n = entry, k
        past = None if best is None else [(k[:, :, :n], v[:, :, :n]) for k, v in best.kv]
        hidden = None if best is None else best.hidden[:n]
        if n < len(ids):
            device = self.model.vae2llm.weight.device
            new = torch.tensor(ids[n:], device=device)[None]
            positions = torch.arange(n, len(ids), device=device)[None]
            out, kv = self.model.run(self.model.embed(new), positions, past, causal_mask(len(ids) - n, n, device))
            past = kv if past is None else [(torch.cat([pk, k], 2), torch.cat([pv, v], 2)) for (pk, pv), (k, v) in zip(past, kv)]
            hidden = out[0] if hidden is None else torch.cat([hidden, out[0]])
        context = Context(list(ids), past, hidden)
        self.put(context)
        return context

    def put(self, context: Context) -> None:
        if self.capacity == 0:
            return
        self.entries = ([e for e in self.entries if e.ids != context.ids] + [context])[-self.capacity :]


def stack_past(contexts: list[Context]) -> tuple[KV, list[int]]:
    """Contexts of different lengths as one batch: KV zero-padded at the end, and each row's length."""
    lengths = [len(c.ids) for c in contexts]
    kv = []
    for layer in range(len(contexts[0].kv)):
        pads = [(0, 0, 0, max(lengths) - n) for n in lengths]
        kv.append(tuple(torch.cat([F.pad(c.kv[layer][i], pad) for c, pad in zip(contexts, pads)]) for i in (0, 1)))
    return kv, lengths


class BagelBackbone(Backbone):
    latent_groups = {TEXT: None}  # one latent per plan token; no image latents (no categorical image head)

    def __init__(
        self,
        model: Bagel,
        vae,
        tokenizer,
        name: str = "bagel",
        resolution: int = 1024,
        flow_steps: int = 50,
        timestep_shift: float = 3.0,
        cfg_interval: tuple[float, float] = (0.4, 1.0),
        cfg_renorm_min: float = 0.0,
        fast: bool = True,
    ):
        from .vae import downsample

        self.model, self.vae, self.tokenizer, self.name = model, vae, tokenizer, name
        self.stride = downsample(vae) * model.patch_size  # pixels per latent token side
        self.side = min(resolution, model.latent_pos_embed.side * self.stride) // self.stride
        self.flow_steps, self.timestep_shift = flow_steps, timestep_shift
        self.cfg_interval, self.cfg_renorm_min = cfg_interval, cfg_renorm_min
        self.fast = fast
        self.contexts = ContextCache(model, 8 if fast else 0)
        special = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>")
        vocab = tokenizer.get_vocab()
        missing = [t for t in special if t not in vocab]
        if missing:
            raise MissingWeights(f"the tokenizer of backbone {name} lacks BAGEL's tokens {', '.join(missing)}")
        self.im_start, self.im_end, self.vision_start, self.vision_end = (vocab[t] for t in special)

    @classmethod
    def from_pretrained(cls, source: str, device: str | None = None, dtype: str | None = None, name: str | None = None, **options):
        from .loading import load_parts, locate

        dev = pick_device(device)
        model, vae, tokenizer = load_parts(locate(source), dev, pick_dtype(dev, dtype))
        return cls(model, vae, tokenizer, name or source, **options)

    # -- facts -----------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        return self.model.vae2llm.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.vae2llm.weight.dtype

    @property
    def resolution(self) -> int:
        return self.side * self.stride

    def max_rows(self) -> int:
        # one image = a guided and an unguided row of side^2 tokens through a decoder layer's widest activations
        cfg = self.model.config
        per_image = 2 * (self.side**2 + 2) * (3 * cfg.intermediate_size + 8 * cfg.hidden_size) * self.dtype.itemsize
        return rows_that_fit(self.device, per_image, cap=8)

    def text_logits(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model.text_logits(latents.to(self.dtype)).float()

    def prompt_strings(self, prompt: str) -> dict[str, str]:
        head = f"<|im_start|>{THINK_PROMPT}<|im_end|><|im_start|>{prompt}<|im_end|>"
        return {
            "reasoning": head + "<|im_start|>",
            "image": head + "<|im_start|>{reasoning}<|im_end|><|vision_start|>",
            "image without guidance": f"<|im_start|>{THINK_PROMPT}<|im_end|><|vision_start|>",
        }

    # -- token sequences --------------------------------------------------------------------
    def _block(self, text: str) -> list[int]:
        return [self.im_start, *self.tokenizer.encode(text, add_special_tokens=False), self.im_end]

    def _prompt_ids(self, prompt: str) -> list[int]:
        return self._block(THINK_PROMPT) + self._block(prompt)

    def _text(self, tokens: torch.Tensor) -> str:
        # as BAGEL reads a plan: the text up to a stray <|im_start|>, special tokens kept as written
        return self.tokenizer.decode(tokens, skip_special_tokens=False).split("<|im_start|>")[0]

    def _step(self, tokens: torch.Tensor, position: int, kv: KV) -> tuple[torch.Tensor, KV]:
        """Feed tokens (rows, m) after kv; hidden (rows, m, d) and the grown kv."""
        device = self.device
        positions = torch.arange(position, position + tokens.shape[1], device=device).expand(tokens.shape[0], -1)
        out, new = self.model.run(self.model.embed(tokens), positions, kv, causal_mask(tokens.shape[1], position, device))
        return out, [(torch.cat([pk, k], 2), torch.cat([pv, v], 2)) for (pk, pv), (k, v) in zip(kv, new)]

    # -- phase 1: the plan ---------------------------------------------------------------------
    @torch.no_grad()
    def reason(self, prompt, prefixes, max_new_tokens, temperature=0.0, generator=None) -> Reasoning:
        base = self._prompt_ids(prompt) + [self.im_start]
        start = self.contexts.get(base)
        rows = 1 if prefixes is None else prefixes.shape[0]
        kv = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in start.kv]
        h = start.hidden[-1].expand(rows, -1)
        tokens, hiddens, ran = [], [], [start.hidden.expand(rows, -1, -1)]
        position = len(base)
        if prefixes is not None and prefixes.shape[1] > 0:
            forced = prefixes.to(self.device)
            chunks = [forced] if self.fast else forced.split(1, dim=1)
            for chunk in chunks:
                out, kv = self._step(chunk, position, kv)
                ran.append(out)
                hiddens.append(torch.cat([h[:, None], out[:, :-1]], 1))  # each token's emitter: the state before it
                h = out[:, -1]
                position += chunk.shape[1]
            tokens.append(forced)
        done = torch.zeros(rows, dtype=torch.bool, device=self.device)
        lengths = torch.full((rows,), position - len(base), device=self.device)
        for step in range(max_new_tokens):
            nxt = self._sample(self.model.text_logits(h).float(), temperature, generator)
            tokens.append(nxt[:, None])
            hiddens.append(h[:, None])
            lengths += ~done
            done |= nxt == self.im_end
            if done.all() or step + 1 == max_new_tokens:
                break
            out, kv = self._step(nxt[:, None], position, kv)
            ran.append(out)
            h = out[:, 0]
            position += 1
        all_tokens, all_hidden, ran = torch.cat(tokens, 1), torch.cat(hiddens, 1), torch.cat(ran, 1)
        fed = position - len(base)
        out_tokens, out_hidden, texts, ended = [], [], [], []
        for i in range(rows):
            # keep what this row ran, so that drawing from its plan runs only <|im_end|>
            self.contexts.put(
                Context(
                    base + all_tokens[i, :fed].tolist(),
                    [(k[i : i + 1], v[i : i + 1]) for k, v in kv],
                    ran[i],
                )
            )
            ended.append(bool(all_tokens[i, : int(lengths[i])].eq(self.im_end).any()))
            n = int(lengths[i]) - int(ended[-1])  # drop <|im_end|>
            out_tokens.append(all_tokens[i, :n].clone())
            out_hidden.append(all_hidden[i, :n].clone())
            texts.append(self._text(out_tokens[-1]))
        return Reasoning(out_tokens, out_hidden, texts, ended)

    @staticmethod
    def _sample(logits: torch.Tensor, temperature: float, generator) -> torch.Tensor:
        if temperature == 0:
            return logits.argmax(-1)
        return torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(-1)

    # -- phase 2: the image ---------------------------------------------------------------------
    @torch.no_grad()
    def draw(self, prompt, reasoning, prefixes, *, cfg_scale, temperature, keep_hidden, generator=None) -> Drawing:
        if prefixes is not None:
            raise ValueError("BAGEL draws by denoising: it has no image tokens to force")
        head = self._prompt_ids(prompt)
        conds = [self.contexts.get(head + self._block(r)) for r in reasoning]
        uncond = self.contexts.get(self._block(THINK_PROMPT))
        noise = torch.randn(
            len(reasoning), self.side**2, self.model.llm2vae.out_features,
            generator=generator, device=self.device, dtype=torch.float32,
        )
        return Drawing(images=self.decode_latents(self.denoise(noise, conds, uncond, cfg_scale)))

    def schedule(self) -> torch.Tensor:
        """Flow times from 1 (noise) to 0 (image), bent by the timestep shift toward the noisy end."""
        t = torch.linspace(1, 0, self.flow_steps, device=self.device)
        return self.timestep_shift * t / (1 + (self.timestep_shift - 1) * t)

    def denoise(self, noise: torch.Tensor, conds: list[Context], uncond: Context, cfg_scale: float) -> torch.Tensor:
        """Euler steps of the rectified flow from `noise` (n, h*w, p*p*C) to patch latents."""
        n, m = noise.shape[0], self.model
        ends = m.embed(torch.tensor([self.vision_start, self.vision_end], device=self.device))
        plain = self._rows(conds)
        guided = self._rows(conds + [uncond] * n) if self.fast else self._rows([uncond] * n)
        ts = self.schedule()
        x = noise
        for t, t_next in zip(ts[:-1], ts[1:]):
            tokens = m.latent_inputs(x, t, (self.side, self.side))
            seq = torch.cat([ends[:1].expand(n, 1, -1), tokens, ends[1:].expand(n, 1, -1)], 1)
            use_cfg = cfg_scale > 1 and self.cfg_interval[0] < t <= self.cfg_interval[1]
            if not use_cfg:
                v = self._velocity(seq, plain)
            elif self.fast:
                v_cond, v_uncond = self._velocity(torch.cat([seq, seq]), guided).chunk(2)
            else:
                v_cond, v_uncond = self._velocity(seq, plain), self._velocity(seq, guided)
            if use_cfg:
                v = v_uncond + cfg_scale * (v_cond - v_uncond)
                # rescale each image's velocity to the conditional one's norm, never up
                ratio = v_cond.flatten(1).norm(dim=1) / (v.flatten(1).norm(dim=1) + 1e-8)
                v = v * ratio.clamp(min=self.cfg_renorm_min, max=1.0)[:, None, None]
            x = x - v * (t - t_next)
        return x

    def _rows(self, contexts: list[Context]):
        """Past KV, each row's past length (None when all agree) and rotary position of image blocks drawn after these contexts."""
        kv, lengths = stack_past(contexts)
        positions = torch.tensor(lengths, device=self.device)
        return kv, None if len(set(lengths)) == 1 else lengths, positions

    def _velocity(self, seq: torch.Tensor, rows) -> torch.Tensor:
        kv, lengths, positions = rows
        out, _ = self.model.run(seq, positions[:, None].expand(-1, seq.shape[1]), kv, None, gen=slice(1, seq.shape[1] - 1),
                                lengths=lengths)
        return self.model.llm2vae(out[:, 1:-1]).float()

    @torch.no_grad()
    def decode_latents(self, x: torch.Tensor) -> list[Image.Image]:
        """Patch latents (n, h*w, p*p*C) -> PIL images through the VAE."""
        p, c, s = self.model.patch_size, self.model.latent_channels, self.side
        z = x.reshape(-1, s, s, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(-1, c, s * p, s * p)
        z = z.to(self.vae.dtype) / self.vae.config.scaling_factor + self.vae.config.shift_factor
        pixels = self.vae.decode(z).sample.float()
        pixels = ((pixels * 0.5 + 0.5).clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(p) for p in pixels]
