"""Train the VQ model (transformers' JanusVQVAE) of janus-shapes on shapes-world renders.

Janus decodes image tokens through `get_codebook_entry`, which L2-normalises
the codebook vectors (LlamaGen's VQ); the module's own `quantize` does not.
So training quantizes the way decoding reads: encoder output and codebook both
normalised, nearest code by cosine, straight-through gradients, the codebook
and commitment losses of the VQ-VAE paper. Codes left unused for a while are
restarted on random encoder outputs so the small codebook stays in use.
The pixel loss weighs object pixels more: they are a small share of a scene
but all that the oracle reads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from milr_rewards_geneval.shapes import BACKGROUND

BETA = 0.25  # commitment weight (VQ-VAE)
OBJECT_WEIGHT = 4.0  # extra pixel-loss weight where the target is not background
RESTART_EVERY = 200


def to_pixels(images: np.ndarray | torch.Tensor, device) -> torch.Tensor:
    """uint8 (n, h, w, 3) -> float (n, 3, h, w) in [-1, 1], as Janus-Pro normalises."""
    x = torch.as_tensor(images, device=device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


def quantize(vq, pixels: torch.Tensor):
    """(codes (n, tokens), quantized latents with straight-through gradients, VQ loss)."""
    h = vq.quant_conv(vq.encoder(pixels)).float()
    n, d, gh, gw = h.shape
    z = F.normalize(h.permute(0, 2, 3, 1).reshape(-1, d), dim=-1)
    book = F.normalize(vq.quantize.embedding.weight.float(), dim=-1)
    codes = (z @ book.T).argmax(-1)
    q = book[codes]
    loss = F.mse_loss(q, z.detach()) + BETA * F.mse_loss(z, q.detach())
    q = z + (q - z).detach()
    return codes.view(n, gh * gw), q.view(n, gh, gw, d).permute(0, 3, 1, 2), loss, z


def decode_latents(vq, q: torch.Tensor) -> torch.Tensor:
    return vq.decoder(vq.post_quant_conv(q.to(vq.post_quant_conv.weight.dtype)))


def _restart_dead(vq, usage: torch.Tensor, z: torch.Tensor, generator: torch.Generator) -> int:
    dead = (usage == 0).nonzero().squeeze(-1)
    if len(dead):
        pick = torch.randint(len(z), (len(dead),), device=z.device, generator=generator)
        with torch.no_grad():
            vq.quantize.embedding.weight[dead] = z[pick].detach().to(vq.quantize.embedding.weight.dtype)
    usage.zero_()
    return len(dead)


def train_vq(
    vq,
    images: np.ndarray,
    steps: int,
    batch: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Train `vq` (a JanusVQVAE) in place on uint8 renders; returns the last losses."""
    device = vq.quant_conv.weight.device
    vq.train().requires_grad_(True)
    data = torch.as_tensor(images, device=device)
    background = torch.tensor(BACKGROUND, device=device) / 127.5 - 1
    opt = torch.optim.Adam(vq.parameters(), lr=lr, betas=(0.9, 0.99))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    usage = torch.zeros(vq.config.num_embeddings, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    t0, stats = time.perf_counter(), {}
    for step in range(1, steps + 1):
        x = to_pixels(data[torch.randint(len(data), (batch,), device=device, generator=gen)], device)
        with autocast:
            codes, q, vq_loss, z = quantize(vq, x)
            recon = decode_latents(vq, q).float()
        weight = 1 + OBJECT_WEIGHT * ((x - background[:, None, None]).abs().sum(1, keepdim=True) > 0.1)
        err = recon - x
        pixel = (weight * (err.abs() + err.pow(2))).mean()
        loss = pixel + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        usage += torch.bincount(codes.flatten(), minlength=len(usage))
        if step % RESTART_EVERY == 0 and step < 0.8 * steps:  # let the last codes settle
            stats["restarted"] = _restart_dead(vq, usage, z, gen)
        if step % max(1, steps // 10) == 0 or step == steps:
            stats.update(step=step, pixel=pixel.item(), vq=vq_loss.item(), seconds=round(time.perf_counter() - t0, 1))
            log(f"vq step {step}/{steps}: pixel {stats['pixel']:.4f} vq {stats['vq']:.4f} ({stats['seconds']} s)")
    vq.eval().requires_grad_(False)
    return stats


@torch.no_grad()
def encode(vq, images: np.ndarray, batch: int = 512) -> torch.Tensor:
    """Image tokens (n, tokens) of uint8 renders, on the VQ model's device."""
    device = vq.quant_conv.weight.device
    return torch.cat([quantize(vq, to_pixels(images[i : i + batch], device))[0] for i in range(0, len(images), batch)])


@torch.no_grad()
def decode(vq, tokens: torch.Tensor) -> np.ndarray:
    """uint8 images from image tokens, by the path the backbone decodes with (codebook entry, decoder)."""
    pixels = vq.decode(tokens).float().clamp(-1, 1)
    return ((pixels + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
