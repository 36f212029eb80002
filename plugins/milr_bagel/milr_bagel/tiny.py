"""A tiny random-weight BAGEL checkpoint folder, in the layout of BAGEL-7B-MoT, built offline.

    python -m milr_bagel.tiny ./tiny-bagel

writes llm_config.json, vit_config.json, ema.safetensors (language model, experts and
flow head under the published names), ae.safetensors (a two-level FLUX-style VAE in
the LDM layout) and a byte-level BPE tokenizer with Qwen2's chat and vision tokens,
so `--backbone ./tiny-bagel` loads it through the same code as the real checkpoint.
Nothing is downloaded; the same seed gives the same folder on every machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>")

LLM = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    hidden_act="silu",
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    tie_word_embeddings=False,
    model_type="qwen2",
)
# never read by milr (text-to-image needs no image encoder); there so the folder matches the published one
VIT = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, patch_size=14,
           image_size=980, num_channels=3, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
           model_type="siglip_vision_model")
VAE_CHANNELS, VAE_LATENT = (32, 32), 4
PATCH, MAX_LATENT_SIDE = 2, 8  # 32 px images of 8 x 8 latent tokens

_TEXT = """
You should first think about the planning process in the mind and then generate the image.
The planning process is enclosed within think tags, i.e. think planning process here think image here
a photo of one two three four red green blue yellow purple cat dog bird car apple banana
on the left right of above below next to a small large round square triangle circle shape
"""


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_TEXT.strip().splitlines(), trainer=trainer)
    # like Qwen2's tokenizer: no BOS or EOS added to encoded text
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", clean_up_tokenization_spaces=False
    )


def build_tiny(folder: str | Path, seed: int = 0) -> Path:
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    from .model import random_bagel, read_llm_config
    from .vae import to_ldm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(folder)
    llm = dict(LLM, vocab_size=len(tokenizer))
    (folder / "llm_config.json").write_text(json.dumps(llm, indent=2))
    (folder / "vit_config.json").write_text(json.dumps(VIT, indent=2))

    model = random_bagel(read_llm_config(folder / "llm_config.json"), VAE_LATENT, PATCH, MAX_LATENT_SIDE,
                         torch.device("cpu"), torch.float32, seed)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "ema.safetensors")

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * len(VAE_CHANNELS),
        up_block_types=("UpDecoderBlock2D",) * len(VAE_CHANNELS),
        block_out_channels=VAE_CHANNELS,
        layers_per_block=1,
        latent_channels=VAE_LATENT,
        norm_num_groups=32,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    save_file(to_ldm(vae.state_dict(), len(VAE_CHANNELS)), folder / "ae.safetensors")
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m milr_bagel.tiny FOLDER")
    print(build_tiny(sys.argv[1]))
