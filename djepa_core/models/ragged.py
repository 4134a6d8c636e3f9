"""Rows of different lengths in one encoder forward: the packing plan (continuous batching).

Requests at different AR steps keep different numbers of tokens visible, so the context encoder's rows have
different lengths. `RaggedRows` lays them out for `Block.forward_packed`: rows sorted by length, their real
tokens packed row after row ([N, D]), so linear layers and norms see only real tokens. Attention runs per
bucket of rows of similar length, each bucket padded to its own longest row with the pads masked out of the
keys (a masked key adds an exact 0 to the softmax sums: a row sees what the dense encoder shows it); a bucket
whose rows are all as long needs neither pads nor mask.

Why buckets: one bucket padded to the longest row costs rows x longest^2 in attention (and a masked kernel);
rows spread evenly over 64 AR steps pay about 2.5x the attention of the same rows in lockstep. Splitting the
length range into a few equal spans bounds every row's padding by a span and keeps the number of extra
kernel calls small (bench/ragged_step.py; bench/RESULTS.md, issue 11, "Session 6: buckets for the ragged encoder").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch

MAX_BUCKETS = 6  # attention calls per layer at most: more pad less but pay more per call (bench/ragged_step.py)


@dataclass(frozen=True)
class Bucket:
    start: int  # first packed token of the bucket
    stop: int  # one past its last
    rows: int
    length: int  # the bucket's longest row: its padded length
    where: torch.Tensor | None  # [rows, length] bool, True on real tokens; None: every row is `length` long
    slots: torch.Tensor | None  # the real tokens' flat slots in [rows * length] (int64), None with `where`


@dataclass(frozen=True)
class RaggedRows:
    """The buckets of rows sorted by length (ascending), in packed order."""

    buckets: tuple[Bucket, ...]

    @classmethod
    def plan(cls, lengths: Sequence[int], max_buckets: int = MAX_BUCKETS,
             device: torch.device | None = None) -> RaggedRows:
        """Buckets for rows of `lengths` (sorted ascending): the range [shortest, longest] cut into
        `max_buckets` equal spans, a bucket per non-empty span (rows of one length: one unpadded bucket)."""
        if not lengths:
            raise ValueError("no rows to plan")
        if any(b < a for a, b in pairwise(lengths)):
            raise ValueError("lengths must be sorted ascending")
        if max_buckets < 1:
            raise ValueError(f"max_buckets must be >= 1, got {max_buckets}")
        lo, hi = lengths[0], lengths[-1]
        span = max(1, -(-(hi - lo + 1) // max_buckets))  # ceil: every length falls in one of max_buckets spans
        buckets: list[Bucket] = []
        first = start = 0
        for i in range(1, len(lengths) + 1):
            if i < len(lengths) and (lengths[i] - lo) // span == (lengths[first] - lo) // span:
                continue
            part = lengths[first:i]
            longest = part[-1]
            stop = start + sum(part)
            where = slots = None
            if part[0] != longest:
                where = torch.arange(longest, device=device)[None, :] < torch.tensor(part, device=device)[:, None]
                slots = where.flatten().nonzero().flatten()
            buckets.append(Bucket(start, stop, len(part), longest, where, slots))
            first, start = i, stop
        return cls(tuple(buckets))

    @property
    def tokens(self) -> int:
        return self.buckets[-1].stop
