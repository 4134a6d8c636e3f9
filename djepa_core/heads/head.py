"""The denoising head: the adaLN MLP (`net`) plus the loss that owns its noise and time draws.

Named `diffloss` inside the model so the reference's `diffloss.net.*` keys load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from djepa_core.config import ModelConfig
from djepa_core.heads.flow import FlowMatchingLoss
from djepa_core.heads.gaussian import GaussianDiffusionLoss
from djepa_core.heads.mlp import DenoisingMLP


class DenoisingHead(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.kind = config.head
        self.token_dim = config.token_dim
        self.net = DenoisingMLP(
            in_channels=config.token_dim,
            width=config.head_width,
            out_channels=config.head_out_channels,
            cond_dim=config.decoder_dim,
            depth=config.head_depth,
        )
        self._loss: GaussianDiffusionLoss | FlowMatchingLoss
        if config.head == "gauss":
            self._loss = GaussianDiffusionLoss(config.diffusion_steps, config.noise_schedule)
        else:
            self._loss = FlowMatchingLoss()

    def loss(self, target: torch.Tensor, cond: torch.Tensor, row_mask: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Masked mean of the per-row denoising loss for rows target [n, C] given cond [n, D]."""
        return self._loss(self.net, target, cond, row_mask, generator)
