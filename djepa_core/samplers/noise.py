"""Sources of randomness for the samplers.

Samplers are stateless: every random draw goes through a `NoiseSource` handed in by the caller.
- `GeneratorNoise`: one `torch.Generator` for the whole batch (fast, deterministic for a fixed batch).
- `PerSampleNoise`: one generator per sample, so a sample's output depends only on its own seed,
  whatever else shares its batch. Draws are split by `segments` (rows owned by each sample).
- `ReplayNoise`: replays a recorded stream of normal draws in call order (parity with the reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch


class NoiseSource(Protocol):
    def normal(self, shape: tuple[int, ...], segments: Sequence[int] | None, *,
               device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Standard normal draws of `shape`; `segments` (rows per sample along dim 0, summing to
        shape[0]) tells which sample owns which rows, when the caller knows it."""
        ...

    def orders(self, batch: int, seq_len: int, device: torch.device) -> torch.Tensor:
        """[batch, seq_len] int64: a random permutation of positions per sample."""
        ...


class GeneratorNoise:
    def __init__(self, generator: torch.Generator | None = None, seed: int | None = None) -> None:
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(0 if seed is None else seed)
        self.generator = generator

    def normal(self, shape: tuple[int, ...], segments: Sequence[int] | None = None, *,
               device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        out = torch.randn(shape, generator=self.generator, device=self.generator.device, dtype=dtype)
        return out.to(device)

    def orders(self, batch: int, seq_len: int, device: torch.device) -> torch.Tensor:
        rows = [torch.randperm(seq_len, generator=self.generator, device=self.generator.device)
                for _ in range(batch)]
        return torch.stack(rows).to(device)


class PerSampleNoise:
    """One generator per sample; draws for a sample never depend on the other samples."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.generators = []
        for s in seeds:
            g = torch.Generator(device=device)
            g.manual_seed(int(s))
            self.generators.append(g)

    def normal(self, shape: tuple[int, ...], segments: Sequence[int] | None = None, *,
               device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if segments is None:
            raise ValueError("PerSampleNoise needs the rows per sample (segments)")
        if sum(segments) != shape[0]:
            raise ValueError(f"segments {list(segments)} do not sum to {shape[0]} rows")
        if len(segments) % len(self.generators):
            raise ValueError(f"{len(segments)} segments for {len(self.generators)} samples")
        parts = []
        for i, rows in enumerate(segments):
            g = self.generators[i % len(self.generators)]
            parts.append(torch.randn((rows, *shape[1:]), generator=g, device=g.device, dtype=dtype))
        return torch.cat(parts).to(device)

    def orders(self, batch: int, seq_len: int, device: torch.device) -> torch.Tensor:
        if batch != len(self.generators):
            raise ValueError(f"orders for {batch} samples from {len(self.generators)} generators")
        rows = [torch.randperm(seq_len, generator=g, device=g.device) for g in self.generators]
        return torch.stack(rows).to(device)


class ReplayNoise:
    """Replays a flat stream of recorded normal draws (and fixed orders) in call order."""

    def __init__(self, stream: torch.Tensor, orders: torch.Tensor | None = None) -> None:
        self.stream = stream.reshape(-1)
        self.offset = 0
        self._orders = orders

    def normal(self, shape: tuple[int, ...], segments: Sequence[int] | None = None, *,
               device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        n = 1
        for s in shape:
            n *= s
        if self.offset + n > self.stream.numel():
            raise ValueError(f"noise stream exhausted: need {n} more values at offset {self.offset} "
                             f"of {self.stream.numel()}")
        out = self.stream[self.offset:self.offset + n].reshape(shape)
        self.offset += n
        return out.to(device=device, dtype=dtype)

    def orders(self, batch: int, seq_len: int, device: torch.device) -> torch.Tensor:
        if self._orders is None:
            raise ValueError("ReplayNoise has no recorded orders")
        return self._orders[:batch].to(device)

    @property
    def exhausted(self) -> bool:
        return self.offset == self.stream.numel()
