"""Opt-in fast paths for sampling, each kept because `djepa bench sampler` measured a gain
(bench/RESULTS.md, "Fast paths"); the plain fp32 eager path stays the default and the reference.

- `precision="bf16"`: bfloat16 autocast around the whole generation (CUDA and CPU alike). Weights stay
  float32 and are cast once per generation (autocast caches the casts within one region); norms stay float32
  (`LayerNorm32`, `RMSNorm32`); the sampler keeps its token state and the head's ODE / diffusion state in
  float32, so only the network's matmuls and attention run in bfloat16. On a CPU with AVX512-BF16 the matmul
  rate doubles; on GPUs bf16 is the usual serving precision. Quality is checked with `djepa eval
  --precision bf16` against fp32 (the issue's rule: within 2% on the quality measures).
- `compile`: `torch.compile` (dynamic shapes: the number of rows changes with every AR step) of the head's
  per-step network (`head`), of the context encoder and the feature predictor (`backbone`), or of both (`all`).
  The first generation pays the compilation (tens of seconds on CPU). Compiled functions are attached to the
  model instance; the state dict, checkpoints and the parity paths are untouched.

- `compile_mode="reduce-overhead"`: the compiled functions replay CUDA graphs (GPU only; one graph per row
  count of the head loop, recorded on first use). Not measured yet: no GPU has been lent to this project's
  sessions; bench/gpu_check.sh prints the figures that decide whether it is kept.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch is imported where used: the CLI registers these options without loading it
    import torch

    from djepa_core.models.djepa import DJEPA

Precision = Literal["fp32", "bf16"]
CompileTarget = Literal["none", "head", "backbone", "all"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
COMPILE_TARGETS: tuple[str, ...] = ("none", "head", "backbone", "all")
# torch.compile modes: "reduce-overhead" replays CUDA graphs (GPU only: one graph per row count of the head loop)
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class FastPath:
    precision: Precision = "fp32"
    compile: CompileTarget = "none"
    compile_mode: str = "default"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.compile not in COMPILE_TARGETS:
            raise ValueError(f"compile must be one of {', '.join(COMPILE_TARGETS)}, got {self.compile!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")

    @property
    def plain(self) -> bool:
        return self.precision == "fp32" and self.compile == "none"

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[object]:
        """The precision context of one generation (a no-op for fp32)."""
        import torch

        if self.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def describe(self) -> str:
        if self.compile == "none":
            return self.precision
        mode = "" if self.compile_mode == "default" else f" ({self.compile_mode})"
        return f"{self.precision}, compiled {self.compile}{mode}"


def compile_model(model: DJEPA, target: CompileTarget, mode: str = "default") -> None:
    """Attach `torch.compile`d versions of the head's step network and/or the backbone to `model` (in place)."""
    import torch

    def compiled(fn: Any) -> Any:
        return torch.compile(fn, dynamic=True, mode=mode)

    if target in ("head", "all"):
        head = model.head
        # the network on x given its adaLN modulations: every head step runs it (the modulations may be precomputed)
        head.forward_modulated = compiled(head.forward_modulated)  # type: ignore[method-assign]
    if target in ("backbone", "all"):
        model.encode = compiled(model.encode)  # type: ignore[method-assign]
        model.predict = compiled(model.predict)  # type: ignore[method-assign]
        model.predict_at = compiled(model.predict_at)  # type: ignore[method-assign]


def add_fast_path_arguments(parser: argparse.ArgumentParser) -> None:
    """`--precision` and `--compile`, the same on every command that generates."""
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32 (default, the reference arithmetic) or bf16 autocast (network matmuls in "
                             "bfloat16, sampler state in float32)")
    parser.add_argument("--compile", choices=COMPILE_TARGETS, default="none",
                        help="torch.compile the head's step network, the backbone, or all (the first generation "
                             "pays the compilation)")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES, default="default",
                        help="torch.compile mode of --compile (reduce-overhead: CUDA graphs, GPU only)")


def fast_path_from_args(args: argparse.Namespace) -> FastPath:
    return FastPath(precision=args.precision, compile=args.compile, compile_mode=args.compile_mode)
