"""P(yes) from BLIP VQA through transformers, as T2I-CompBench computes it.

T2I-CompBench (BLIPvqa_eval/models/blip_vqa.py `vqa_prob`, BLIP/data/utils.py
`pre_question`) runs Salesforce's BLIP: the question, cleaned and lower-cased,
is encoded against the image with [ENC] in place of [CLS]; the answer decoder
starts from [DEC] (BOS); the score is P(yes) / (P(yes) + P(no)) from the
softmax over the FIRST answer token. transformers' BlipForQuestionAnswering
holds the same three modules; its own `generate` keeps [CLS], so milr calls the
modules directly to feed [ENC] as the checkpoints were trained.

The T2I-CompBench checkpoint `model_base_vqa_capfilt_large.pth` (run at 480 px)
is on the hub as `Salesforce/blip-vqa-capfilt-large`, converted at 384 px; it
is used at the converted checkpoint's own input size.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import torch

from milr_core.hardware import pick_device

from .weights import choose, load_transformers

if TYPE_CHECKING:
    from PIL.Image import Image

REQUIRES = ("transformers>=5.24",)
MAX_QUESTION_TOKENS = 35  # blip_vqa.py: tokenizer(..., truncation=True, max_length=35)
MAX_QUESTION_WORDS = 50  # vqa.yaml / pre_question: max_ques_words


def pre_question(question: str) -> str:
    """BLIP's question cleaning: lower-case, drop . ! " ( ) * # : ; ~ and trailing spaces, keep 50 words."""
    question = re.sub(r"([.!\"()*#:;~])", "", question.lower()).rstrip(" ")
    return " ".join(question.split(" ")[:MAX_QUESTION_WORDS])


class BlipYesNo:
    """Batched P(yes) for (image, yes/no question) pairs."""

    def __init__(self, model: Any, processor: Any, batch_size: int = 32):
        self.model, self.processor, self.batch_size = model, processor, batch_size
        tokenizer = processor.tokenizer
        self.yes, self.no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
        self.bos = model.config.text_config.bos_token_id
        # BLIP's vocabulary is BERT's plus [DEC] (the BOS) and then [ENC]
        vocab = tokenizer.get_vocab()
        self.enc = vocab["[ENC]"] if "[ENC]" in vocab else self.bos + 1

    @classmethod
    def load(cls, name: str | None, env: str, default: str, device: str | None = None,
             dtype: torch.dtype = torch.float32, **kwargs: Any) -> BlipYesNo:  # fmt: skip
        from transformers import BlipForQuestionAnswering, BlipProcessor

        name = choose(name, env, default)
        model = load_transformers(BlipForQuestionAnswering, name, env, default, dtype=dtype)
        processor = load_transformers(BlipProcessor, name, env, default)
        return cls(model.to(pick_device(device)).eval(), processor, **kwargs)

    @torch.inference_mode()
    def p_yes(self, images: list[Image], questions: list[list[str]]) -> list[list[float]]:
        """questions[i] asked about images[i]; each image is encoded once."""
        device, dtype = self.model.device, self.model.dtype
        image_embeds = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            pixels = self.processor.image_processor(batch, return_tensors="pt")["pixel_values"]
            image_embeds.append(self.model.vision_model(pixel_values=pixels.to(device, dtype)).last_hidden_state)
        embeds = torch.cat(image_embeds) if image_embeds else None
        pairs = [(i, pre_question(q)) for i, qs in enumerate(questions) for q in qs]
        # transformers 5.24's BlipTextLayer drops the cross-attention mask, so the answer decoder would
        # attend to a padded question's pad tokens: batch only questions of one token length (no padding).
        by_length: dict[int, list[int]] = {}
        for k, (_, q) in enumerate(pairs):
            by_length.setdefault(len(self._tokens([q])["input_ids"][0]), []).append(k)
        probs = [0.0] * len(pairs)
        for group in by_length.values():
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                values = self._answer(embeds[[pairs[k][0] for k in chunk]], [pairs[k][1] for k in chunk])
                for k, value in zip(chunk, values):
                    probs[k] = value
        answers = iter(probs)
        return [[next(answers) for _ in qs] for qs in questions]

    def _tokens(self, questions: list[str]) -> Any:
        return self.processor.tokenizer(questions, padding="longest", truncation=True,
                                        max_length=MAX_QUESTION_TOKENS, return_tensors="pt")  # fmt: skip

    def _answer(self, image_embeds: torch.Tensor, questions: list[str]) -> list[float]:
        text = self._tokens(questions)
        ids, mask = text["input_ids"].to(self.model.device), text["attention_mask"].to(self.model.device)
        ids[:, 0] = self.enc
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=ids.device)
        question = self.model.text_encoder(
            input_ids=ids, attention_mask=mask, encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask
        ).last_hidden_state
        start = torch.full((len(questions), 1), self.bos, dtype=torch.long, device=ids.device)
        logits = self.model.text_decoder(
            input_ids=start, encoder_hidden_states=question, encoder_attention_mask=mask
        ).logits[:, 0]
        probs = logits.float().softmax(-1)
        return (probs[:, self.yes] / (probs[:, self.yes] + probs[:, self.no])).tolist()
