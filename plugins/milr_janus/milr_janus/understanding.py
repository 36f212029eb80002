"""Train the understanding branch of a small Janus to answer the self critic's question.

The question is SelfCritic's ("Does this image match the description: ...?
Answer yes or no."), put through the processor exactly as the critic puts it,
and the target is the first answer token. Pairs:
- a prompt with its own example's image: a match, "yes";
- a prompt with the image of another example of the same tag: labelled by the
  world's rules on that image's scene geometry (world.truth), so mostly "no",
  and "yes" where the other scene happens to satisfy the prompt as well.
Same-tag pairs are near misses (a colour, a count, a relation apart), the
mistakes generation makes. The images are the VQ model's reconstructions of the
renders, which carry its artefacts as drawn images do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .self_critic import DEFAULT_QUESTION, NO, YES, answer_token_ids


@dataclass
class Pairs:
    """Left-padded question rows with their images and the answer token each must predict."""

    ids: torch.Tensor
    mask: torch.Tensor
    pixels: torch.Tensor
    match: torch.Tensor  # (n,) bool: the answer is "yes"
    choices: torch.Tensor  # (2,) the token ids of "no" and "yes"

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device) -> Pairs:
        return Pairs(*(t.to(device) for t in (self.ids, self.mask, self.pixels, self.match, self.choices)))


def draw_pairs(world, examples, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prompt example, image example, match) index arrays of n pairs, half of them own images."""
    rng = np.random.default_rng(seed)
    by_tag: dict[str, list[int]] = {}
    for i, record in enumerate(examples.records):
        by_tag.setdefault(record.tag, []).append(i)
    prompts = rng.integers(len(examples), size=n)
    images = prompts.copy()
    for k in range(0, n, 2):  # odd k keep their own image
        same = by_tag[examples.records[prompts[k]].tag]
        images[k] = same[int(rng.integers(len(same)))]
    match = np.array([
        p == i or world.truth(examples.records[p], examples.scenes[i], world.image_size).correct
        for p, i in zip(prompts, images)
    ])
    return prompts, images, match


def build_pairs(processor, prompts: list[str], images: np.ndarray, match: np.ndarray, batch: int = 1024) -> Pairs:
    """Rows for prompt i and uint8 image i, answer "yes" where match[i]."""
    from PIL import Image

    choices = [answer_token_ids(processor.tokenizer, words)[0] for words in (NO, YES)]
    parts = []
    for start in range(0, len(prompts), batch):
        texts = [
            processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": DEFAULT_QUESTION.format(prompt=p)}]}],
                add_generation_prompt=True,
            )
            for p in prompts[start : start + batch]
        ]
        pil = [Image.fromarray(image) for image in images[start : start + batch]]
        parts.append(processor(text=texts, images=pil, padding=True, padding_side="left", return_tensors="pt"))
    length = max(p["input_ids"].shape[1] for p in parts)

    def left_pad(t: torch.Tensor, value: int) -> torch.Tensor:
        return F.pad(t, (length - t.shape[1], 0), value=value)

    pad = processor.tokenizer.pad_token_id
    return Pairs(
        torch.cat([left_pad(p["input_ids"], pad) for p in parts]),
        torch.cat([left_pad(p["attention_mask"], 0) for p in parts]),
        torch.cat([p["pixel_values"] for p in parts]).to(torch.bfloat16),
        torch.as_tensor(match, dtype=torch.bool),
        torch.tensor(choices),
    )


def pair_loss(model, ids, mask, pixels, match, choices) -> tuple[torch.Tensor, float]:
    """(cross-entropy of the answer token, accuracy of yes against no), by the self critic's forward pass."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=ids, pixel_values=pixels.to(model.dtype), attention_mask=mask, position_ids=positions,
        logits_to_keep=1, use_cache=False,
    ).logits[:, -1].float()
    loss = F.cross_entropy(logits, choices[match.long()])
    accuracy = float((logits[:, choices].argmax(-1) == match.long()).float().mean())
    return loss, accuracy
