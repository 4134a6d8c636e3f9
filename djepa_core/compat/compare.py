"""Elementwise comparison of a recomputed tensor with a golden one, as the fixtures define it.

Bound per element: atol + rtol * |golden|. A result records the largest absolute difference and the
largest ratio of the difference to its bound (<= 1 means the output matches).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ParityResult:
    name: str
    max_abs: float
    max_ratio: float
    rtol: float
    atol: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.max_ratio <= 1.0

    def line(self) -> str:
        status = "ok" if self.ok else "MISMATCH"
        if self.error is not None:
            return f"{self.name:<48} {status}  {self.error}"
        return (
            f"{self.name:<48} {status:<8} max|diff|={self.max_abs:.3e}  "
            f"max ratio to bound={self.max_ratio:.3f}  (rtol={self.rtol:g}, atol={self.atol:g})"
        )


def compare(name: str, ours: torch.Tensor, golden: torch.Tensor, rtol: float, atol: float) -> ParityResult:
    """Compare `ours` with `golden` (shapes must agree; integer and bool tensors must be equal)."""
    if tuple(ours.shape) != tuple(golden.shape):
        return ParityResult(name, float("inf"), float("inf"), rtol, atol,
                            error=f"shape {tuple(ours.shape)} != golden {tuple(golden.shape)}")
    if golden.numel() == 0:
        return ParityResult(name, 0.0, 0.0, rtol, atol)
    if not golden.is_floating_point():
        diff = (ours.to(torch.float64) - golden.to(torch.float64)).abs()
        max_abs = float(diff.max())
        return ParityResult(name, max_abs, float("inf") if max_abs > 0 else 0.0, rtol, atol)
    dtype = torch.float64
    o = ours.detach().to("cpu", dtype)
    g = golden.detach().to("cpu", dtype)
    diff = (o - g).abs()
    bound = atol + rtol * g.abs()
    if not torch.isfinite(o).all():
        return ParityResult(name, float("inf"), float("inf"), rtol, atol, error="non-finite values")
    return ParityResult(name, float(diff.max()), float((diff / bound).max()), rtol, atol)
