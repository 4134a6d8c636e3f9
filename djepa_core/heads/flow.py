"""Flow-matching head: x_t = t x1 + (1 - t) x0 (x0 noise, x1 data), target velocity x1 - x0."""

from __future__ import annotations

import torch

from djepa_core.heads.gaussian import Denoiser, masked_mean


def flow_training_losses(net: Denoiser, x1: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                         x0: torch.Tensor) -> torch.Tensor:
    """Per-row mean squared velocity error [n] for data x1 [n, C], times t [n], noise x0 [n, C]."""
    tt = t[:, None].to(x1.dtype)
    x_t = tt * x1 + (1 - tt) * x0
    v = net(x_t, t, cond)
    return ((v - (x1 - x0)) ** 2).mean(dim=-1)


class FlowMatchingLoss:
    """Owns its time draws (t ~ U[0, 1)) and noise."""

    def __call__(self, net: Denoiser, target: torch.Tensor, cond: torch.Tensor,
                 row_mask: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        n = target.shape[0]
        dev = generator.device if generator is not None else target.device  # draw where the generator lives
        t = torch.rand((n,), device=dev, generator=generator).to(target.device)
        x0 = torch.randn(target.shape, device=dev, dtype=target.dtype, generator=generator).to(target.device)
        return masked_mean(flow_training_losses(net, target, t, cond, x0), row_mask)
