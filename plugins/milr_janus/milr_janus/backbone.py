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
from milr_core.interfaces import Backbone, Drawing, Reasoning

from .loading import resolve
from .static_decode import StaticDecoder, bucket, cache_name

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
        model, processor = resolve(source, dt)
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
        # KV cache of one CFG pair (2 rows) over prompt + image, plus activations (x2).
        cfg = self.model.config.text_config
        per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
        per_row = 2 * 2 * per_token * (self.num_image_tokens + 1024) * self.dtype.itemsize
        return rows_that_fit(self.device, per_row, cap=16)

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
        if key not in self._prompts:
            if len(self._prompts) >= 4:  # the reasoning prompt and the image prompt of the current step, and spares
                self._prompts.pop(next(iter(self._prompts)))
            u_ids, u_mask = unique.split(ids.shape[1], dim=1)
            self._prompts[key] = self._forward(embeds(u_ids), u_mask)
        hidden, cache = self._prompts[key]
        decoder = self._decoder(ids.shape[0], bucket(ids.shape[1] + new_tokens + 1))
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

    def _sample(self, logits: torch.Tensor, temperature: float, generator) -> torch.Tensor:
        if temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    # -- phase 1: reasoning text -------------------------------------------------
    @torch.no_grad()
    def reason(self, prompt, prefixes, max_new_tokens, temperature=0.0, generator=None) -> Reasoning:
        batch = self._reasoning_ids(prompt)
        rows = 1 if prefixes is None else prefixes.shape[0]
        ids = batch["input_ids"].expand(rows, -1)
        mask = batch["attention_mask"].expand(rows, -1)
        prompt_len = ids.shape[1]
        if prefixes is not None:
            ids = torch.cat([ids, prefixes.to(self.device)], 1)
            mask = torch.cat([mask, torch.ones_like(prefixes, device=self.device)], 1)
        decoder, hidden = self._start(self.lm.embed_tokens, ids, mask, max_new_tokens)
        # hidden at position p produces token p + 1: the prefix tokens come from prompt_len - 1 on
        hiddens = [hidden[:, prompt_len - 1 : -1]]
        tokens = [ids[:, prompt_len:]]
        h = hidden[:, -1]
        eos = self.tokenizer.eos_token_id
        done = torch.zeros(rows, dtype=torch.bool, device=self.device)
        lengths = torch.full((rows,), tokens[0].shape[1], device=self.device)
        for _ in range(max_new_tokens):
            nxt = self._sample(self.model.lm_head(h).float(), temperature, generator)
            hiddens.append(h[:, None].clone())
            tokens.append(nxt[:, None])
            lengths += ~done
            done |= nxt == eos
            if done.all():
                break
            h = decoder.step(self.lm.embed_tokens(nxt[:, None]))
        all_tokens, all_hidden = torch.cat(tokens, 1), torch.cat(hiddens, 1)
        out_tokens, out_hidden, texts, ended = [], [], [], []
        for i in range(rows):
            ended.append(bool(all_tokens[i, : int(lengths[i])].eq(eos).any()))
            n = int(lengths[i]) - int(ended[-1])  # drop the EOS itself
            out_tokens.append(all_tokens[i, :n].clone())
            out_hidden.append(all_hidden[i, :n].clone())
            text = self.tokenizer.decode(out_tokens[-1], skip_special_tokens=True)
            texts.append(text if self.chat == "paper" else text.strip())  # the reference keeps the leading space
        return Reasoning(out_tokens, out_hidden, texts, ended)

    # -- phase 2: image tokens -----------------------------------------------------
    def _image_prompt(self, prompt: str, reasoning: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditional rows then unconditional rows (pads except BOS/BOI), as transformers does."""
        texts = [f"{prompt}. {r}" if r else prompt for r in reasoning]
        if self.chat == "paper":
            batch = self._encode([PAPER_IMAGE_CHAT.format(text=t) + self.tokenizer.boi_token for t in texts])
        else:
            batch = self._chat(texts, "image")
        ids, mask = batch["input_ids"], batch["attention_mask"]
        uncond = ids.clone()
        bos, boi = self.tokenizer.bos_token_id, self.tokenizer.convert_tokens_to_ids(self.tokenizer.boi_token)
        uncond[(uncond != bos) & (uncond != boi)] = self.tokenizer.pad_token_id
        return torch.cat([ids, uncond]), torch.cat([mask, mask])

    @torch.no_grad()
    def draw(self, prompt, reasoning, prefixes, *, cfg_scale, temperature, keep_hidden, generator=None) -> Drawing:
        n = len(reasoning)
        ids, mask = self._image_prompt(prompt, reasoning)
        decoder, hidden = self._start(self.model.get_input_embeddings(), ids, mask, self.num_image_tokens)
        h = hidden[:, -1]
        forced = 0 if prefixes is None else prefixes.shape[1]
        head = self.model.model.generation_head
        tokens = torch.empty(n, self.num_image_tokens, dtype=torch.long, device=self.device)
        kept = []
        for i in range(self.num_image_tokens):
            if i < keep_hidden:
                kept.append(torch.stack([h[:n], h[n:]], 1))  # (n, 2, d): conditional, unconditional
            if i < forced:
                nxt = prefixes[:, i].to(self.device)
            else:
                cond, uncond = head(h).float().chunk(2)
                nxt = self._sample(uncond + cfg_scale * (cond - uncond), temperature, generator)
            tokens[:, i] = nxt
            if i + 1 == self.num_image_tokens:
                break
            h = decoder.step(self.model.prepare_embeddings_for_image_generation(torch.cat([nxt, nxt])[:, None]))
        hidden_out = torch.stack(kept, 1) if kept else h.new_zeros(n, 0, 2, self.hidden_size)
        return Drawing(tokens, hidden_out)

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
