"""Denoisers bound to their condition rows for a sampling loop: f(x, t) with one time t for every row.

A head that can precompute per-row work (the adaLN MLP's `bind`: the condition embedding once per AR
step, the time embedding once per step instead of once per row) does so; any other denoiser
f(x, t, c) is wrapped as is. Guidance wraps the bound function the same way `guided` wraps a denoiser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from djepa_core.heads.gaussian import Denoiser
from djepa_core.samplers.guidance import guided
from djepa_core.samplers.noise import NoiseSource

StepDenoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bind_rows(net: Denoiser, cond: torch.Tensor, cfg_scale: float | torch.Tensor | None = None,
              guided_channels: int = 0, reference_arithmetic: bool = False,
              times: Sequence[torch.Tensor] = ()) -> StepDenoiser:
    """f(x, t) = net(x, t for every row, cond), guided when `cfg_scale` is given ([cond; uncond] rows).

    `reference_arithmetic`: keep the reference's per-row time embedding (bit-identical replays).
    `times`: the time tensors the loop will pass, for a head that precomputes their conditioning.
    """
    bind = getattr(net, "bind", None)
    if bind is not None:
        step: StepDenoiser = bind(cond, per_row_time=reference_arithmetic, times=times)
    else:
        n = cond.shape[0]

        def step(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return net(x, t.reshape(1).expand(n), cond)

    if cfg_scale is None:
        return step
    # `guided` needs a denoiser f(x, t, c): c is already bound, so pass it through unused
    g = guided(lambda x, t, _c: step(x, t), cfg_scale, guided_channels)
    return lambda x, t: g(x, t, cond)


def initial_rows(noise: NoiseSource, cond: torch.Tensor, token_dim: int, guided_rows: bool,
                 segments: Sequence[int] | None) -> torch.Tensor:
    """The head loop's starting noise [n, C]: with guidance ([cond; uncond] rows) one draw for the first half,
    duplicated, so both halves start from the same noise (as the reference)."""
    n, dev, dt = cond.shape[0], cond.device, cond.dtype
    if not guided_rows:
        return noise.normal((n, token_dim), segments, device=dev, dtype=dt)
    seg = None if segments is None else list(segments)[: len(segments) // 2]
    half = noise.normal((n // 2, token_dim), seg, device=dev, dtype=dt)
    return torch.cat([half, half], dim=0)
