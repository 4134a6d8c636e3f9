"""Import of the reference implementation's checkpoints (D-JEPA `.pth` files).

The reference saves a dict with `model`, `model_ema` (state dicts), `optimizer`, `epoch`, `scaler`
and `args` (a pickled argparse.Namespace). We load it with `weights_only=True`, allow-listing
argparse.Namespace alone, strip the `_orig_mod.` prefix that torch.compile leaves, map its
arguments to our :class:`ModelConfig`, and refuse any key or shape mismatch with a message naming
the keys.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import torch

from djepa_core.compat.state_dict import pick_state
from djepa_core.config import ModelConfig

# the reference's model constructors -> (width, depth, heads, head depth, head width)
REFERENCE_ARCHS: dict[str, dict[str, int]] = {
    "djepa_base": dict(encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12, decoder_embed_dim=768,
                       decoder_depth=12, decoder_num_heads=12, diffloss_d=6, diffloss_w=1024),
    "djepa_large": dict(encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16, decoder_embed_dim=1024,
                        decoder_depth=24, decoder_num_heads=16, diffloss_d=8, diffloss_w=1280),
    "djepa_huge": dict(encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16, decoder_embed_dim=1280,
                       decoder_depth=32, decoder_num_heads=16, diffloss_d=12, diffloss_w=1536),
}
_HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16}


def config_from_reference(args: Mapping[str, Any]) -> ModelConfig:
    """Map the reference's constructor/script arguments to a ModelConfig.

    Accepts a fixture's `model_config` or a checkpoint's `args`; an arch name under `model`
    (djepa_base/large/huge) fills the sizes the args do not give. Training-only arguments are ignored.
    """
    a = dict(args)
    arch = a.get("model")
    if isinstance(arch, str) and arch in REFERENCE_ARCHS:
        a = {**REFERENCE_ARCHS[arch], **a}
    img, stride, patch = int(a.get("img_size", 256)), int(a.get("vae_stride", 16)), int(a.get("patch_size", 1))
    side = img // stride // patch
    jepa = a.get("jepaloss", "jepa")
    jepa_weight = float(a.get("jepa_weight", 1.0 if jepa not in (None, "none", "") else 0.0))
    try:
        return ModelConfig(
            num_classes=int(a.get("class_num", 1000)),
            grid=(side, side),
            token_dim=int(a.get("vae_embed_dim", 16)) * patch * patch,
            encoder_dim=int(a["encoder_embed_dim"]),
            encoder_depth=int(a["encoder_depth"]),
            encoder_heads=int(a["encoder_num_heads"]),
            decoder_dim=int(a["decoder_embed_dim"]),
            decoder_depth=int(a["decoder_depth"]),
            decoder_heads=int(a["decoder_num_heads"]),
            mlp_ratio=float(a.get("mlp_ratio", 4.0)),
            qk_norm=bool(a.get("qk_norm", True)),
            buffer_size=int(a.get("buffer_size", 64)),
            label_drop_prob=float(a.get("label_drop_prob", 0.1)),
            attn_dropout=float(a.get("attn_dropout", 0.1)),
            proj_dropout=float(a.get("proj_dropout", 0.1)),
            head=str(a.get("diffloss", "gauss")),  # type: ignore[arg-type]
            head_depth=int(a["diffloss_d"]),
            head_width=int(a["diffloss_w"]),
            sampling_steps=int(a.get("num_sampling_steps", 100)),
            flow_time_shift=float(a.get("time_shifting_factor", 1.0)),
            diffusion_batch_mul=int(a.get("diffusion_batch_mul", 4)),
            jepa_weight=jepa_weight,
            diffusion_weight=float(a.get("diffusion_weight", 1.0)),
            mask_ratio_min=float(a.get("mask_ratio_min", 0.7)),
            grad_checkpointing=bool(a.get("grad_checkpointing", False)),
        )
    except KeyError as e:
        raise ValueError(f"reference arguments lack {e.args[0]!r} and name no known arch "
                         f"({sorted(REFERENCE_ARCHS)})") from None


def infer_reference_args(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Sizes read off a reference state dict (for checkpoints saved without `args`)."""
    def depth(prefix: str) -> int:
        n = prefix.count(".") + 1
        ids = {int(k.split(".")[n]) for k in state if k.startswith(prefix + ".")}
        return max(ids) + 1 if ids else 0

    width = int(state["z_proj.weight"].shape[0])
    dec = int(state["decoder_embed.weight"].shape[0])
    if width not in _HEADS_BY_WIDTH or dec not in _HEADS_BY_WIDTH:
        raise ValueError(f"cannot infer attention heads for width {width}; pass the reference args or a preset")
    seq_len = int(state["encoder_pos_embed_learned"].shape[1])
    side = round(seq_len**0.5)
    head_out = int(state["diffloss.net.final_layer.linear.weight"].shape[0])
    token_dim = int(state["z_proj.weight"].shape[1])
    return dict(
        img_size=side * 16, vae_stride=16, patch_size=1, vae_embed_dim=token_dim,
        class_num=int(state["class_emb.weight"].shape[0]), buffer_size=int(state["buffer"].shape[1]),
        encoder_embed_dim=width, encoder_depth=depth("encoder_blocks"), encoder_num_heads=_HEADS_BY_WIDTH[width],
        decoder_embed_dim=dec, decoder_depth=depth("decoder_blocks"), decoder_num_heads=_HEADS_BY_WIDTH[dec],
        qk_norm=any(k.endswith("attn.q_norm.weight") for k in state),
        diffloss_d=depth("diffloss.net.res_blocks"),
        diffloss_w=int(state["diffloss.net.input_proj.weight"].shape[0]),
        diffloss="gauss" if head_out == 2 * token_dim else "flow",
        jepaloss="jepa" if any(k.startswith("jepaloss.") for k in state) else "none",
    )


def pick_weights(ckpt: Mapping[str, Any], which: str = "model_ema") -> dict[str, torch.Tensor]:
    """The state dict under `which` (falling back to `model`, or a flat dict of tensors)."""
    return pick_state(ckpt, (which, "model", "model_ema"))


def args_of(ckpt: Mapping[str, Any]) -> dict[str, Any] | None:
    args = ckpt.get("args")
    if args is None:
        return None
    return dict(vars(args)) if isinstance(args, argparse.Namespace) else dict(args)
