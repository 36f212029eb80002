"""The FLUX autoencoder that BAGEL decodes images with, as diffusers' AutoencoderKL.

BAGEL ships it as ae.safetensors in the original (LDM) key layout; diffusers converts
that layout itself. The architecture is read off the tensor shapes, so the 16-channel
FLUX VAE of BAGEL-7B-MoT and the small one of a tiny test checkpoint load the same way.
"""

from __future__ import annotations

import re

import torch

#: FLUX's latent normalisation: z_model = scale * (z_vae - shift)
SCALE, SHIFT = 0.3611, 0.1159


def vae_config(state: dict[str, torch.Tensor]) -> dict:
    """AutoencoderKL settings implied by an LDM-layout state dict."""
    levels = sorted({int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.(\d+)\.", k))})
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k))}
    return dict(
        in_channels=state["encoder.conv_in.weight"].shape[1],
        out_channels=state["decoder.conv_out.weight"].shape[0],
        down_block_types=("DownEncoderBlock2D",) * len(levels),
        up_block_types=("UpDecoderBlock2D",) * len(levels),
        block_out_channels=tuple(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] for i in levels),
        layers_per_block=len(blocks),
        latent_channels=state["decoder.conv_in.weight"].shape[1],
        norm_num_groups=32,
        scaling_factor=SCALE,
        shift_factor=SHIFT,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def load_vae(state: dict[str, torch.Tensor]):
    """An AutoencoderKL holding the weights of an LDM-layout (ae.safetensors) state dict."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = vae_config(state)
    vae = AutoencoderKL(**config)
    vae.load_state_dict(convert_ldm_vae_checkpoint(state, vae.config), strict=True)
    return vae.eval().requires_grad_(False)


def downsample(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


_TO_LDM = (
    (r"(coder)\.mid_block\.resnets\.(\d)", lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}"),
    (r"(coder)\.mid_block\.attentions\.0\.group_norm", r"\1.mid.attn_1.norm"),
    (r"(coder)\.mid_block\.attentions\.0\.to_(q|k|v)", r"\1.mid.attn_1.\2"),
    (r"(coder)\.mid_block\.attentions\.0\.to_out\.0", r"\1.mid.attn_1.proj_out"),
    (r"encoder\.down_blocks\.(\d+)\.resnets", r"encoder.down.\1.block"),
    (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample"),
    (r"conv_norm_out", "norm_out"),
    (r"conv_shortcut", "nin_shortcut"),
)


def to_ldm(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL keys -> the LDM layout of ae.safetensors (for writing test checkpoints)."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _TO_LDM:
            key = re.sub(pattern, repl, key)
        # the decoder's up blocks are numbered from the lowest resolution in diffusers, from the highest in LDM
        key = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block", key)
        key = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample", key)
        if ".attn_1." in key and key.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # LDM keeps attention projections as 1x1 convolutions
        out[key] = value.contiguous()
    return out
