"""Token grids: latent maps <-> token sequences.

A latent map [B, C, h, w] becomes tokens [B, L, C*p*p] with L = (h/p)*(w/p), token index
row*(w/p) + col, and the channels of one token ordered (c, dy, dx), as the reference's patchify.
"""

from __future__ import annotations

import torch


def patchify(x: torch.Tensor, patch_size: int = 1) -> torch.Tensor:
    """[B, C, h, w] -> [B, (h/p)*(w/p), C*p*p]."""
    b, c, h, w = x.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"grid {h}x{w} is not divisible by patch size {p}")
    x = x.reshape(b, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwcpq", x)  # (B, h/p, w/p, C, p, p)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: torch.Tensor, grid: tuple[int, int], patch_size: int = 1) -> torch.Tensor:
    """[B, L, C*p*p] -> [B, C, h, w], the inverse of :func:`patchify`; `grid` is (h/p, w/p)."""
    b, length, d = tokens.shape
    gh, gw = grid
    p = patch_size
    if gh * gw != length or d % (p * p):
        raise ValueError(f"tokens {tuple(tokens.shape)} do not fit grid {grid} with patch {p}")
    c = d // (p * p)
    x = tokens.reshape(b, gh, gw, c, p, p)
    x = torch.einsum("nhwcpq->nchpwq", x)
    return x.reshape(b, c, gh * p, gw * p)
