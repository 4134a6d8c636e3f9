"""Classifier-free guidance as a thin wrapper around a denoiser, and its scale schedules.

The batch holds 2n rows: n conditional then n unconditional. Only the first half of x is used
(duplicated to both halves, so both see the same noisy input). The first `guided_channels` of the
output are guided, g = u + s (c - u), and written to both halves; further channels (the Gaussian
head's variance values) are left per half.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def guided(net: Denoiser, scale: float | torch.Tensor, guided_channels: int) -> Denoiser:
    """Wrap `net` so one batched forward returns the guided output for [cond; uncond] rows."""

    def forward(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        half = x[: x.shape[0] // 2]
        out = net(torch.cat([half, half], dim=0), t, c)
        eps, rest = out[:, :guided_channels], out[:, guided_channels:]
        cond, uncond = eps.chunk(2, dim=0)
        g = uncond + scale * (cond - uncond)
        return torch.cat([torch.cat([g, g], dim=0), rest], dim=1)

    return forward


def cfg_scale_at(schedule: str, cfg: float, seq_len: int, mask_len: int) -> float | torch.Tensor:
    """Guidance scale for an AR step leaving `mask_len` tokens masked, typed as the reference has it.

    linear: 1 + (cfg - 1) (L - mask_len) / L, a float32 tensor; constant: cfg, a Python float.
    """
    if schedule == "linear":
        m = torch.tensor([float(mask_len)], dtype=torch.float32)
        return 1 + (cfg - 1) * (seq_len - m[0]) / seq_len
    if schedule == "constant":
        return float(cfg)
    raise ValueError(f"unknown cfg schedule {schedule!r} (linear, constant)")
