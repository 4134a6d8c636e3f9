"""Pixel-patch tokenizer for small data (no VAE): p x p x C pixels flattened into one token.

tokens = patchify((images - shift) * scale) with images in [-1, 1]; the scale brings tokens to
roughly unit variance (it belongs here, never to the trainer). Decoding is the exact inverse.
"""

from __future__ import annotations

import torch
from torch import nn

from djepa_core.tokenizers.grid import patchify, unpatchify


class PatchTokenizer(nn.Module):
    """Images [B, C, S, S] in [-1, 1] <-> tokens [B, (S/p)^2, C p p]."""

    def __init__(self, image_size: int, channels: int, patch_size: int, scale: float = 1.0,
                 shift: float = 0.0) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image size {image_size} is not divisible by patch size {patch_size}")
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.image_size = image_size
        self.channels = channels
        self.patch_size = patch_size
        self.scale = float(scale)
        self.shift = float(shift)

    @property
    def grid(self) -> tuple[int, int]:
        n = self.image_size // self.patch_size
        return (n, n)

    @property
    def token_dim(self) -> int:
        return self.channels * self.patch_size**2

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None,
               sample: bool = True) -> torch.Tensor:
        """Images [B, C, S, S] in [-1, 1] -> tokens [B, L, C p p] (deterministic: no posterior)."""
        if images.dim() != 4 or images.shape[1:] != (self.channels, self.image_size, self.image_size):
            raise ValueError(f"expected images [B, {self.channels}, {self.image_size}, {self.image_size}], "
                             f"got {tuple(images.shape)}")
        return patchify((images.float() - self.shift) * self.scale, self.patch_size)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, L, C p p] -> images [B, C, S, S] (not clamped)."""
        if tokens.dim() != 3 or tokens.shape[1:] != (self.num_tokens, self.token_dim):
            raise ValueError(f"expected tokens [B, {self.num_tokens}, {self.token_dim}], got {tuple(tokens.shape)}")
        return unpatchify(tokens.float(), self.grid, self.patch_size) / self.scale + self.shift
