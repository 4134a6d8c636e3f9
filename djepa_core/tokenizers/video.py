"""Video tokenizer: clips of frames -> a (t, h, w) grid of pixel-patch tokens (optionally tubelets over time).

A clip [T, C, S, S] in [-1, 1] is cut into tubelets of `tubelet` consecutive frames x p x p pixels;
each tubelet is one token of C * tubelet * p * p values, ordered (c, dt, dy, dx). Token index is
t * (h w) + row * w + col (frame-major), so the tokens of one (tubelet-)frame are contiguous and
an image tokenizer's raster order holds inside each frame. tokens = (pixels - shift) * scale; the
scale belongs here, never to the trainer. Decoding is the exact inverse.
"""

from __future__ import annotations

import torch
from torch import nn


def patchify_video(x: torch.Tensor, patch_size: int, tubelet: int = 1) -> torch.Tensor:
    """[B, T, C, H, W] -> [B, (T/u)(H/p)(W/p), C u p p] with u = tubelet."""
    b, t, c, h, w = x.shape
    p, u = patch_size, tubelet
    if h % p or w % p or t % u:
        raise ValueError(f"clip {t}x{h}x{w} is not divisible by tubelet {u} x patch {p}")
    x = x.reshape(b, t // u, u, c, h // p, p, w // p, p)
    x = torch.einsum("btuchpwq->bthwcupq", x)  # (B, T/u, H/p, W/p, C, u, p, p)
    return x.reshape(b, (t // u) * (h // p) * (w // p), c * u * p * p)


def unpatchify_video(tokens: torch.Tensor, grid: tuple[int, int, int], patch_size: int,
                     tubelet: int = 1) -> torch.Tensor:
    """[B, L, C u p p] -> [B, T, C, H, W], the inverse of :func:`patchify_video`; `grid` is (T/u, H/p, W/p)."""
    b, length, d = tokens.shape
    gt, gh, gw = grid
    p, u = patch_size, tubelet
    if gt * gh * gw != length or d % (u * p * p):
        raise ValueError(f"tokens {tuple(tokens.shape)} do not fit grid {grid} with tubelet {u} x patch {p}")
    c = d // (u * p * p)
    x = tokens.reshape(b, gt, gh, gw, c, u, p, p)
    x = torch.einsum("bthwcupq->btuchpwq", x)
    return x.reshape(b, gt * u, c, gh * p, gw * p)


class VideoPatchTokenizer(nn.Module):
    """Clips [B, T, C, S, S] in [-1, 1] <-> tokens [B, (T/u)(S/p)^2, C u p p]."""

    def __init__(self, image_size: int, channels: int, patch_size: int, num_frames: int, tubelet: int = 1,
                 scale: float = 1.0, shift: float = 0.0) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image size {image_size} is not divisible by patch size {patch_size}")
        if num_frames < 1 or tubelet < 1 or num_frames % tubelet:
            raise ValueError(f"num_frames {num_frames} must be a positive multiple of tubelet {tubelet}")
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.image_size = image_size
        self.channels = channels
        self.patch_size = patch_size
        self.num_frames = num_frames
        self.tubelet = tubelet
        self.scale = float(scale)
        self.shift = float(shift)

    @property
    def grid(self) -> tuple[int, int, int]:
        n = self.image_size // self.patch_size
        return (self.num_frames // self.tubelet, n, n)

    @property
    def frame_tokens(self) -> int:
        """Tokens per (tubelet-)frame: h * w."""
        return self.grid[1] * self.grid[2]

    @property
    def token_dim(self) -> int:
        return self.channels * self.tubelet * self.patch_size**2

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def encode(self, clips: torch.Tensor, generator: torch.Generator | None = None,
               sample: bool = True) -> torch.Tensor:
        """Clips [B, T, C, S, S] in [-1, 1] -> tokens [B, L, C u p p] (deterministic)."""
        want = (self.num_frames, self.channels, self.image_size, self.image_size)
        if clips.dim() != 5 or tuple(clips.shape[1:]) != want:
            raise ValueError(f"expected clips [B, {', '.join(map(str, want))}], got {tuple(clips.shape)}")
        return patchify_video((clips.float() - self.shift) * self.scale, self.patch_size, self.tubelet)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [B, L, C u p p] -> clips [B, T, C, S, S] (not clamped)."""
        if tokens.dim() != 3 or tuple(tokens.shape[1:]) != (self.num_tokens, self.token_dim):
            raise ValueError(f"expected tokens [B, {self.num_tokens}, {self.token_dim}], got {tuple(tokens.shape)}")
        clips = unpatchify_video(tokens.float(), self.grid, self.patch_size, self.tubelet)
        return clips / self.scale + self.shift
