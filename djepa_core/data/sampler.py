"""Resumable, seeded, sharded batches: all data-order randomness lives here.

Epoch e uses the permutation `randperm(N, seed * 1_000_003 + e)` and flip bits from the same
generator; rank r of W takes `perm[r::W]` in batches of `batch_size` (last partial batch dropped).
Batch k of the run is a pure function of (seed, k, rank, world), so a run resumes exactly from the
number of batches it consumed, whatever the loader's workers prefetched.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

Item = tuple[int, bool]  # (sample index, horizontal flip)


class ResumableBatchSampler:
    def __init__(self, size: int, batch_size: int, *, seed: int = 0, rank: int = 0, world: int = 1,
                 flip: bool = False, start: int = 0) -> None:
        if size // world < batch_size:
            raise ValueError(f"data set of {size} samples is too small for {world} rank(s) x batch {batch_size}")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world, self.flip = rank, world, flip
        self.start = start
        self.batches_per_epoch = (size // world) // batch_size

    def epoch_batches(self, epoch: int) -> list[list[Item]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.size, generator=g)
        flips = (torch.rand(self.size, generator=g) < 0.5) if self.flip else torch.zeros(self.size, dtype=torch.bool)
        shard = perm[self.rank::self.world][: self.batches_per_epoch * self.batch_size].tolist()
        return [[(i, bool(flips[i])) for i in shard[k * self.batch_size:(k + 1) * self.batch_size]]
                for k in range(self.batches_per_epoch)]

    def position(self, consumed: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) after `consumed` batches."""
        return divmod(consumed, self.batches_per_epoch)

    def __iter__(self) -> Iterator[list[Item]]:
        epoch, k = self.position(self.start)
        while True:
            batches = self.epoch_batches(epoch)
            yield from batches[k:]
            epoch, k = epoch + 1, 0

    def __len__(self) -> int:  # DataLoader asks; the stream is endless
        return 2**62
