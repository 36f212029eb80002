"""Train the understanding branch of a small Janus to answer the self critic's question.

The question is SelfCritic's ("Does this image match the description: ...?
Answer yes or no."), in the chat the critic sends, and the target is the first
answer token. Pairs:
- a prompt with its own example's image: a match, "yes" (half of the pairs);
- a prompt with the image of any other example (a quarter): easy negatives,
  mostly of another tag, where a missing shape or colour gives the answer away;
- a prompt with the image of another example of the same tag (a quarter): near
  misses (a colour, a count, a relation apart), the mistakes generation makes.
Negatives are labelled by the world's rules on the other scene's geometry
(world.truth), so "yes" where that scene happens to satisfy the prompt too.

One bit per question is too little for a fresh vision tower: trained on the
questions alone, the answer loss stayed at ln 2 and P(yes) followed the prompt
only (docs/research.md). So every image is also captioned: "Describe this
image." answered with the scene's reasoning text (its objects, colours, sizes
and places), a teacher-forced loss on every word that the vision tower and
aligner can lower only by encoding the scene.

The images are the VQ model's reconstructions of the renders, which carry its
artefacts as drawn images do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers.models.janus.processing_janus import DEFAULT_SYSTEM_PROMPT

from .self_critic import DEFAULT_QUESTION, NO, YES, answer_token_ids
from .shapes_lm import IGNORE, left_pad, token_loss
from .shapes_vq import to_pixels

CAPTION_QUESTION = "Describe this image."


@dataclass
class Pairs:
    """Per image: a left-padded question row (with the labels of its text after the image), a
    left-padded caption row (with its labels) and the answer token the question must predict."""

    ids: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    caption_ids: torch.Tensor
    caption_mask: torch.Tensor
    caption_labels: torch.Tensor
    images: torch.Tensor  # (n, h, w, 3) uint8, turned into pixel values per batch
    match: torch.Tensor  # (n,) bool: the answer is "yes"
    choices: torch.Tensor  # (2,) the token ids of "no" and "yes"

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device) -> Pairs:
        return Pairs(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def draw_pairs(world, examples, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prompt example, image example, match) index arrays of n pairs: half own images, a quarter
    any other example's, a quarter another of the same tag. Pairs 2j and 2j + 1 ask about the same
    prompt, 2j with another image and 2j + 1 with its own, and are trained together: a prior over
    prompts then lowers the loss of neither, only the image can."""
    rng = np.random.default_rng(seed)
    by_tag: dict[str, list[int]] = {}
    for i, record in enumerate(examples.records):
        by_tag.setdefault(record.tag, []).append(i)
    prompts = np.repeat(rng.integers(len(examples), size=-(-n // 2)), 2)[:n]  # pairs 2j, 2j + 1 share a prompt
    images = prompts.copy()
    for k in range(0, n, 2):  # odd k keep their own image
        pool = by_tag[examples.records[prompts[k]].tag] if k % 4 else range(len(examples))
        images[k] = pool[int(rng.integers(len(pool)))]
    match = np.array([
        p == i or world.truth(examples.records[p], examples.scenes[i], world.image_size).correct
        for p, i in zip(prompts, images)
    ])
    return prompts, images, match


def _chat_ids(processor, questions: list[str]) -> list[list[int]]:
    """The ids the processor gives each question chat with one image: the chats are tokenized
    with the single placeholder, which is then widened to the image's tokens, as the processor
    does (checked on the first question) but without its slow per-image work."""
    from PIL import Image

    def chat(question: str) -> str:
        content = [{"type": "image"}, {"type": "text", "text": question}]
        return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)

    mark = "\x00"  # rendering the template once, not once per question, saves most of the time
    head, tail = chat(mark).split(mark)
    chats = [head + q + tail for q in questions]
    tok = processor.tokenizer
    placeholder = tok.convert_tokens_to_ids(processor.image_token)
    image = tok(processor.replace_image_token({}, 0), add_special_tokens=False)["input_ids"]
    ids = [
        [t for i in row for t in (image if i == placeholder else (i,))]
        for row in tok([DEFAULT_SYSTEM_PROMPT + c for c in chats])["input_ids"]
    ]
    size = processor.image_processor.size["height"]
    reference = processor(text=[chat(questions[0])], images=[Image.new("RGB", (size, size))])["input_ids"][0]
    if list(reference) != ids[0]:
        raise RuntimeError("the processor's chat ids changed: update understanding._chat_ids")
    return ids


def build_pairs(processor, prompts: list[str], captions: list[str], images: np.ndarray, match: np.ndarray) -> Pairs:
    """Rows for prompt i against uint8 image i (answer "yes" where match[i]), and image i's
    caption rows (captions[i] describes image i)."""
    tok = processor.tokenizer
    choices = [answer_token_ids(tok, words)[0] for words in (NO, YES)]
    questions = _chat_ids(processor, [DEFAULT_QUESTION.format(prompt=p) for p in prompts])
    asks = _chat_ids(processor, [CAPTION_QUESTION])[0]
    answers = tok([" " + c for c in captions], add_special_tokens=False)["input_ids"]
    fed = [asks + a for a in answers]  # the EOS after the caption is predicted, never fed
    labels = [[IGNORE] * (len(asks) - 1) + a + [tok.eos_token_id] for a in answers]
    # Where the image matches, the question's text after it is a description of the image too,
    # so it is also predicted word by word: the prompt's words become expected (or surprising)
    # given the image at the very positions the answer reads.
    end = tok.convert_tokens_to_ids(processor.image_end_token)
    described = [
        [IGNORE] * q.index(end) + (q[q.index(end) + 1 :] + [IGNORE] if m else [IGNORE] * (len(q) - q.index(end)))
        for q, m in zip(questions, match)
    ]
    q_len, c_len = max(map(len, questions)), max(map(len, fed))
    return Pairs(
        left_pad(questions, q_len, tok.pad_token_id),
        left_pad([[1] * len(q) for q in questions], q_len, 0),
        left_pad(described, q_len, IGNORE),
        left_pad(fed, c_len, tok.pad_token_id),
        left_pad([[1] * len(f) for f in fed], c_len, 0),
        left_pad(labels, c_len, IGNORE),
        torch.as_tensor(images),
        torch.as_tensor(match, dtype=torch.bool),
        torch.tensor(choices),
    )


def _hidden(model, ids, mask, pixels) -> torch.Tensor:
    """Last hidden states of image chats, by the self critic's forward pass (positions follow the mask)."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return model.model(
        input_ids=ids, pixel_values=pixels, attention_mask=mask, position_ids=positions, use_cache=False
    ).last_hidden_state


def understanding_loss(model, pairs: Pairs, index: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropies of the answer, of the matching questions' text and of the captions, and
    the answer accuracy, of the pairs at `index`."""
    pixels = to_pixels(pairs.images[index], pairs.images.device).to(model.dtype)
    match = pairs.match[index].long()
    logits = model.lm_head(_hidden(model, pairs.ids[index], pairs.mask[index], pixels))
    last = logits[:, -1].float()
    described, _ = token_loss(logits, pairs.labels[index])
    hidden = _hidden(model, pairs.caption_ids[index], pairs.caption_mask[index], pixels)
    caption, _ = token_loss(model.lm_head(hidden), pairs.caption_labels[index])
    return {
        "answer_loss": F.cross_entropy(last, pairs.choices[match]),  # over the vocabulary: all mass on the answers
        "description_loss": described,
        "caption_loss": caption,
        "answer_accuracy": (last[:, pairs.choices].argmax(-1) == match).float().mean(),
    }
