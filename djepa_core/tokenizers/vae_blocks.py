"""Building blocks of the KL-16 VAE (LDM-style convolutional encoder and decoder).

Submodule names and definition order are part of the contract: they produce the state-dict keys of
MAR's released KL-16 VAE (`fixtures/official/manifests/vae_kl16.json`). Conventions:
GroupNorm(32 groups, eps 1e-6, affine), swish x*sigmoid(x), 3x3 convolutions with padding 1,
down-sampling by a right/bottom zero pad followed by a 3x3 stride-2 convolution (padding 0),
up-sampling by nearest-neighbour x2 followed by a 3x3 convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

GROUPS = 32
NORM_EPS = 1e-6


def normalize(channels: int) -> nn.GroupNorm:
    """GroupNorm(32, channels, eps=1e-6, affine=True)."""
    return nn.GroupNorm(num_groups=GROUPS, num_channels=channels, eps=NORM_EPS, affine=True)


def swish(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x), written out as the reference does."""
    return x * torch.sigmoid(x)


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1)


def conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0)


class ResnetBlock(nn.Module):
    """x + conv2(swish(norm2(conv1(swish(norm1(x)))))), with a 1x1 `nin_shortcut` on x when the
    channel count changes. Keys: norm1, conv1, norm2, conv2[, nin_shortcut]."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm1 = normalize(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels)
        self.norm2 = normalize(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.nin_shortcut: nn.Conv2d | None = (
            conv1x1(in_channels, out_channels) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = self.conv1(swish(self.norm1(x)))  # (B, C_out, H, W)
        h = self.conv2(swish(self.norm2(h)))  # (B, C_out, H, W)
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1-conv projections q, k, v, proj_out and a residual.

    softmax over keys of (q^T k) / sqrt(C), computed with batched matrix products in the input dtype."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = normalize(channels)
        self.q = conv1x1(channels, channels)
        self.k = conv1x1(channels, channels)
        self.v = conv1x1(channels, channels)
        self.proj_out = conv1x1(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)  # (B, C, H, W) each
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)  # (B, N, C)
        k = k.reshape(b, c, hh * ww)  # (B, C, N)
        w = torch.bmm(q, k) * (int(c) ** (-0.5))  # (B, N_q, N_k)
        w = torch.softmax(w, dim=2)
        v = v.reshape(b, c, hh * ww)  # (B, C, N_k)
        out = torch.bmm(v, w.permute(0, 2, 1))  # (B, C, N_q)
        out = out.reshape(b, c, hh, ww)
        projected: torch.Tensor = self.proj_out(out)
        return x + projected


class Downsample(nn.Module):
    """Halve H and W: zero pad one column right and one row bottom, then 3x3 conv, stride 2, pad 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0)  # (B, C, H+1, W+1)
        out: torch.Tensor = self.conv(x)  # (B, C, H/2, W/2)
        return out


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour x2 interpolation, then 3x3 conv (padding 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (B, C, 2H, 2W)
        out: torch.Tensor = self.conv(x)
        return out


class _Level(nn.Module):
    """One resolution level: `block` (ModuleList), `attn` (ModuleList), then an optional resampler
    registered under `resample_name` ("downsample" or "upsample")."""

    def __init__(self, blocks: list[ResnetBlock], attns: list[AttnBlock],
                 resample_name: str, resample: nn.Module | None) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)
        self._resample_name: str | None = None
        if resample is not None:
            self.add_module(resample_name, resample)
            self._resample_name = resample_name

    @property
    def resample(self) -> nn.Module | None:
        """The registered Downsample/Upsample, or None at the level that has none."""
        if self._resample_name is None:
            return None
        module = self._modules[self._resample_name]
        assert module is not None
        return module

    def forward_blocks(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        return h


class _Mid(nn.Module):
    """block_1 -> attn_1 -> block_2 at the lowest resolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block_2(self.attn_1(self.block_1(h)))
        return out


class Encoder(nn.Module):
    """Image [B, in_channels, H, W] -> [B, 2*z_channels (or z_channels), H/f, W/f], f = 2**(levels-1).

    Level i has `num_res_blocks` ResnetBlocks from ch*in_mult[i] to ch*ch_mult[i] channels (in_mult =
    (1, *ch_mult)), each followed by an AttnBlock when the nominal resolution at that level
    (resolution / 2**i) is in `attn_resolutions`; every level but the last ends with a Downsample.
    The nominal `resolution` only decides where attention goes; inputs may have any size divisible by f.
    """

    def __init__(self, *, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], resolution: int, in_channels: int,
                 z_channels: int, double_z: bool = True) -> None:
        super().__init__()
        num_levels = len(ch_mult)
        self.conv_in = conv3x3(in_channels, ch)
        in_mult = (1, *tuple(ch_mult))
        levels: list[_Level] = []
        curr_res = resolution
        block_in = ch
        for i in range(num_levels):
            block_in = ch * in_mult[i]
            block_out = ch * ch_mult[i]
            blocks: list[ResnetBlock] = []
            attns: list[AttnBlock] = []
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attns.append(AttnBlock(block_in))
            down = Downsample(block_in) if i != num_levels - 1 else None
            levels.append(_Level(blocks, attns, "downsample", down))
            if down is not None:
                curr_res = curr_res // 2
        self.down = nn.ModuleList(levels)
        self.mid = _Mid(block_in)
        self.norm_out = normalize(block_in)
        self.conv_out = conv3x3(block_in, 2 * z_channels if double_z else z_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)  # (B, ch, H, W)
        for level in self.down:
            assert isinstance(level, _Level)
            h = level.forward_blocks(h)
            if level.resample is not None:
                h = level.resample(h)
        h = self.mid(h)  # (B, ch*ch_mult[-1], H/f, W/f)
        out: torch.Tensor = self.conv_out(swish(self.norm_out(h)))  # (B, 2*z_channels, H/f, W/f)
        return out


class Decoder(nn.Module):
    """Latent [B, z_channels, h, w] -> image [B, out_channels, h*f, w*f].

    Levels are built from the lowest resolution up; level i (stored as `up[i]`, so state-dict order is
    level 0 first) has num_res_blocks + 1 ResnetBlocks ending at ch*ch_mult[i] channels, AttnBlocks when
    resolution / 2**i is in `attn_resolutions`, and an Upsample unless i == 0.
    """

    def __init__(self, *, ch: int, out_channels: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], resolution: int, z_channels: int) -> None:
        super().__init__()
        num_levels = len(ch_mult)
        block_in = ch * ch_mult[-1]
        curr_res = resolution // 2 ** (num_levels - 1)
        self.conv_in = conv3x3(z_channels, block_in)
        self.mid = _Mid(block_in)
        levels: list[_Level | None] = [None] * num_levels
        for i in reversed(range(num_levels)):
            block_out = ch * ch_mult[i]
            blocks: list[ResnetBlock] = []
            attns: list[AttnBlock] = []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attns.append(AttnBlock(block_in))
            up = Upsample(block_in) if i != 0 else None
            levels[i] = _Level(blocks, attns, "upsample", up)
            if up is not None:
                curr_res = curr_res * 2
        self.up = nn.ModuleList([level for level in levels if level is not None])
        self.norm_out = normalize(block_in)
        self.conv_out = conv3x3(block_in, out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)  # (B, ch*ch_mult[-1], h, w)
        h = self.mid(h)
        for i in reversed(range(len(self.up))):
            level = self.up[i]
            assert isinstance(level, _Level)
            h = level.forward_blocks(h)
            if level.resample is not None:
                h = level.resample(h)  # (B, C, 2h, 2w)
        out: torch.Tensor = self.conv_out(swish(self.norm_out(h)))  # (B, out_channels, H, W)
        return out
