"""The Self critic: the backbone's own understanding branch judges its image.

Each image goes into a Janus chat with a yes/no question about the prompt; the
reward is the model's probability of answering "yes" rather than "no" at the
first answer position, read from one batched forward pass (no generation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from milr_core.interfaces import Critic, PromptRecord, Score

if TYPE_CHECKING:
    from PIL.Image import Image
    from transformers import JanusForConditionalGeneration, JanusProcessor

DEFAULT_QUESTION = "Does this image match the description: {prompt}? Answer yes or no."
YES = ("yes", "Yes")
NO = ("no", "No")


def answer_token_ids(tokenizer: Any, words: tuple[str, ...]) -> list[int]:
    """Ids of the single-token spellings of `words`, bare and after a space.

    The answer follows "<|Assistant|>:", so a byte-level BPE (Janus-Pro's) writes
    it as " Yes"; other tokenizers as "Yes". Spellings that need several tokens
    are skipped: their first token ("y", "n") says little about the answer.
    """
    ids: list[int] = []
    for word in words:
        for spelling in (word, " " + word):
            encoded = tokenizer.encode(spelling, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in ids:
                ids.append(encoded[0])
    return ids


class SelfCritic(Critic):
    """Reward = P(yes) / (P(yes) + P(no)) for "does this image match the prompt?".

    P(yes) is the next-token probability summed over the yes-tokens ("yes",
    "Yes", with and without a leading space, those that are single tokens),
    P(no) likewise; renormalising over the two answers makes the value a
    proper probability in [0, 1] however much mass the model puts elsewhere.
    That remaining share is reported in the detail as the answer mass.
    """

    name = "self"

    def __init__(
        self,
        model: JanusForConditionalGeneration,
        processor: JanusProcessor,
        question: str = DEFAULT_QUESTION,
        batch_size: int | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.question = question
        #: images per forward pass; None puts all images of a call in one pass.
        self.batch_size = batch_size
        self.yes_ids = answer_token_ids(processor.tokenizer, YES)
        self.no_ids = answer_token_ids(processor.tokenizer, NO)
        if not self.yes_ids or not self.no_ids:
            raise ValueError(f"the tokenizer has no single-token spelling of {YES} or of {NO}")

    @classmethod
    def from_backbone(cls, backbone: Any, **kwargs: Any) -> SelfCritic:
        """The critic for a loaded backbone (anything with `.model` and `.processor`)."""
        return cls(backbone.model, backbone.processor, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        return self.judge(images, [self.question.format(prompt=record.prompt)] * len(images))

    def judge(self, images: list[Image], questions: list[str]) -> list[Score]:
        """Score image i against question i (any mix of lengths: rows are left-padded)."""
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        step = self.batch_size or max(len(images), 1)
        scores: list[Score] = []
        for start in range(0, len(images), step):
            scores.extend(self._judge_batch(images[start : start + step], questions[start : start + step]))
        return scores

    @torch.inference_mode()
    def _judge_batch(self, images: list[Image], questions: list[str]) -> list[Score]:
        if not images:
            return []
        texts = [
            self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
                add_generation_prompt=True,
            )
            for question in questions
        ]
        inputs = self.processor(
            text=texts,
            images=[image.convert("RGB") for image in images],
            padding=True,
            padding_side="left",
            return_tensors="pt",
        )
        mask = inputs["attention_mask"].to(self.device)
        # Positions count real tokens only, so a left-padded row sees the same
        # positions as it would alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(
            input_ids=inputs["input_ids"].to(self.device),
            pixel_values=inputs["pixel_values"].to(self.device, self.dtype),
            attention_mask=mask,
            position_ids=positions,
            logits_to_keep=1,
            use_cache=False,
        ).logits[:, -1].float()
        log_probs = logits.log_softmax(-1)
        log_yes = log_probs[:, self.yes_ids].logsumexp(-1)
        log_no = log_probs[:, self.no_ids].logsumexp(-1)
        p_yes = torch.sigmoid(log_yes - log_no).cpu().tolist()
        mass = torch.logaddexp(log_yes, log_no).exp().cpu().tolist()
        return [Score(value=p, detail=f"P(yes)={p:.2f} (answer mass {m:.2f})") for p, m in zip(p_yes, mass)]
