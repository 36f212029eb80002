"""Train the language model of janus-shapes on Janus-Pro's two generation tasks.

The rows are made by the backbone's own prompt code (JanusBackbone._chat and
_image_prompt), so training sees exactly the token ids that generation feeds:
- reasoning rows: the chat asking REASONING_INSTRUCTION about the prompt, then
  " {reasoning}" and EOS; loss through `lm_head`;
- image rows: the chat "{prompt}. {reasoning}" ending in BOI, then the VQ
  tokens of the render, fed through `prepare_embeddings_for_image_generation`,
  loss through `generation_head`. A share UNCOND of them use the unconditional
  prompt (pads except BOS/BOI) that classifier-free guidance runs beside the
  conditional one, so the guidance has something to contrast with.
Rows are left-padded, with positions counted from the attention mask, as the
backbone decodes them; reasoning rows are padded to their own (much shorter)
length and run apart from the image rows, so no step spends compute on pads.
Given question pairs (understanding.py), each step also trains the
understanding branch (vision tower, aligner, decoder, lm_head) on a batch of
them and of their images' captions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .backbone import image_text

if TYPE_CHECKING:
    from .understanding import Pairs

UNCOND = 0.1
IGNORE = -100


@dataclass
class Rows:
    """Left-padded training rows: `ids` hold text ids, or image codes where `image` is set;
    `labels[p]` is the token that position p must predict (IGNORE where none)."""

    ids: torch.Tensor
    image: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    uncond: torch.Tensor | None = None  # image rows: the unconditional prompt's ids, same layout

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device) -> Rows:
        parts = (self.ids, self.image, self.mask, self.labels, self.uncond)
        return Rows(*(None if t is None else t.to(device) for t in parts))


def left_pad(seqs: list[list[int]], length: int, value: int = 0) -> torch.Tensor:
    """(len(seqs), length) ids, each row right-aligned (numpy: a nested list is slow to convert)."""
    out = np.full((len(seqs), length), value, dtype=np.int64)
    for row, seq in zip(out, seqs):
        if seq:
            row[length - len(seq) :] = seq
    return torch.from_numpy(out)


def _rows(prompts: list[list[int]], targets: list[list[int]], image: bool, length: int = 0) -> Rows:
    """Rows of prompt + target, left-padded to `length` (at least the longest row)."""
    length = max(length, max(len(p) + len(t) - 1 for p, t in zip(prompts, targets)))
    ids = [p + t[:-1] for p, t in zip(prompts, targets)]  # the last target is predicted, never fed
    labels = [[IGNORE] * (len(p) - 1) + t for p, t in zip(prompts, targets)]
    flags = [[0] * len(p) + [int(image)] * (len(t) - 1) for p, t in zip(prompts, targets)]
    return Rows(
        left_pad(ids, length),
        left_pad(flags, length).bool(),
        left_pad([[1] * len(s) for s in ids], length),
        left_pad(labels, length, IGNORE),
    )


def _unpadded(batch) -> list[list[int]]:
    """The ids of each row of (ids, attention mask) without the padding."""
    ids, mask = (t.cpu() for t in batch)
    return [row[keep.bool()].tolist() for row, keep in zip(ids, mask)]


def build_rows(backbone, records, reasoning: list[str], image_tokens: torch.Tensor) -> tuple[Rows, Rows]:
    """(reasoning rows, image rows), one of each per example."""
    tok = backbone.tokenizer
    # one batched call per chat kind (per-prompt calls cost minutes on 32,000 examples); the
    # padding is stripped again, so each row holds exactly the ids a lone prompt gets
    prompts = list(dict.fromkeys(r.prompt for r in records))
    chat = backbone._chat([backbone.instruction.format(prompt=p) for p in prompts], "text")
    text_prompt = dict(zip(prompts, _unpadded((chat["input_ids"], chat["attention_mask"]))))
    rows = _unpadded(backbone._image_prompt([image_text(r.prompt, t) for r, t in zip(records, reasoning)]))
    cond, uncond = rows[: len(records)], rows[len(records) :]
    answers = tok([" " + r for r in reasoning], add_special_tokens=False)["input_ids"]
    text_prompts = [text_prompt[r.prompt] for r in records]
    text_targets = [a + [tok.eos_token_id] for a in answers]
    codes = image_tokens.cpu().tolist()
    image = _rows(cond, codes, True)
    image.uncond = _rows(uncond, codes, True, image.ids.shape[1]).ids
    return _rows(text_prompts, text_targets, False), image


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy, accuracy) over the labelled positions. Every position goes through the head
    and the rest are ignored, rather than gathering the labelled ones, which would make the GPU
    report their number to the CPU at every step."""
    logits = logits.float()
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    labelled = labels != IGNORE
    return loss, ((logits.argmax(-1) == labels) & labelled).sum() / labelled.sum()


def row_loss(model, ids, image, mask, labels, head) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, token accuracy) of a batch of rows whose labels `head` predicts (lm_head for
    reasoning rows, generation_head for image rows)."""
    lm = model.model.language_model
    embeds = torch.where(
        image[..., None],
        model.prepare_embeddings_for_image_generation(ids * image),
        lm.embed_tokens(ids * ~image),
    )
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    hidden = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).last_hidden_state
    return token_loss(head(hidden), labels)


def trainable(model, understanding: bool = False) -> list[torch.nn.Parameter]:
    """The decoder, its embeddings and heads (and with `understanding` the vision tower and its
    aligner); the VQ model stays as it is."""
    model.requires_grad_(False)
    parts = (
        model.model.language_model,
        model.lm_head,
        model.model.generation_embeddings,
        model.model.generation_aligner,
        model.model.generation_head,
    ) + ((model.model.vision_model, model.model.aligner) if understanding else ())
    for part in parts:
        part.requires_grad_(True)
    return list({id(p): p for part in parts for p in part.parameters()}.values())  # lm_head is tied


def train_lm(
    model,
    text: Rows,
    image: Rows,
    steps: int,
    batch: int = 256,
    lr: float = 6e-4,
    seed: int = 0,
    snapshots: tuple[int, ...] = (),
    on_snapshot: Callable[[int, dict], None] = lambda step, stats: None,
    seconds: float | None = None,
    log: Callable[[str], None] = print,
    pairs: Pairs | None = None,
    pair_batch: int = 64,
) -> dict:
    """Train with a constant learning rate after warmup, so the snapshot at step s is the model
    that `steps=s` trains. Half of each batch is reasoning rows, half image rows, plus pair_batch
    question pairs (both questions about each of pair_batch / 2 prompts) and as many captions of
    their images when `pairs` are given. Stops early (with a last snapshot) once `seconds` have
    passed."""
    from .understanding import understanding_loss

    device = next(model.parameters()).device
    params = trainable(model, understanding=pairs is not None)
    model.train()
    # one fused kernel for the whole update: the model is small, so per-tensor launches add up
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.05, fused=device.type == "cuda")
    warmup = min(200, max(1, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    gen = torch.Generator(device=device).manual_seed(seed)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    half = batch // 2
    t0, stats = time.perf_counter(), {}
    for step in range(1, steps + 1):
        ti = torch.randint(len(text), (batch - half,), device=device, generator=gen)
        ii = torch.randint(len(image), (half,), device=device, generator=gen)
        drop = torch.rand(half, device=device, generator=gen) < UNCOND
        image_ids = torch.where(drop[:, None], image.uncond[ii], image.ids[ii])
        acc = {}
        with autocast:
            text_loss, acc["text"] = row_loss(
                model, text.ids[ti], text.image[ti], text.mask[ti], text.labels[ti], model.lm_head
            )
            image_loss, acc["image"] = row_loss(
                model, image_ids, image.image[ii], image.mask[ii], image.labels[ii], model.model.generation_head
            )
            loss = text_loss + image_loss
            if pairs is not None:
                pi = 2 * torch.randint(len(pairs) // 2, (pair_batch // 2,), device=device, generator=gen)
                pi = torch.cat([pi, pi + 1])  # both questions about each prompt (understanding.draw_pairs)
                understood = understanding_loss(model, pairs, pi)
                loss = loss + understood["answer_loss"] + understood["description_loss"] + understood["caption_loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        over = seconds is not None and time.perf_counter() - t0 > seconds
        if step % 100 == 0 or step in snapshots or step == steps or over:
            stats = {
                "step": step,
                "text_loss": round(text_loss.item(), 4),
                "image_loss": round(image_loss.item(), 4),
                "text_accuracy": round(acc["text"].item(), 4),
                "image_accuracy": round(acc["image"].item(), 4),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            if pairs is not None:
                stats.update({k: round(v.item(), 4) for k, v in understood.items()})
            log("lm " + " ".join(f"{k} {v}" for k, v in stats.items()))
        if step in snapshots or over:
            model.eval()
            on_snapshot(step, dict(stats))
            model.train()
        if over:
            log(f"lm: stopped at step {step} of {steps}: the {seconds} s budget is spent")
            break
    model.eval().requires_grad_(False)
    return stats
