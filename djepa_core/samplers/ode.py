"""ODE sampling of token rows with the flow-matching head: Euler (the reference) or Heun."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from djepa_core.heads.gaussian import Denoiser
from djepa_core.samplers.guidance import guided
from djepa_core.samplers.noise import NoiseSource


def flow_time_grid(num_points: int, shift: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """`num_points` times from 0 to 1 (float32), passed through t -> t / (t + s - s t)."""
    t = torch.linspace(0, 1, num_points, device=device)
    return t / (t + shift - shift * t)


def flow_sample(net: Denoiser, cond: torch.Tensor, grid: torch.Tensor, noise: NoiseSource, token_dim: int,
                cfg_scale: float | torch.Tensor | None = None, method: Literal["euler", "heun"] = "euler",
                segments: Sequence[int] | None = None) -> torch.Tensor:
    """Integrate dx/dt = v(x, t, c) from Gaussian noise at grid[0] to grid[-1]; rows [n, C].

    With `cfg_scale` the rows are [cond; uncond] halves sharing one noise draw; the whole velocity
    is guided. Heun costs two evaluations per step (the last step too).
    """
    n = cond.shape[0]
    dev, dt = cond.device, cond.dtype
    model = net
    if cfg_scale is not None:
        seg = None if segments is None else list(segments)[: len(segments) // 2]
        half = noise.normal((n // 2, token_dim), seg, device=dev, dtype=dt)
        x = torch.cat([half, half], dim=0)
        model = guided(net, cfg_scale, token_dim)
    else:
        x = noise.normal((n, token_dim), segments, device=dev, dtype=dt)
    grid = grid.to(dev)
    ones = torch.ones(n, device=dev)
    for k in range(grid.numel() - 1):
        t0, t1 = grid[k], grid[k + 1]
        step = t1 - t0
        v0 = model(x, ones * t0, cond)
        if method == "euler":
            x = x + step * v0
        elif method == "heun":
            x_pred = x + step * v0
            v1 = model(x_pred, ones * t1, cond)
            x = x + step * (v0 + v1) / 2
        else:
            raise ValueError(f"unknown ODE method {method!r} (euler, heun)")
    return x
