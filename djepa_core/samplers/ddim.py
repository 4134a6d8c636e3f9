"""DDIM sampling of token rows with the Gaussian head: fewer, larger steps over a respaced schedule.

Each step predicts x0 from eps, then moves to the previous respaced step along the predicted noise
direction: x' = sqrt(ab') x0 + sqrt(1 - ab' - s^2) eps + s xi, with s = eta sqrt((1 - ab') / (1 - ab))
sqrt(1 - ab / ab'). eta 0 is deterministic after the first draw (the probability-flow ODE of the
same process); eta 1 matches the DDPM posterior variance of the respaced schedule. The head's learned
variance channels are not used. Guidance is applied to eps, as for DDPM.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from djepa_core.heads.gaussian import Denoiser
from djepa_core.heads.schedule import GaussianSchedule
from djepa_core.samplers.bound import bind_rows, initial_rows
from djepa_core.samplers.noise import NoiseSource


def ddim_sample(net: Denoiser, cond: torch.Tensor, schedule: GaussianSchedule, noise: NoiseSource,
                token_dim: int, eta: float = 0.0, temperature: float | torch.Tensor = 1.0,
                cfg_scale: float | torch.Tensor | None = None, segments: Sequence[int] | None = None,
                reference_arithmetic: bool = False) -> torch.Tensor:
    """Sample rows x_0 [n, C] conditioned on cond [n, D]; rows as in `ddpm_sample` ([cond; uncond] with guidance)."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    dev, dt = cond.device, cond.dtype
    x = initial_rows(noise, cond, token_dim, cfg_scale is not None, segments)
    # the loop passes these very tensors (original timesteps, last first): the head may precompute for them
    times = schedule.reverse_model_times(dev)
    model = bind_rows(net, cond, cfg_scale, token_dim, reference_arithmetic, times)
    ab_all, ab_prev_all = schedule.alphas_cumprod, schedule.alphas_cumprod_prev
    for i, t_model in zip(reversed(range(schedule.num_steps)), times, strict=True):
        eps = model(x, t_model)[:, :token_dim]
        ab, ab_prev = float(ab_all[i]), float(ab_prev_all[i])
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab**0.5
        sigma = eta * ((1 - ab_prev) / (1 - ab)) ** 0.5 * (1 - ab / ab_prev) ** 0.5 if i > 0 else 0.0
        x = ab_prev**0.5 * x0 + max(0.0, 1 - ab_prev - sigma**2) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * temperature * noise.normal(tuple(x.shape), segments, device=dev, dtype=dt)
    return x
