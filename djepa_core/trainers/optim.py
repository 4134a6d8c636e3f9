"""AdamW with the reference's no-decay set."""

from __future__ import annotations

import torch
from torch import nn

# parameters that take no weight decay besides every 1-d tensor (norms, biases): embeddings and tokens,
# and the denoising head (shared/model.md: "none on norms, biases, embeddings, tokens, heads")
NO_DECAY_NAMES = ("fake_latent", "buffer", "encoder_pos_embed_learned", "mask_token", "decoder_pos_embed_learned",
                  "class_emb.weight")
NO_DECAY_PREFIXES = ("diffloss.",)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or name in NO_DECAY_NAMES or name.startswith(NO_DECAY_PREFIXES):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def build_optimizer(model: nn.Module, lr: float, betas: tuple[float, float], weight_decay: float,
                    device: torch.device) -> torch.optim.AdamW:
    fused = device.type == "cuda"
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, fused=fused)
