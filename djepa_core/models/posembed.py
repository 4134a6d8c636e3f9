"""Fixed sin-cos position tables over (t, h, w) or (h, w) token grids, an initialisation of the learned tables.

The reference initialises its learned position tables N(0, 0.02): tiny next to the token projections, so a
model must learn where each token is. On grids where most tokens look alike (a small digit moving on a
dark canvas: most tokens are background, and every masked slot is the same mask token) that makes the
predictor blind to which slot it predicts for a long time. `ModelConfig.pos_init = "sincos"` starts the
tables from this factorised sin-cos code instead (each axis gets an even share of the width; amplitude 1),
still learned. The default ("normal") is the reference's.
"""

from __future__ import annotations

import math

import torch


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """[N] positions -> [N, dim] (dim even): sin of dim/2 frequencies, then cos, frequencies 1 / 10000^(2i/dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / max(1, half))
    angles = positions.double()[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_table(grid: tuple[int, ...], dim: int) -> torch.Tensor:
    """[prod(grid), dim] float32: one sin-cos code per axis, concatenated (the last axis varies fastest, as the
    token order); dims left over by an uneven split stay 0."""
    per_axis = (dim // len(grid)) // 2 * 2
    coords = torch.meshgrid(*[torch.arange(n) for n in grid], indexing="ij")
    parts = [sincos_1d(c.reshape(-1), per_axis) for c in coords]
    table = torch.zeros(math.prod(grid), dim, dtype=torch.float64)
    table[:, : per_axis * len(grid)] = torch.cat(parts, dim=1)
    return table.float()
