"""Gaussian diffusion schedules: the 1000-step cosine process and its respaced versions.

All arrays are float64 numpy, as the reference holds them; they are rounded to float32 when
gathered for a batch (:meth:`GaussianSchedule.gather`). A respaced schedule keeps a subset of the
original steps; the network always receives the ORIGINAL integer step (`timestep_map`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def cosine_alpha_bar(tau: float) -> float:
    return math.cos((tau + 0.008) / 1.008 * math.pi / 2) ** 2


def cosine_betas(num_steps: int, max_beta: float = 0.999) -> np.ndarray:
    """beta_i = min(1 - abar((i+1)/T) / abar(i/T), max_beta), i = 0..T-1 (float64)."""
    betas = [
        min(1 - cosine_alpha_bar((i + 1) / num_steps) / cosine_alpha_bar(i / num_steps), max_beta)
        for i in range(num_steps)
    ]
    return np.array(betas, dtype=np.float64)


def linear_betas(num_steps: int) -> np.ndarray:
    scale = 1000 / num_steps
    return np.linspace(scale * 0.0001, scale * 0.02, num_steps, dtype=np.float64)


def spaced_steps(num_steps: int, count: int) -> list[int]:
    """`count` steps of 0..num_steps-1 by even fractional stride, rounded (Python round), sorted."""
    if not 1 <= count <= num_steps:
        raise ValueError(f"cannot respace {num_steps} steps to {count}")
    if count == 1:
        return [0]
    stride = (num_steps - 1) / (count - 1)
    cur = 0.0
    taken = []
    for _ in range(count):
        taken.append(round(cur))
        cur += stride
    return sorted(set(taken))


class GaussianSchedule:
    """Precomputed coefficients of one (possibly respaced) diffusion process. Immutable."""

    def __init__(self, betas: np.ndarray, timestep_map: np.ndarray) -> None:
        self.betas = np.asarray(betas, dtype=np.float64)
        self.timestep_map = np.asarray(timestep_map, dtype=np.int64)  # respaced index -> original step
        b = self.betas
        alphas = 1.0 - b
        ac = np.cumprod(alphas, axis=0)
        ac_prev = np.append(1.0, ac[:-1])
        post_var = b * (1.0 - ac_prev) / (1.0 - ac)
        arrays = {
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": np.log(np.append(post_var[1], post_var[1:])),
            "posterior_mean_coef1": b * np.sqrt(ac_prev) / (1.0 - ac),
            "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
            "log_betas": np.log(b),
        }
        for name, value in arrays.items():
            setattr(self, name, value)

    alphas_cumprod: np.ndarray
    alphas_cumprod_prev: np.ndarray
    sqrt_alphas_cumprod: np.ndarray
    sqrt_one_minus_alphas_cumprod: np.ndarray
    sqrt_recip_alphas_cumprod: np.ndarray
    sqrt_recipm1_alphas_cumprod: np.ndarray
    posterior_variance: np.ndarray
    posterior_log_variance_clipped: np.ndarray
    posterior_mean_coef1: np.ndarray
    posterior_mean_coef2: np.ndarray
    log_betas: np.ndarray

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    def gather(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """arr[t] rounded to float32, shaped to broadcast against `like` ([n] -> [n, 1, ...])."""
        arr = torch.from_numpy(getattr(self, name)).to(t.device)[t].float()
        while arr.dim() < like.dim():
            arr = arr[..., None]
        return arr.to(like.dtype)

    def original_steps(self, t: torch.Tensor) -> torch.Tensor:
        """Respaced indices [n] -> the original integer steps the network was trained on."""
        return torch.from_numpy(self.timestep_map).to(t.device)[t]

    def reverse_model_times(self, device: torch.device | str) -> tuple[torch.Tensor, ...]:
        """The network's time input at each step of the reverse process, last respaced step first: one [1]
        original step per step (`original_steps` of num_steps - 1, ..., 0)."""
        return torch.from_numpy(self.timestep_map).to(device).flip(0).split(1)

    def respaced(self, count: int) -> GaussianSchedule:
        """A schedule keeping `count` evenly spaced steps of this one (betas from alphas_cumprod)."""
        keep = set(spaced_steps(self.num_steps, count))
        new_betas, mapping = [], []
        last = 1.0
        for i, ac in enumerate(self.alphas_cumprod):
            if i in keep:
                new_betas.append(1 - ac / last)
                last = ac
                mapping.append(int(self.timestep_map[i]))
        return GaussianSchedule(np.array(new_betas, dtype=np.float64), np.array(mapping, dtype=np.int64))


@lru_cache(maxsize=16)
def make_schedule(num_steps: int = 1000, kind: str = "cosine", respace: int | None = None) -> GaussianSchedule:
    """The training process (respaced to all its steps, as the reference) or a sampling process.

    `respace=None` keeps all `num_steps` steps. Cached: schedules are immutable.
    """
    if kind == "cosine":
        betas = cosine_betas(num_steps)
    elif kind == "linear":
        betas = linear_betas(num_steps)
    else:
        raise ValueError(f"unknown noise schedule {kind!r} (cosine, linear)")
    base = GaussianSchedule(betas, np.arange(num_steps, dtype=np.int64))
    return base.respaced(num_steps if respace is None else respace)
