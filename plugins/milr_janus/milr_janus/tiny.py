"""A tiny random-weight Janus checkpoint, built from configs in about a second.

Tests (and anyone without the real weights) load it exactly like Janus-Pro:
`JanusForConditionalGeneration.from_pretrained(path)` and
`JanusProcessor.from_pretrained(path)`. Nothing is downloaded: the tokenizer is
a byte-level BPE trained in-process on a fixed built-in text, and the weights
come from the model's own initialisation under a fixed seed.

The layout mirrors Janus-Pro where it matters to milr: the same special tokens
(`<｜begin▁of▁sentence｜>`, `<|User|>`, `<image_placeholder>`, `<begin_of_image>`, ...),
the same chat format, BOS added by the tokenizer, CFG settings in the
generation config (`guidance_scale`, `pad_token_id`, `generation_kwargs.boi_token_id`)
and an image of `(image_size / patch_size) ** 2` VQ tokens.
"""

from __future__ import annotations

import math
from pathlib import Path

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
UNK = "<unk>"
USER = "<|User|>"
ASSISTANT = "<|Assistant|>"
IMAGE = "<image_placeholder>"
BOI = "<begin_of_image>"
EOI = "<end_of_image>"
SPECIAL_TOKENS = (BOS, EOS, PAD, UNK, USER, ASSISTANT, IMAGE, BOI, EOI)

# The Janus-Pro conversation format, as transformers' Janus conversion renders it:
#   "<|User|>: <image_placeholder>\n{text}\n\n<|Assistant|>:"
# User turns end with a blank line, assistant turns with EOS; a generation prompt
# is the bare assistant tag (the answer follows after a space, image tokens after
# `<begin_of_image>`, which the processor appends in image mode). Unlike the
# converted template it also accepts plain-string message content.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set role = message['role'] | lower -%}"
    "{%- if role == 'user' -%}{{ '" + USER + ": ' }}"
    "{%- elif role == 'assistant' -%}{{ '" + ASSISTANT + ":' }}"
    "{%- if not (loop.last and not add_generation_prompt and message['content'] in ('', [])) -%}"
    "{{ ' ' }}"
    "{%- endif -%}"
    "{%- else -%}{{ message['role'] | capitalize }}{{ ': ' }}"
    "{%- endif -%}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] | trim }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}"
    "{%- if not loop.first -%}{{ '\\n' }}{%- endif -%}"
    "{{ '" + IMAGE + "' }}"
    "{%- if not loop.last -%}{{ '\\n' }}{%- endif -%}"
    "{%- elif part['type'] == 'text' -%}"
    "{%- set text = part['text'] -%}"
    "{%- if loop.first -%}{%- set text = text.lstrip() -%}{%- endif -%}"
    "{%- if loop.last -%}{%- set text = text.rstrip() -%}{%- endif -%}"
    "{%- if not loop.first and message['content'][loop.index0 - 1]['type'] == 'text' -%}{{ ' ' }}{%- endif -%}"
    "{{ text }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- if not loop.last or add_generation_prompt -%}"
    "{%- if role == 'user' -%}{{ '\\n\\n' }}{%- else -%}{{ '" + EOS + "' }}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '" + ASSISTANT + ":' }}{%- endif -%}"
)

# Training text for the tokenizer: GenEval-style vocabulary (objects, colours,
# counts, positions) and the words the Self critic asks and answers with.
# Fixed, so the tokenizer is the same on every machine.
_WORDS = """
a an the of and or with on in under above below left right next to near behind front top bottom side
photo picture image drawing painting scene view there is are this that it its has have one two three
four five six seven eight nine ten red orange yellow green blue purple pink brown black white gray
person bicycle car motorcycle airplane bus train truck boat traffic light fire hydrant stop sign
parking meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag
tie suitcase frisbee skis snowboard sports ball kite baseball bat glove skateboard surfboard tennis
racket bottle wine glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot
pizza donut cake chair couch potted plant bed dining table toilet tv laptop mouse remote keyboard
cell phone microwave oven toaster sink refrigerator book clock vase scissors teddy hair drier
toothbrush does match description answer yes no Yes No should look like how describe detail color
shape size small large big tall short round square bright dark sky tree grass water street room
"""
_SENTENCES = (
    "Does this image match the description: {}? Answer yes or no.",
    "Yes, it does. No, it does not. yes no Yes No",
    "Describe how the image should look: a photo of {}.",
)


def _training_lines() -> list[str]:
    words = _WORDS.split()
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    for i in range(0, len(words), 3):
        phrase = " ".join(words[i : i + 3])
        lines.extend(template.format(phrase) for template in _SENTENCES)
    return lines


def build_tokenizer(vocab_size: int = 512, lines: list[str] | None = None):
    """Byte-level BPE (any text encodes, decoding is exact) with Janus-Pro's special tokens,
    trained on `lines` (default: the built-in GenEval-style text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_training_lines() if lines is None else lines, trainer=trainer)
    # Like DeepSeek's tokenizer: BOS in front of every encoded text, nothing at the end.
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, core.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE, "boi_token": BOI, "eoi_token": EOI},
        padding_side="left",
        model_max_length=4096,
    )


def tiny_config(
    tokenizer,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    vocab_size: int = 512,
    codebook_size: int = 64,
    vq_channels: int = 32,
):
    """A JanusConfig whose parts agree with each other and with `tokenizer`."""
    from transformers import JanusConfig

    grid = image_size // patch_size
    if grid * patch_size != image_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    ups = math.log2(patch_size)
    if not ups.is_integer():
        # The VQ decoder doubles the resolution between levels: patch_size = 2 ** (levels - 1).
        raise ValueError(f"patch_size {patch_size} must be a power of two")
    if vq_channels % 32:
        raise ValueError(f"vq_channels {vq_channels} must be a multiple of 32 (GroupNorm with 32 groups)")
    if len(tokenizer) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (("bos", BOS), ("eos", EOS), ("pad", PAD))}
    return JanusConfig(
        text_config=dict(
            model_type="llama",
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=4096,
            bos_token_id=ids["bos"],
            eos_token_id=ids["eos"],
            pad_token_id=ids["pad"],
        ),
        vision_config=dict(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            mlp_ratio=2.0,
            image_size=image_size,
            patch_size=patch_size,
            projection_dim=hidden_size,  # the aligner maps vision features into the text space
            depth=2,
            num_image_tokens=grid * grid,  # what `generate(generation_mode="image")` draws
        ),
        vq_config=dict(
            embed_dim=8,
            num_embeddings=codebook_size,
            latent_channels=vq_channels,
            base_channels=vq_channels,
            channel_multiplier=[1] * (int(ups) + 1),
            num_res_blocks=0,  # one resnet block per decoder level: keeps the file small
            num_patches=grid,  # JanusConfig recomputes it from the vision config; same value
            projection_dim=hidden_size,
            image_token_embed_dim=hidden_size,
            num_hidden_layers=2,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE),
        tie_word_embeddings=True,
    )


def build_tiny(
    path: str | Path,
    seed: int = 0,
    image_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    vocab_size: int = 512,
    codebook_size: int = 64,
    vq_channels: int = 32,
) -> Path:
    """Write a complete random-weight Janus checkpoint (model, tokenizer, image
    processor, chat template, generation config) to `path` and return it.

    Same arguments -> byte-identical weights. About 1.5 MB with the defaults.
    """
    import torch
    from transformers import JanusForConditionalGeneration

    tokenizer = build_tokenizer(vocab_size)
    config = tiny_config(
        tokenizer,
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        layers=layers,
        heads=heads,
        vocab_size=vocab_size,
        codebook_size=codebook_size,
        vq_channels=vq_channels,
    )
    # Seed a private RNG stream so building does not disturb the caller's.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JanusForConditionalGeneration(config).eval()
    return save_checkpoint(model, tokenizer, path)


def build_processor(tokenizer, config):
    """The JanusProcessor for `tokenizer` and a JanusConfig: chat template and image processor."""
    from transformers import JanusProcessor
    from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil

    size = config.vision_config.image_size
    # The pure-PIL image processor: the default one needs torchvision, which the
    # CPU environments lack. Janus-Pro normalises with mean = std = 0.5.
    image_processor = JanusImageProcessorPil(
        size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    return JanusProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        use_default_system_prompt=True,
        num_image_tokens=config.vision_config.num_image_tokens,
    )


def save_checkpoint(model, tokenizer, path: str | Path, **save_kwargs) -> Path:
    """Write `model` with its processor and generation config to `path`, in the layout of
    Janus-Pro's hub folders; `save_kwargs` go to `save_pretrained` (e.g. max_shard_size)."""
    from transformers import GenerationConfig

    path = Path(path)
    config = model.config
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
        guidance_scale=5.0,
        temperature=1.0,
        generation_kwargs={"boi_token_id": tokenizer.convert_tokens_to_ids(BOI)},
    )
    processor = build_processor(tokenizer, config)
    model.save_pretrained(path, **save_kwargs)
    processor.save_pretrained(path)
    # Also the separate preprocessor_config.json that hub checkpoints carry (transformers 5
    # nests the image processor inside processor_config.json); loaders look for it.
    processor.image_processor.save_pretrained(path)
    return path
