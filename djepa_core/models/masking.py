"""Training masks: one ratio per batch from a truncated normal, ceil(L r) masked tokens per sample
along a random permutation. Masks are data: float 0/1 tensors [B, L] (1 = masked) built from a
seeded generator.
"""

from __future__ import annotations

import math

import torch


def truncated_normal_ratio(mean: float, std: float, low: float, high: float,
                           generator: torch.Generator | None = None) -> float:
    """One draw of N(mean, std^2) truncated to [low, high], by inverting the normal CDF."""
    if std <= 0 or low >= high:
        return min(max(mean, low), high)
    a = torch.tensor((low - mean) / std, dtype=torch.float64)
    b = torch.tensor((high - mean) / std, dtype=torch.float64)
    ca, cb = torch.special.ndtr(a), torch.special.ndtr(b)
    dev = generator.device if generator is not None else "cpu"
    u = torch.rand((), dtype=torch.float64, generator=generator, device=dev).cpu()
    x = mean + std * float(torch.special.ndtri(ca + u * (cb - ca)))
    return min(max(x, low), high)


def random_orders(batch: int, seq_len: int, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """[B, L] int64: an independent random permutation of 0..L-1 per sample."""
    keys = torch.rand(batch, seq_len, generator=generator, device=generator.device if generator else device)
    return keys.argsort(dim=1).to(device)


def mask_from_orders(orders: torch.Tensor, num_masked: int) -> torch.Tensor:
    """[B, L] float 0/1: the first `num_masked` positions of each row's order are masked."""
    mask = torch.zeros(orders.shape, dtype=torch.float32, device=orders.device)
    src = torch.ones(orders.shape[0], num_masked, device=orders.device)
    return mask.scatter(1, orders[:, :num_masked], src)


def training_mask(batch: int, seq_len: int, *, ratio_mean: float = 1.0, ratio_std: float = 0.25,
                  ratio_min: float = 0.7, ratio_max: float = 1.0, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """The reference's training mask: ratio r ~ TN(mean, std; [min, max]), ceil(L r) masked."""
    r = truncated_normal_ratio(ratio_mean, ratio_std, ratio_min, ratio_max, generator)
    num_masked = min(seq_len, max(1, math.ceil(seq_len * r)))
    orders = random_orders(batch, seq_len, generator, device)
    return mask_from_orders(orders, num_masked)
