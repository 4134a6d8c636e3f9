"""ODE sampling of token rows with the flow-matching head: Euler (the reference) or Heun."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from djepa_core.heads.gaussian import Denoiser
from djepa_core.samplers.bound import bind_rows, initial_rows
from djepa_core.samplers.noise import NoiseSource


def flow_time_grid(num_points: int, shift: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """`num_points` times from 0 to 1 (float32), passed through t -> t / (t + s - s t)."""
    t = torch.linspace(0, 1, num_points, device=device)
    return t / (t + shift - shift * t)


def flow_sample(net: Denoiser, cond: torch.Tensor, grid: torch.Tensor, noise: NoiseSource, token_dim: int,
                cfg_scale: float | torch.Tensor | None = None, method: Literal["euler", "heun"] = "euler",
                segments: Sequence[int] | None = None, reference_arithmetic: bool = False) -> torch.Tensor:
    """Integrate dx/dt = v(x, t, c) from Gaussian noise at grid[0] to grid[-1]; rows [n, C].

    With `cfg_scale` the rows are [cond; uncond] halves sharing one noise draw; the whole velocity
    is guided. Heun costs two evaluations per step (the last step too). `reference_arithmetic`: the
    reference's op-for-op arithmetic (see `DenoisingMLP.bind`).
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"unknown ODE method {method!r} (euler, heun)")
    dev = cond.device
    x = initial_rows(noise, cond, token_dim, cfg_scale is not None, segments)
    times = grid.to(dev).unbind()  # the loop passes these very tensors: the head may precompute for them
    asked = times if method == "heun" else times[:-1]  # Euler never evaluates at the last time
    model = bind_rows(net, cond, cfg_scale, token_dim, reference_arithmetic, asked)  # cond embedded once per AR step
    steps = (grid[1:] - grid[:-1]).to(dev).unbind()  # t1 - t0 of every step, in one op
    for k, step in enumerate(steps):
        v0 = model(x, times[k])
        # x + step * v0 in one op (a fused multiply-add on CPU) unless the reference's rounding is asked
        x_next = x + step * v0 if reference_arithmetic else torch.addcmul(x, step, v0)
        if method == "euler":
            x = x_next
        else:
            x_pred = x_next
            v1 = model(x_pred, times[k + 1])
            x = x + step * (v0 + v1) / 2
    return x
