"""The denoising MLP with adaptive LayerNorm: f(x_t, t, z).

It knows no schedule: it sees a noisy token x_t [n, C], a time t [n] (integer step of the Gaussian
process or a float in [0, 1] for flow matching, fed to the sinusoidal embedding as is) and the
predictor output z [n, D]. Submodule names equal the reference's `diffloss.net.*`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn

from djepa_core.models.layers import LayerNorm32

# the most adaLN modulation values `DenoisingMLP.bind` precomputes for a sampling loop (4 M floats: 16 MB in fp32);
# a larger loop (many rows, many head steps, a wide head) computes them per step, where the matmuls dominate anyway
PRECOMPUTE_LIMIT = 1 << 22


def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """[n] -> [n, dim]: [cos(t f_0..f_{h-1}), sin(t f_0..f_{h-1})], f_i = exp(-ln(max_period) i / h)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=t.device) / half
    )
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    def __init__(self, width: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        first = cast(nn.Linear, self.mlp[0])
        return self.mlp(timestep_embedding(t, self.freq_dim).to(first.weight.dtype))


# an adaLN modulation as the layers apply it: (shift, 1 + scale[, gate]), each [..., width]
Modulation = tuple[torch.Tensor, ...]


def split_modulation(m: torch.Tensor, parts: int) -> Modulation:
    """adaLN_modulation(y) [..., parts * width] -> (shift, 1 + scale[, gate])."""
    shift, scale, *rest = m.chunk(parts, dim=-1)
    return (shift, 1 + scale, *rest)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale_plus_one: torch.Tensor, fused: bool = False
             ) -> torch.Tensor:
    """x * (1 + scale) + shift; `fused`: in one op (addcmul: a fused multiply-add on CPU, so the last bit may
    differ from the reference's two ops)."""
    return torch.addcmul(shift, x, scale_plus_one) if fused else x * scale_plus_one + shift


class ResBlock(nn.Module):
    """h + gate * MLP(adaLN(h; shift, scale)), modulations from SiLU(y)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.in_ln = LayerNorm32(width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.forward_modulated(x, self.modulation(y))

    def modulation(self, y: torch.Tensor) -> Modulation:
        """(shift, 1 + scale, gate) of condition y."""
        return split_modulation(self.adaLN_modulation(y), 3)

    def forward_modulated(self, x: torch.Tensor, modulation: Modulation, fused: bool = False) -> torch.Tensor:
        """`forward` given `modulation(y)`: x + gate * MLP(LN(x) * (1 + scale) + shift); `fused`: see `modulate`."""
        shift, scale_plus_one, gate = modulation
        h = self.mlp(modulate(self.in_ln(x), shift, scale_plus_one, fused))
        return torch.addcmul(x, gate, h) if fused else x + gate * h


class FinalLayer(nn.Module):
    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = LayerNorm32(width, elementwise_affine=False)
        self.linear = nn.Linear(width, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.forward_modulated(x, self.modulation(y))

    def modulation(self, y: torch.Tensor) -> Modulation:
        """(shift, 1 + scale) of condition y."""
        return split_modulation(self.adaLN_modulation(y), 2)

    def forward_modulated(self, x: torch.Tensor, modulation: Modulation, fused: bool = False) -> torch.Tensor:
        """`forward` given `modulation(y)`; `fused`: see `modulate`."""
        shift, scale_plus_one = modulation
        return self.linear(modulate(self.norm_final(x), shift, scale_plus_one, fused))


class DenoisingMLP(nn.Module):
    """adaLN MLP: in_channels -> width, `depth` residual blocks, final adaLN layer -> out_channels."""

    def __init__(self, in_channels: int, width: int, out_channels: int, cond_dim: int, depth: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.time_embed = TimestepEmbedder(width)
        self.cond_embed = nn.Linear(cond_dim, width)
        self.input_proj = nn.Linear(in_channels, width)
        self.res_blocks = nn.ModuleList([ResBlock(width) for _ in range(depth)])
        self.final_layer = FinalLayer(width, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform linears, N(0, 0.02) time MLP, adaLN and output layers at zero (as the reference)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        time_mlp = self.time_embed.mlp
        nn.init.normal_(cast(nn.Linear, time_mlp[0]).weight, std=0.02)
        nn.init.normal_(cast(nn.Linear, time_mlp[2]).weight, std=0.02)
        zero = [cast(ResBlock, b).adaLN_modulation[-1] for b in self.res_blocks]
        zero += [self.final_layer.adaLN_modulation[-1], self.final_layer.linear]
        for layer in zero:
            lin = cast(nn.Linear, layer)
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def condition(self, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """y = time_embed(t) + cond_embed(c): [n, width]."""
        return self.time_embed(t) + self.cond_embed(c)

    def modulations(self, y: torch.Tensor) -> list[Modulation]:
        """Every adaLN modulation of condition y [..., width]: one per residual block, then the final layer's."""
        layers = [*self.res_blocks, self.final_layer]
        return [cast(ResBlock | FinalLayer, layer).modulation(y) for layer in layers]

    def forward_modulated(self, x: torch.Tensor, modulations: Sequence[Modulation], fused: bool = False
                          ) -> torch.Tensor:
        """The network on x [n, C] given `modulations(y)` (each part [n, width]); `fused`: each modulation and
        gated residual in one op (see `modulate`)."""
        h = self.input_proj(x)
        for block, m in zip(self.res_blocks, modulations, strict=False):
            h = cast(ResBlock, block).forward_modulated(h, m, fused)
        return self.final_layer.forward_modulated(h, modulations[-1], fused)

    def forward_with_condition(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.forward_modulated(x, self.modulations(y))

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x [n, C], t [n], c [n, D] -> [n, out_channels]."""
        return self.forward_with_condition(x, self.condition(t, c))

    def bind(self, c: torch.Tensor, per_row_time: bool = False, times: Sequence[torch.Tensor] = ()
             ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """f(x, t) = forward(x, t, c) for a time t shared by all rows (one element), made for sampling loops.

        The condition embedding of c is computed here, once per AR step instead of once per head step
        (bit-identical: same op on the same rows). The time embedding is computed once per call for one
        row and broadcast; that changes the float rounding (a one-row matmul), so `per_row_time=True`
        computes it per row as the reference does, for replays that must match it bit for bit.

        `times`: the time tensors the loop will pass (the very objects, e.g. `grid.unbind()`). Unless
        `per_row_time`, their time embeddings and every adaLN modulation of every row are computed here in
        one matmul per layer (when they take at most `PRECOMPUTE_LIMIT` values), and a call with one of them
        only runs the network on x: a head step in a small batch is mostly the cost of launching its ops.
        Equal to the per-call path up to float rounding; any other t is computed per call.
        """
        c_emb = self.cond_embed(c)
        n = c.shape[0]
        table: dict[int, list[Modulation]] = {}
        if times and not per_row_time and len(times) * n * self._modulation_width() <= PRECOMPUTE_LIMIT:
            y = self.time_embed(torch.stack([t.reshape(()) for t in times]))[:, None] + c_emb  # (K, n, width)
            # each part of each layer's modulation split over the K times in one op
            per_layer = [[part.unbind(0) for part in m] for m in self.modulations(y)]
            table = {id(t): [tuple(part[k] for part in m) for m in per_layer] for k, t in enumerate(times)}

        def step(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            pre = table.get(id(t))
            if pre is not None:
                return self.forward_modulated(x, pre, fused=True)
            t_rows = t.reshape(1).expand(n) if per_row_time else t.reshape(1)
            return self.forward_with_condition(x, self.time_embed(t_rows) + c_emb)

        return step

    def _modulation_width(self) -> int:
        """Values of all adaLN modulations of one row."""
        return sum(cast(nn.Linear, cast(ResBlock | FinalLayer, layer).adaLN_modulation[-1]).out_features
                   for layer in [*self.res_blocks, self.final_layer])
