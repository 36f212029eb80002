"""Random-weight models of the critics' architectures, built from configs (no download).

For tests (`small=True`: tiny widths and depths, 64 px inputs) and for speed
benchmarks (`small=False`: the published architectures at full size, with the
published input sizes). The tokenizers are WordPiece tokenizers laid out like
BERT's uncased vocabulary at the ids the models hard-code (specials 0/100-103,
"." 1012, "?" 1029, "no" 2053, "yes" 2748, BLIP's [DEC] 30522 and [ENC] 30523),
with single letters as the fallback for any other word.
"""

from __future__ import annotations

import functools
import json
import string
import tempfile
from pathlib import Path
from typing import Any

from .geneval_oracle import CLASSES

BERT_VOCAB = 30522
# ids of bert-base-uncased's vocab.txt that models or evaluators depend on
BERT_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029,
            "no": 2053, "yes": 2748}  # fmt: skip
SMALL_IMAGE = 64  # input side of the small models

# Whole-word tokens for the prompt words the tests and benchmarks use; anything else is spelled.
WORDS = sorted({w for name in CLASSES for w in name.split()} | {
    "a", "an", "the", "is", "of", "photo", "color", "what", "red", "orange", "yellow", "green", "blue", "purple",
    "pink", "brown", "black", "white", "left", "right", "on", "top", "near", "next", "to", "and", "with",
})  # fmt: skip


@functools.lru_cache(maxsize=2)
def bert_tokenizer(blip: bool = False) -> Any:
    """A BertTokenizerFast with BERT's special ids; `blip` appends BLIP's [DEC] (its bos) and [ENC]."""
    from transformers import BertTokenizerFast

    vocab = [f"[unused{i}]" for i in range(BERT_VOCAB)]
    for token, index in BERT_IDS.items():
        vocab[index] = token
    spare = (i for i in range(1100, BERT_VOCAB) if vocab[i].startswith("[unused"))
    extra = [*WORDS, *string.ascii_lowercase, *string.digits, *string.punctuation,
             *(f"##{c}" for c in string.ascii_lowercase + string.digits)]  # fmt: skip
    for token in dict.fromkeys(extra):
        if token not in BERT_IDS:
            vocab[next(spare)] = token
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    if blip:
        tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    return tokenizer


def mask2former(small: bool = True) -> tuple[Any, Any]:
    """(model, processor): Mask2Former Swin-S with COCO's 80 labels, or a tiny one."""
    import torch
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

    from .geneval_oracle import geneval_processor

    # transformers' default Mask2FormerConfig is the Swin-S COCO model (100 queries, 256 wide)
    labels = {i: name for i, name in enumerate(CLASSES)}
    kwargs: dict[str, Any] = dict(id2label=labels, label2id={n: i for i, n in labels.items()})
    size = None
    if small:
        kwargs.update(
            backbone_config=dict(model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                                 window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"]),
            feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=64, dim_feedforward=64,
            encoder_layers=1, decoder_layers=2, num_attention_heads=2, num_queries=12,
        )  # fmt: skip
        size = {"shortest_edge": SMALL_IMAGE, "longest_edge": SMALL_IMAGE}
    torch.manual_seed(0)
    model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**kwargs)).eval()
    return model, geneval_processor(size)


def grounding_dino(small: bool = True) -> tuple[Any, Any]:
    """(model, processor): GroundingDINO with a Swin-B image backbone (grounding-dino-base), or a tiny one."""
    import torch
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    if small:
        config = GroundingDinoConfig(
            backbone_config=dict(model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                                 window_size=4, out_features=["stage2", "stage3", "stage4"]),
            text_config=dict(model_type="bert", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64),
            # d_model 64: its GroupNorms (32 groups) need 2 values per group on a 1x1 top level; two
            # decoder layers: the box heads of later layers are tied to the first one's
            d_model=64, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
            encoder_attention_heads=2, decoder_attention_heads=2, num_queries=30,
        )  # fmt: skip
        image_processor = GroundingDinoImageProcessor(size={"shortest_edge": SMALL_IMAGE, "longest_edge": SMALL_IMAGE})
    else:  # IDEA-Research/grounding-dino-base: Swin-B at 384 px, BERT-base text encoder
        config = GroundingDinoConfig(
            backbone_config=dict(model_type="swin", embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                                 window_size=12, image_size=384, out_features=["stage2", "stage3", "stage4"]),
        )  # fmt: skip
        image_processor = GroundingDinoImageProcessor()  # shorter side 800, longer at most 1333
    torch.manual_seed(0)
    model = GroundingDinoForObjectDetection(config).eval()
    return model, GroundingDinoProcessor(image_processor=image_processor, tokenizer=bert_tokenizer())


def dpt(small: bool = True) -> tuple[Any, Any]:
    """(model, processor): DPT depth estimation, a tiny ViT one or one of DPT-hybrid MiDaS's size (BiT + ViT-B)."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    if small:
        config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                           image_size=SMALL_IMAGE, patch_size=16, backbone_out_indices=[0, 1, 2, 3],
                           neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16)  # fmt: skip
    else:  # Intel/dpt-hybrid-midas
        config = DPTConfig(is_hybrid=True, image_size=384, backbone_out_indices=[2, 5, 8, 11],
                           neck_hidden_sizes=[256, 512, 768, 768], fusion_hidden_size=256)  # fmt: skip
    return DPTForDepthEstimation(config).eval(), DPTImageProcessor(size={"height": SMALL_IMAGE, "width": SMALL_IMAGE})


def blip_vqa(small: bool = True) -> tuple[Any, Any]:
    """(model, processor): BLIP VQA with ViT-B/16 at 384 px and BERT-base (blip-vqa-base), or a tiny one."""
    import torch
    from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    tokenizer = bert_tokenizer(blip=True)
    text = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, sep_token_id=102, pad_token_id=0)
    if small:
        side = SMALL_IMAGE
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      image_size=side, patch_size=16)  # fmt: skip
        text.update(hidden_size=32, encoder_hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                    num_attention_heads=2)  # fmt: skip
    else:
        side, vision = 384, {}  # BlipConfig's defaults are the base model
    torch.manual_seed(0)
    model = BlipForQuestionAnswering(BlipConfig(text_config=text, vision_config=vision)).eval()
    image_processor = BlipImageProcessor(size={"height": side, "width": side})
    return model, BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


SMALL_CLIP = "milr-tiny-clip"


def open_clip(arch: str | None = None) -> tuple[Any, Any, Any]:
    """(model, preprocess, tokenizer) of an open_clip architecture with random weights; None: a tiny one."""
    import open_clip as oc
    import torch

    if arch is None:
        arch = SMALL_CLIP
        if arch not in oc.list_models():
            config = {
                "embed_dim": 32,
                "vision_cfg": {"image_size": SMALL_IMAGE, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
            }
            # open_clip rescans its config paths later, so the file must outlive this call
            path = Path(tempfile.gettempdir()) / "milr-open-clip" / f"{arch}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(config))
            oc.add_model_config(path)
    torch.manual_seed(0)
    model, _, preprocess = oc.create_model_and_transforms(arch, pretrained=None)
    return model.eval(), preprocess, oc.get_tokenizer(arch)
