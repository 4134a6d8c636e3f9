"""Gaussian diffusion head: the training loss (eps MSE + VLB with learned-range variance) and the
per-step maths shared with the DDPM sampler.

The network output has 2C channels: eps (0..C-1) and v (C..2C-1), the interpolation value of the
log variance between the posterior variance and beta: log s2 = l log b + (1 - l) log s~2, l = (v+1)/2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from djepa_core.heads.schedule import GaussianSchedule, make_schedule

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StepPrediction:
    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    pred_xstart: torch.Tensor


def q_sample(s: GaussianSchedule, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return (s.gather("sqrt_alphas_cumprod", t, x_start) * x_start
            + s.gather("sqrt_one_minus_alphas_cumprod", t, x_start) * noise)


def q_posterior(s: GaussianSchedule, x_start: torch.Tensor, x_t: torch.Tensor,
                t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and clipped log variance of q(x_{t-1} | x_t, x_0)."""
    mean = (s.gather("posterior_mean_coef1", t, x_t) * x_start
            + s.gather("posterior_mean_coef2", t, x_t) * x_t)
    return mean, s.gather("posterior_log_variance_clipped", t, x_t)


def p_mean_variance(s: GaussianSchedule, model_output: torch.Tensor, x_t: torch.Tensor,
                    t: torch.Tensor) -> StepPrediction:
    """p(x_{t-1} | x_t) from the network output [n, 2C] at respaced indices t (no clipping)."""
    c = x_t.shape[-1]
    eps, v = model_output[..., :c], model_output[..., c:]
    min_log = s.gather("posterior_log_variance_clipped", t, x_t)
    max_log = s.gather("log_betas", t, x_t)
    frac = (v + 1) / 2
    log_var = frac * max_log + (1 - frac) * min_log
    pred_xstart = (s.gather("sqrt_recip_alphas_cumprod", t, x_t) * x_t
                   - s.gather("sqrt_recipm1_alphas_cumprod", t, x_t) * eps)
    mean, _ = q_posterior(s, pred_xstart, x_t, t)
    return StepPrediction(mean, torch.exp(log_var), log_var, pred_xstart)


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor,
              logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor,
                                        log_scales: torch.Tensor) -> torch.Tensor:
    """Log-likelihood of x under a Gaussian discretised to 8-bit bins of [-1, 1] (DDPM's decoder)."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999, log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


@dataclass(frozen=True)
class GaussianLossTerms:
    mse: torch.Tensor  # [n]
    vb: torch.Tensor  # [n], bits per dim
    loss: torch.Tensor  # [n] = mse + vb


def gaussian_training_losses(net: Denoiser, schedule: GaussianSchedule, x_start: torch.Tensor,
                             t: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor) -> GaussianLossTerms:
    """Per-row loss for rows x_start [n, C] at (respaced) steps t [n] with explicit noise [n, C]."""
    x_t = q_sample(schedule, x_start, t, noise)
    out = net(x_t, schedule.original_steps(t), cond)
    c = x_start.shape[-1]
    eps = out[..., :c]
    # VLB with the mean branch detached: only the variance learns from it.
    frozen = torch.cat([eps.detach(), out[..., c:]], dim=-1)
    pred = p_mean_variance(schedule, frozen, x_t, t)
    true_mean, true_logvar = q_posterior(schedule, x_start, x_t, t)
    kl = normal_kl(true_mean, true_logvar, pred.mean, pred.log_variance).mean(dim=-1) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x_start, pred.mean, 0.5 * pred.log_variance)
    nll = nll.mean(dim=-1) / math.log(2.0)
    vb = torch.where(t == 0, nll, kl)
    mse = ((noise - eps) ** 2).mean(dim=-1)
    return GaussianLossTerms(mse=mse, vb=vb, loss=mse + vb)


def masked_mean(per_row: torch.Tensor, row_mask: torch.Tensor | None) -> torch.Tensor:
    if row_mask is None:
        return per_row.mean()
    return (per_row * row_mask).sum() / row_mask.sum()


class GaussianDiffusionLoss:
    """Owns the training process (T steps, cosine) and its time and noise draws."""

    def __init__(self, num_steps: int = 1000, kind: str = "cosine") -> None:
        self.schedule = make_schedule(num_steps, kind)

    def __call__(self, net: Denoiser, target: torch.Tensor, cond: torch.Tensor,
                 row_mask: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        n = target.shape[0]
        dev = generator.device if generator is not None else target.device  # draw where the generator lives
        t = torch.randint(0, self.schedule.num_steps, (n,), device=dev, generator=generator).to(target.device)
        noise = torch.randn(target.shape, device=dev, dtype=target.dtype, generator=generator).to(target.device)
        terms = gaussian_training_losses(net, self.schedule, target, t, cond, noise)
        return masked_mean(terms.loss, row_mask)
