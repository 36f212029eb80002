"""BAGEL's mixture-of-transformers and its flow head, built on transformers' Qwen2 parts.

Every decoder layer holds two experts with the same shape: the understanding expert
(Qwen2's own module names) runs text tokens, the generation expert (`*_moe_gen`)
runs the VAE-latent tokens of an image being denoised; all tokens share one
self-attention. Module and parameter names follow the published checkpoint
(ema.safetensors), so its tensors load as they are.

Only what think-then-generate text-to-image needs is built. The SigLIP encoder,
its connector and position table read input images, and text-to-image has none,
so their tensors in the checkpoint are skipped (`SKIPPED_PREFIXES`).

A call runs `embeds` (B, L, d) after a cached past (one (k, v) pair per layer,
each (B, kv_heads, P, head_dim)); `gen` marks the slice of positions that the
generation expert runs (an image's latent tokens; the <|vision_start|> and
<|vision_end|> around them are text tokens and stay with the understanding expert).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import (
    Qwen2Attention,
    Qwen2MLP,
    Qwen2RMSNorm,
    Qwen2RotaryEmbedding,
    apply_rotary_pos_emb,
)

SKIPPED_PREFIXES = ("vit_model.", "connector.", "vit_pos_embed.")

KV = list[tuple[torch.Tensor, torch.Tensor]]


def by_expert(x: torch.Tensor, gen: slice | None, und, gen_fn) -> torch.Tensor:
    """`und` on the understanding positions, `gen_fn` on the `gen` slice (positions on dim 1)."""
    if gen is None:
        return und(x)
    return torch.cat([und(x[:, : gen.start]), gen_fn(x[:, gen]), und(x[:, gen.stop :])], 1)


class MoTAttention(Qwen2Attention):
    """Qwen2 attention (q/k/v with bias, o without) plus RMS-normed queries and keys, twice."""

    def __init__(self, config: Qwen2Config, layer_idx: int):
        super().__init__(config, layer_idx)
        heads, kv_heads, d = config.num_attention_heads, config.num_key_value_heads, self.head_dim
        eps = config.rms_norm_eps
        self.q_norm, self.k_norm = Qwen2RMSNorm(d, eps), Qwen2RMSNorm(d, eps)
        self.q_norm_moe_gen, self.k_norm_moe_gen = Qwen2RMSNorm(d, eps), Qwen2RMSNorm(d, eps)
        self.q_proj_moe_gen = nn.Linear(config.hidden_size, heads * d, bias=True)
        self.k_proj_moe_gen = nn.Linear(config.hidden_size, kv_heads * d, bias=True)
        self.v_proj_moe_gen = nn.Linear(config.hidden_size, kv_heads * d, bias=True)
        self.o_proj_moe_gen = nn.Linear(heads * d, config.hidden_size, bias=False)

    def _heads(self, x: torch.Tensor, proj: nn.Linear, norm: nn.Module | None) -> torch.Tensor:
        y = proj(x).unflatten(-1, (-1, self.head_dim))
        return y if norm is None else norm(y)

    def forward(self, x, cos, sin, past, mask, gen, lengths=None):
        q = by_expert(x, gen, lambda t: self._heads(t, self.q_proj, self.q_norm),
                      lambda t: self._heads(t, self.q_proj_moe_gen, self.q_norm_moe_gen))
        k = by_expert(x, gen, lambda t: self._heads(t, self.k_proj, self.k_norm),
                      lambda t: self._heads(t, self.k_proj_moe_gen, self.k_norm_moe_gen))
        v = by_expert(x, gen, lambda t: self._heads(t, self.v_proj, None),
                      lambda t: self._heads(t, self.v_proj_moe_gen, None))
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, L, head_dim)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        if past is None:
            out = attend(q, k, v, mask)
        elif lengths is None:
            out = attend(q, torch.cat([past[0], k], 2), torch.cat([past[1], v], 2), mask)
        else:  # pasts of different lengths, zero-padded: each run of rows attends to its own past, unpadded
            out = torch.cat([
                attend(q[a:b], torch.cat([past[0][a:b, :, :n], k[a:b]], 2), torch.cat([past[1][a:b, :, :n], v[a:b]], 2), mask)
                for a, b, n in row_runs(lengths)
            ])
        out = by_expert(out.transpose(1, 2).flatten(2), gen, self.o_proj, self.o_proj_moe_gen)
        return out, (k, v)


def attend(q, keys, values, mask):
    if mask is None:  # the flash kernel, grouped-query heads and all
        return F.scaled_dot_product_attention(q, keys, values, enable_gqa=True)
    # fused kernels that take a mask want every head's keys spelled out
    groups = q.shape[1] // keys.shape[1]
    return F.scaled_dot_product_attention(q, keys.repeat_interleave(groups, 1), values.repeat_interleave(groups, 1), attn_mask=mask)


def row_runs(lengths: list[int]) -> list[tuple[int, int, int]]:
    """(first row, end row, length) for each run of consecutive rows with the same past length."""
    runs, start = [], 0
    for i in range(1, len(lengths) + 1):
        if i == len(lengths) or lengths[i] != lengths[start]:
            runs.append((start, i, lengths[start]))
            start = i
    return runs


class MoTLayer(nn.Module):
    def __init__(self, config: Qwen2Config, layer_idx: int):
        super().__init__()
        eps = config.rms_norm_eps
        self.self_attn = MoTAttention(config, layer_idx)
        self.mlp, self.mlp_moe_gen = Qwen2MLP(config), Qwen2MLP(config)
        self.input_layernorm = Qwen2RMSNorm(config.hidden_size, eps)
        self.input_layernorm_moe_gen = Qwen2RMSNorm(config.hidden_size, eps)
        self.post_attention_layernorm = Qwen2RMSNorm(config.hidden_size, eps)
        self.post_attention_layernorm_moe_gen = Qwen2RMSNorm(config.hidden_size, eps)

    def forward(self, x, cos, sin, past, mask, gen, lengths=None):
        h = by_expert(x, gen, self.input_layernorm, self.input_layernorm_moe_gen)
        h, kv = self.self_attn(h, cos, sin, past, mask, gen, lengths)
        x = x + h
        h = by_expert(
            x,
            gen,
            lambda t: self.mlp(self.post_attention_layernorm(t)),
            lambda t: self.mlp_moe_gen(self.post_attention_layernorm_moe_gen(t)),
        )
        return x + h, kv


class MoTModel(nn.Module):
    def __init__(self, config: Qwen2Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(MoTLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.norm_moe_gen = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(config)


class LanguageModel(nn.Module):
    def __init__(self, config: Qwen2Config):
        super().__init__()
        self.model = MoTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)


class TimestepEmbedder(nn.Module):
    """Flow time t in [0, 1] -> a vector: 256 sinusoid frequencies (cos first), then an MLP."""

    frequencies = 256

    def __init__(self, hidden_size: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(self.frequencies, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequencies // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        angles = t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([angles.cos(), angles.sin()], -1).to(self.mlp[0].weight.dtype))


def sincos_grid(side: int, dim: int) -> torch.Tensor:
    """(side * side, dim) fixed 2-D sin-cos table; row r * side + c holds the column code then the row code."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    coords = torch.arange(side, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")

    def code(pos):
        angles = pos.reshape(-1, 1) * omega[None]
        return torch.cat([angles.sin(), angles.cos()], 1)

    return torch.cat([code(cols), code(rows)], 1).float()


class PositionEmbedding(nn.Module):
    """The latent tokens' 2-D position table (fixed sin-cos values, kept as a parameter as in the checkpoint)."""

    def __init__(self, side: int, hidden_size: int):
        super().__init__()
        self.side = side
        self.pos_embed = nn.Parameter(torch.zeros(side * side, hidden_size), requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.pos_embed[ids]


class Bagel(nn.Module):
    """The parts of BAGEL-7B-MoT that think-then-generate uses, named as in its checkpoint."""

    def __init__(self, llm_config: Qwen2Config, latent_channels: int, patch_size: int = 2, max_latent_side: int = 64):
        super().__init__()
        d = llm_config.hidden_size
        self.config = llm_config
        self.patch_size = patch_size
        self.latent_channels = latent_channels
        self.language_model = LanguageModel(llm_config)
        self.time_embedder = TimestepEmbedder(d)
        self.vae2llm = nn.Linear(patch_size**2 * latent_channels, d)
        self.llm2vae = nn.Linear(d, patch_size**2 * latent_channels)
        self.latent_pos_embed = PositionEmbedding(max_latent_side, d)

    # -- one decoder call -----------------------------------------------------------------
    def run(
        self,
        embeds: torch.Tensor,
        positions: torch.Tensor,
        past: KV | None = None,
        mask: torch.Tensor | None = None,
        gen: slice | None = None,
        lengths: list[int] | None = None,
    ) -> tuple[torch.Tensor, KV]:
        """Final-norm hidden states (B, L, d) and this call's (k, v) per layer (past not included).
        `lengths`: each row's real past length where the past is zero-padded to the longest."""
        lm = self.language_model.model
        cos, sin = lm.rotary_emb(embeds, positions)
        x, kv = embeds, []
        for i, layer in enumerate(lm.layers):
            x, layer_kv = layer(x, cos, sin, None if past is None else past[i], mask, gen, lengths)
            kv.append(layer_kv)
        return by_expert(x, gen, lm.norm, lm.norm_moe_gen), kv

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.model.embed_tokens(ids)

    def text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.language_model.lm_head(hidden)

    def latent_inputs(self, x: torch.Tensor, t: torch.Tensor, side: tuple[int, int]) -> torch.Tensor:
        """Noisy patch latents x (B, h*w, p*p*C) at flow time t -> the generation expert's input embeddings."""
        h, w = side
        ids = (torch.arange(h, device=x.device)[:, None] * self.latent_pos_embed.side + torch.arange(w, device=x.device)).flatten()
        dtype = self.vae2llm.weight.dtype
        return self.vae2llm(x.to(dtype)) + self.time_embedder(t.reshape(1)) + self.latent_pos_embed(ids).to(dtype)


def read_llm_config(path) -> Qwen2Config:
    """llm_config.json as published (Qwen2 keys); BAGEL's MoT settings are fixed by the architecture."""
    import json
    from pathlib import Path

    data = json.loads(Path(path).read_text())
    data.pop("architectures", None)
    return Qwen2Config(**data)


def random_bagel(llm_config: Qwen2Config, latent_channels: int, patch_size: int, max_latent_side: int,
                 device, dtype, seed: int = 0) -> Bagel:
    """Random weights at any shape, made straight on `device`: normal(0, 0.02) matrices and
    embeddings, norm gains near 1 (not exactly 1, so that a swapped expert shows)."""
    with torch.device("meta"):
        model = Bagel(llm_config, latent_channels, patch_size, max_latent_side)
    model = model.to(dtype).to_empty(device=device)  # cast while on meta: no full-precision copy is ever made
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "latent_pos_embed.pos_embed":
                p.copy_(sincos_grid(max_latent_side, llm_config.hidden_size))
            elif "norm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen, device=device))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=gen, device=device))
    fresh_buffers(model, device)
    return model.eval().requires_grad_(False)


def fresh_buffers(model: Bagel, device) -> None:
    """The rotary frequencies are computed, not stored: make them on `device` after a meta-device build."""
    model.language_model.model.rotary_emb = Qwen2RotaryEmbedding(model.config).to(device)
