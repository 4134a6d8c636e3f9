"""Model FLOPs of one generation, split by part, and the machine's measured matmul rate.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (2 per multiply-add, matmuls and
attention); the split counts `model.encode` and `model.predict` / `predict_at` under their own counters and gives the
rest (the denoising head's loop, plus the negligible decode) to the head.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from djepa_core.models.djepa import DJEPA


@dataclass(frozen=True)
class FlopSplit:
    encoder: int
    predictor: int
    head: int

    @property
    def total(self) -> int:
        return self.encoder + self.predictor + self.head

    def per_image(self, n: int) -> FlopSplit:
        return FlopSplit(self.encoder // n, self.predictor // n, self.head // n)


def count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@contextmanager
def _counted(model: DJEPA, name: str, totals: dict[str, int]) -> Iterator[None]:
    """Count the FLOPs of every `model.<name>(...)` call inside the block (instance-level wrap, undone after)."""
    original = getattr(model, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with FlopCounterMode(display=False) as counter:
            out = original(*args, **kwargs)
        totals[name] = totals.get(name, 0) + int(counter.get_total_flops())
        return out

    setattr(model, name, wrapper)
    try:
        yield
    finally:
        delattr(model, name)  # back to the class's method


def split_flops(model: DJEPA, run: Callable[[], Any]) -> FlopSplit:
    """FLOPs of `run()` split into encoder, predictor and the rest (the head)."""
    total = count_flops(run)
    parts: dict[str, int] = {}
    with _counted(model, "encode", parts), _counted(model, "predict", parts), _counted(model, "predict_at", parts):
        run()
    enc, pred = parts.get("encode", 0), parts.get("predict", 0) + parts.get("predict_at", 0)
    return FlopSplit(encoder=enc, predictor=pred, head=max(0, total - enc - pred))


def clock(kind: str) -> Callable[[], float]:
    """The timer of a benchmark: `wall` (time.perf_counter) or `cpu` (this process's CPU time: on a shared
    machine, with one torch thread, close to the wall time the same work takes on an idle core)."""
    if kind == "wall":
        return time.perf_counter
    if kind == "cpu":
        return time.process_time
    raise ValueError(f"clock must be 'wall' or 'cpu', got {kind!r}")


def matmul_rate(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu", size: int = 1024,
                seconds: float = 1.0, timer: Callable[[], float] = time.perf_counter) -> float:
    """Measured FLOP/s of square `size` matmuls at `dtype` on `device` (the median of a few timed rounds)."""
    dev = torch.device(device)
    a = torch.randn(size, size, dtype=dtype, device=dev)
    b = torch.randn(size, size, dtype=dtype, device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(3):
        a @ b
    sync()
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    reps = 4 if dev.type == "cpu" else 50
    while time.perf_counter() < deadline or len(rates) < 3:
        t0 = timer()
        for _ in range(reps):
            a @ b
        sync()
        rates.append(2 * size**3 * reps / max(timer() - t0, 1e-9))
    rates.sort()
    return rates[len(rates) // 2]
