"""Ancestral DDPM sampling of token rows with the Gaussian head, over a respaced schedule."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from djepa_core.heads.gaussian import Denoiser, p_mean_variance
from djepa_core.heads.schedule import GaussianSchedule
from djepa_core.samplers.bound import bind_rows, initial_rows
from djepa_core.samplers.noise import NoiseSource


def ddpm_sample(net: Denoiser, cond: torch.Tensor, schedule: GaussianSchedule, noise: NoiseSource,
                token_dim: int, temperature: float | torch.Tensor = 1.0, cfg_scale: float | torch.Tensor | None = None,
                segments: Sequence[int] | None = None, reference_arithmetic: bool = False) -> torch.Tensor:
    """Sample rows x_0 [n, C] conditioned on cond [n, D], from pure noise at the last respaced step.

    With `cfg_scale` (not None) the rows are [cond; uncond] halves: the initial noise is drawn for
    one half and duplicated, eps is guided, and every step draws noise for all rows (as the
    reference). Each step: x <- mean + [t != 0] exp(log_var / 2) xi temperature.
    `segments` gives the rows owned by each sample (for per-sample noise sources). `temperature` may be a
    tensor [n, 1] (one value per row: requests of different settings batched together).
    `reference_arithmetic`: the reference's op-for-op arithmetic (see `DenoisingMLP.bind`).
    """
    n = cond.shape[0]
    dev, dt = cond.device, cond.dtype
    x = initial_rows(noise, cond, token_dim, cfg_scale is not None, segments)
    # the loop passes these very tensors (original timesteps, last first): the head may precompute for them
    times = schedule.reverse_model_times(dev)
    model = bind_rows(net, cond, cfg_scale, token_dim, reference_arithmetic, times)  # cond embedded once per AR step
    for i, t_model in zip(reversed(range(schedule.num_steps)), times, strict=True):
        t = torch.full((n,), i, dtype=torch.long, device=dev)
        out = model(x, t_model)
        pred = p_mean_variance(schedule, out, x, t)
        xi = noise.normal(tuple(x.shape), segments, device=dev, dtype=dt)
        nonzero = (t != 0).to(dt)[:, None]
        x = pred.mean + nonzero * torch.exp(0.5 * pred.log_variance) * xi * temperature
    return x
