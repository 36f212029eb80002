"""Janus-Pro as a milr Backbone, on transformers' JanusForConditionalGeneration.

transformers' own `generate(generation_mode="image")` keeps no hidden states
and cannot force image tokens, both of which MILR needs, so the decode loops
live here: the same modules and the same math (CFG rows, the unconditional
prompt of pad tokens, the generation head and embeddings), with a KV cache.

Two decoders run those loops. The fast one (default) runs each distinct prompt
row once, remembers its KV for the next call, copies it into a static cache for
every candidate row, and on CUDA replays each decoder call as a CUDA graph
(static_decode.py). The eager one (`fast=False`) is the plain dynamic-cache
loop; it is kept as the reference that the fast one must match token for token.
"""

from __future__ import annotations

import torch
from PIL import Image
from transformers import JanusForConditionalGeneration, JanusProcessor

from milr_core.hardware import pick_compile, pick_device, pick_dtype, rows_that_fit
from milr_core.interfaces import Backbone, Drawing, DrawJob, Reasoning, ReasonJob

from .loading import resolve
from .static_decode import StaticDecoder, bucket, bucket_rows, cache_name

#: Asks for the "visualization" chain of thought that conditions the image (MILR.md, phase 1).
REASONING_INSTRUCTION = (
    "Describe in detail how an image of this prompt should look, naming every object "
    "with its colour, count and position: {prompt}"
)

# The MILR authors' chat strings (../shared/MILR_REFERENCE.md, sections 1-2): DeepSeek's `deepseek`
# conversation format with the role names written as plain `User` / `Assistant`.
PAPER_SYSTEM = "You are a helpful assistant that receives an image prompt and generate a visualization of the prompt."
PAPER_INSTRUCTION = (
    'You are asked to generate an image based on this prompt: "{prompt}"\n'
    "Provide a brief, precise visualization of all elements in the prompt. Your description should:\n"
    "1. Include every object mentioned in the prompt\n"
    "2. Specify visual attributes (color, number, shape, texture) if specified in the prompt\n"
    "3. Clarify relationships (e.g., spatial) between objects if specified in the prompt\n"
    "4. Be concise (50 words or less)\n"
    "5. Focus only on what's explicitly stated in the prompt\n"
    "6. Do not elaborate beyond the attributes or relationships specified in the prompt\n"
    "Do not miss objects. Output your visualization directly without explanation:"
)
PAPER_REASONING_CHAT = PAPER_SYSTEM + "\n\nUser: " + PAPER_INSTRUCTION + "\n\nAssistant:"
PAPER_IMAGE_CHAT = "User: {text}\n\nAssistant:"

def image_text(prompt: str, reasoning: str) -> str:
    """What an image is conditioned on: the prompt, then its reasoning text."""
    return f"{prompt}. {reasoning}" if reasoning else prompt


#: Prompt KV is remembered across calls only for calls of at most this many distinct rows.
PROMPT_CACHE_ROWS = 16


def _sample(logits: torch.Tensor, temperature: torch.Tensor, uniform: torch.Tensor, hot: bool) -> torch.Tensor:
    """One token per row by inverse-CDF sampling on the row's own uniform (rows with temperature
    0 take the argmax): a row's token depends on its logits and its uniform, nothing else."""
    greedy = logits.argmax(-1)
    if not hot:
        return greedy
    warm = temperature > 0
    probs = torch.softmax(logits / torch.where(warm, temperature, 1.0)[:, None], dim=-1)
    cdf = probs.cumsum(-1)
    drawn = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True).squeeze(-1)
    return torch.where(warm, drawn.clamp_(max=logits.shape[-1] - 1), greedy)


class JanusBackbone(Backbone):
    def __init__(
        self,
        model: JanusForConditionalGeneration,
        processor: JanusProcessor,
        name: str = "janus",
        fast: bool = True,
        compile: bool = False,
        chat: str | None = None,
    ):
        """`chat` names the prompt strings: paper (the MILR authors' strings, what Janus-Pro gets) or
        template (the checkpoint's own chat template with milr's instruction, what janus-shapes was
        trained on)."""
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.name = name
        self.lm = model.model.language_model
        self.instruction = REASONING_INSTRUCTION
        self.chat = chat or "paper"
        self.fast = fast
        self.compile = compile  # TorchInductor-fused decoder calls (static_decode.py)
        self._decoders: dict[tuple[int, int], StaticDecoder] = {}
        self._prompts: dict[bytes, tuple[torch.Tensor, object]] = {}  # prompt rows -> (hidden, KV)
        self._max_rows: int | None = None

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        device: str | None = None,
        dtype: str | None = None,
        name: str | None = None,
        compile: bool | None = None,
        chat: str | None = None,
    ) -> JanusBackbone:
        """`source` is an alias (janus-pro-7b), a hub id or a local directory;
        `compile` None follows MILR_COMPILE (see milr_core.hardware.pick_compile)."""
        dev = pick_device(device)
        dt = pick_dtype(dev, dtype)
        model, processor = resolve(source, dt, dev)
        return cls(model.to(dev), processor, name or source, compile=pick_compile(dev, compile), chat=chat)

    # -- facts ---------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.model.config.text_config.hidden_size

    @property
    def num_image_tokens(self) -> int:
        return self.model.model.vision_model.config.num_image_tokens

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def max_rows(self) -> int:
        # Decided once, on the free memory beside the weights: asked again later, the answer would
        # shrink by the caches that earlier calls keep, and each new answer would make new caches.
        if self._max_rows is None:
            cfg = self.model.config.text_config
            per_position = (2 * cfg.num_hidden_layers * cfg.num_key_value_heads
                            * (cfg.hidden_size // cfg.num_attention_heads) * self.dtype.itemsize)
            # per image of a step: its CFG pair's KV over prompt and image, its reasoning row's KV
            # (two text decoders: the first text and its continuations), the prompt KV being copied in
            positions = 2 * (self.num_image_tokens + 512) + 2 * 512 + 2 * 512
            self._max_rows = rows_that_fit(self.device, per_position * positions, cap=64)
        return self._max_rows

    # -- heads: the policy that MILR optimises --------------------------------
    def text_logits(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(latents.to(self.dtype)).float()

    def image_logits(self, latents: torch.Tensor, cfg_scale: float | None = None) -> torch.Tensor:
        logits = self.model.model.generation_head(latents.to(self.dtype)).float()
        cond, uncond = logits[..., 0, :], logits[..., 1, :]
        return cond if cfg_scale is None else uncond + cfg_scale * (cond - uncond)

    # -- prompts ---------------------------------------------------------------
    def prompt_strings(self, prompt: str) -> dict[str, str]:
        if self.chat == "paper":
            return {"reasoning": PAPER_REASONING_CHAT.format(prompt=prompt),
                    "image": PAPER_IMAGE_CHAT.format(text=f"{prompt}. {{reasoning}}") + self.tokenizer.boi_token}
        text = self._template([self.instruction.format(prompt=prompt)])[0]
        if self.processor.use_default_system_prompt:
            from transformers.models.janus.processing_janus import DEFAULT_SYSTEM_PROMPT

            text = DEFAULT_SYSTEM_PROMPT + text
        return {"reasoning": text, "image": self._template([f"{prompt}. {{reasoning}}"])[0] + self.tokenizer.boi_token}

    def _template(self, texts: list[str]) -> list[str]:
        return [
            self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "text", "text": t}]}], add_generation_prompt=True
            )
            for t in texts
        ]

    def _reasoning_ids(self, prompt: str) -> dict[str, torch.Tensor]:
        if self.chat == "paper":
            return self._encode([PAPER_REASONING_CHAT.format(prompt=prompt)])
        return self._chat([self.instruction.format(prompt=prompt)], "text")

    def _encode(self, strings: list[str]) -> dict[str, torch.Tensor]:
        """Literal chat strings -> ids after BOS, padded on the processor's side."""
        batch = self.tokenizer(strings, padding=True, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def _chat(self, texts: list[str], mode: str) -> dict[str, torch.Tensor]:
        batch = self.processor(text=self._template(texts), generation_mode=mode, padding=True, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def _forward(self, embeds: torch.Tensor, mask: torch.Tensor, cache=None):
        """One eager decoder call; positions follow the attention mask (left padding)."""
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -embeds.shape[1] :]
        name = cache_name(type(self.lm))
        out = self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, **{name: cache})
        return out.last_hidden_state, getattr(out, name)

    def _start(self, embeds: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, new_tokens: int):
        """Run the prompt rows (ids (rows, L)); returns (decoder, hidden (rows, L, d))."""
        if not self.fast:
            hidden, cache = self._forward(embeds(ids), mask)
            return _EagerDecoder(self, cache, mask), hidden
        # every distinct row once; candidates and unchanged prompts of the previous call reuse its KV
        unique, rows = torch.unique(torch.cat([ids, mask], 1), dim=0, return_inverse=True)
        key = unique.cpu().numpy().tobytes()
        entry = self._prompts.get(key)
        if entry is None:
            u_ids, u_mask = unique.split(ids.shape[1], dim=1)
            entry = self._forward(embeds(u_ids), u_mask)
            # one search's prompts are kept (an image-only step redraws from the same text); the many
            # prompts of a batched bench call rarely repeat, and their KV would crowd out the decoders
            if len(unique) <= PROMPT_CACHE_ROWS:
                if len(self._prompts) >= 4:  # the reasoning prompt and the image prompt of the current step, and spares
                    self._prompts.pop(next(iter(self._prompts)))
                self._prompts[key] = entry
        hidden, cache = entry
        decoder = self._decoder(bucket_rows(ids.shape[0]), bucket(ids.shape[1] + new_tokens + 1))
        decoder.load(cache, rows, mask)
        return decoder, hidden[rows]

    def _decoder(self, rows: int, max_len: int) -> StaticDecoder:
        key = (rows, max_len)
        if key not in self._decoders:
            if len(self._decoders) >= 3:  # each holds a KV cache (and a graph): keep the recent few
                self._decoders.pop(next(iter(self._decoders)))
            self._decoders[key] = StaticDecoder(
                self.lm, rows, max_len, use_graph=self.device.type == "cuda", compile=self.compile
            )
        return self._decoders[key]

    def _unpad(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The token ids of each row of a padded batch, without the padding (on the CPU)."""
        return [ids[mask.bool()].cpu() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]

    def _pad(self, rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-pad token rows to one length: (ids, mask) on the device."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :], mask[i, width - len(r) :] = r, 1
        return ids.to(self.device), mask.to(self.device)

    def _noise(self, generator, rows: int, steps: int, temperature: float) -> torch.Tensor:
        """One job's uniforms for all its sampled tokens, drawn at once from its own generator,
        so that its draws do not depend on the jobs that share a call (none when greedy)."""
        if temperature == 0:
            return torch.zeros(rows, steps, device=self.device)
        device = generator.device if generator is not None else self.device
        return torch.rand(rows, steps, generator=generator, device=device).to(self.device)

    # -- phase 1: reasoning text -------------------------------------------------
    def reason(self, prompt, prefixes, max_new_tokens, temperature=0.0, generator=None) -> Reasoning:
        return self.reason_many([ReasonJob(prompt, prefixes, max_new_tokens, temperature, generator)])[0]

    @torch.no_grad()
    def reason_many(self, jobs: list[ReasonJob]) -> list[Reasoning]:
        prompts = [self._unpad(self._reasoning_ids(j.prompt))[0] for j in jobs]
        seqs, forced, limits, temps, noise, counts = [], [], [], [], [], []
        steps = max(j.max_new_tokens for j in jobs)
        for job, prompt in zip(jobs, prompts):
            pre = torch.zeros(1, 0, dtype=torch.long) if job.prefixes is None else job.prefixes.cpu()
            n = pre.shape[0]
            counts.append(n)
            seqs += [torch.cat([prompt, row]) for row in pre]
            forced += [pre.shape[1]] * n
            limits += [job.max_new_tokens] * n
            temps += [job.temperature] * n
            u = self._noise(job.generator, n, job.max_new_tokens, job.temperature)
            noise.append(torch.nn.functional.pad(u, (0, steps - job.max_new_tokens)))
        ids, mask = self._pad(seqs)
        noise = torch.cat(noise)
        limit = torch.tensor(limits, device=self.device)
        temperature = torch.tensor(temps, device=self.device)
        hot = any(t > 0 for t in temps)
        decoder, hidden = self._start(self.lm.embed_tokens, ids, mask, steps)
        h = hidden[:, -1]
        eos = self.tokenizer.eos_token_id
        rows = len(seqs)
        done = torch.zeros(rows, dtype=torch.bool, device=self.device)
        lengths = torch.zeros(rows, dtype=torch.long, device=self.device)
        new_tokens, new_hidden = [], []
        for t in range(steps):
            nxt = _sample(self.model.lm_head(h).float(), temperature, noise[:, t], hot)
            new_hidden.append(h.clone())
            new_tokens.append(nxt)
            lengths += ~done
            done |= (nxt == eos) | (limit <= t + 1)
            if t + 1 == steps or done.all():
                break
            h = decoder.step(self.lm.embed_tokens(nxt[:, None]))
        tokens, hiddens = torch.stack(new_tokens, 1), torch.stack(new_hidden, 1)
        width = ids.shape[1]
        out: list[Reasoning] = []
        row = 0
        for n in counts:
            part = Reasoning([], [], [], [])
            for i in range(row, row + n):
                m, k = forced[i], int(lengths[i])
                part.eos.append(bool(tokens[i, k - 1] == eos))
                k -= int(part.eos[-1])  # drop the EOS itself
                # hidden at position p produces token p + 1: the forced tokens come from width - m - 1 on
                part.tokens.append(torch.cat([ids[i, width - m :], tokens[i, :k]]))
                part.hidden.append(torch.cat([hidden[i, width - m - 1 : width - 1], hiddens[i, :k]]))
                text = self.tokenizer.decode(part.tokens[-1], skip_special_tokens=True)
                part.text.append(text if self.chat == "paper" else text.strip())  # the reference keeps the leading space
            out.append(part)
            row += n
        return out

    # -- phase 2: image tokens -----------------------------------------------------
    def _image_prompt(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditional rows then unconditional rows (pads except BOS/BOI), as transformers does."""
        if self.chat == "paper":
            batch = self._encode([PAPER_IMAGE_CHAT.format(text=t) + self.tokenizer.boi_token for t in texts])
        else:
            batch = self._chat(texts, "image")
        ids, mask = self._pad(self._unpad(batch))
        uncond = ids.clone()
        bos, boi = self.tokenizer.bos_token_id, self.tokenizer.convert_tokens_to_ids(self.tokenizer.boi_token)
        uncond[(uncond != bos) & (uncond != boi)] = self.tokenizer.pad_token_id
        return torch.cat([ids, uncond]), torch.cat([mask, mask])

    def draw(self, prompt, reasoning, prefixes, *, cfg_scale, temperature, keep_hidden, generator=None) -> Drawing:
        job = DrawJob(prompt, reasoning, prefixes, generator)
        return self.draw_many([job], cfg_scale=cfg_scale, temperature=temperature, keep_hidden=keep_hidden)[0]

    @torch.no_grad()
    def draw_many(self, jobs: list[DrawJob], *, cfg_scale, temperature, keep_hidden) -> list[Drawing]:
        total = self.num_image_tokens
        ids, mask = self._image_prompt([image_text(j.prompt, r) for j in jobs for r in j.reasoning])
        n = ids.shape[0] // 2
        width = max((j.prefixes.shape[1] for j in jobs if j.prefixes is not None), default=0)
        prefixes = torch.zeros(n, width, dtype=torch.long, device=self.device)
        forced = torch.zeros(n, dtype=torch.long, device=self.device)
        row = 0
        for j in jobs:
            if j.prefixes is not None:
                prefixes[row : row + j.rows, : j.prefixes.shape[1]] = j.prefixes
                forced[row : row + j.rows] = j.prefixes.shape[1]
            row += j.rows
        noise = torch.cat([self._noise(j.generator, j.rows, total, temperature) for j in jobs])
        temp = torch.full((n,), float(temperature), device=self.device)
        decoder, hidden = self._start(self.model.get_input_embeddings(), ids, mask, total)
        h = hidden[:, -1]
        head = self.model.model.generation_head
        tokens = torch.empty(n, total, dtype=torch.long, device=self.device)
        kept = []
        for i in range(total):
            if i < keep_hidden:
                kept.append(torch.stack([h[:n], h[n:]], 1))  # (n, 2, d): conditional, unconditional
            cond, uncond = head(h).float().chunk(2)
            nxt = _sample(uncond + cfg_scale * (cond - uncond), temp, noise[:, i], temperature > 0)
            if i < width:
                nxt = torch.where(forced > i, prefixes[:, i], nxt)
            tokens[:, i] = nxt
            if i + 1 == total:
                break
            h = decoder.step(self.model.prepare_embeddings_for_image_generation(torch.cat([nxt, nxt])[:, None]))
        hidden_out = torch.stack(kept, 1) if kept else h.new_zeros(n, 0, 2, self.hidden_size)
        sizes = [j.rows for j in jobs]
        return [Drawing(t, k) for t, k in zip(tokens.split(sizes), hidden_out.split(sizes))]

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> list[Image.Image]:
        pixels = self.model.decode_image_tokens(tokens.to(self.device)).float()
        pixels = ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
        return [Image.fromarray(p) for p in pixels]


class _EagerDecoder:
    """The plain loop: a dynamic cache grown by one eager decoder call per token."""

    def __init__(self, backbone: JanusBackbone, cache, mask: torch.Tensor):
        self.backbone, self.cache, self.mask = backbone, cache, mask

    def step(self, embeds: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], 1)
        hidden, self.cache = self.backbone._forward(embeds, self.mask, self.cache)
        return hidden[:, -1]
