"""The trainer benchmark (`djepa bench train`, `bench/train.py`): training steps per second of a preset.

One step is what the trainer does per batch of cached latents: the D-JEPA loss (denoising head on
`diffusion_batch_mul` copies of the tokens, JEPA loss against an EMA target encoder), backward, gradient
clipping at 3.0, AdamW (the reference's betas and no-decay set) and the EMA update. Inputs are random
tokens of the preset's shape (the VAE is not part of a step when latents are cached, as the reference
recipe allows). Reported: median images/s over the timed steps, model FLOPs per image (forward +
backward, counted once), and their rate over the machine's matmul rate at the same dtype (MFU).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from typing import Any, cast

import torch

from djepa_core.models.djepa import DJEPA
from djepa_core.models.ema import EMA
from djepa_core.presets import PRESETS, get_preset
from djepa_core.profiling.flops import clock, count_flops, matmul_rate
from djepa_core.trainers.loop import LossModule
from djepa_core.trainers.optim import build_optimizer


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="djepa-b", help=f"model preset ({', '.join(PRESETS)})")
    p.add_argument("--batch", type=int, default=8, help="images per step (the reference uses 2048 over 32 GPUs)")
    p.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall: elapsed time; cpu: this process's CPU time (a shared machine, with --threads 1)")


def run(args: argparse.Namespace) -> int:
    if args.preset not in PRESETS:
        print(f"error: unknown preset {args.preset!r}; known: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        print("error: --batch and --steps must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")
    cfg = get_preset(args.preset).model
    torch.manual_seed(0)
    model = DJEPA(cfg).to(device).train()
    ema = EMA(model, decay=0.9999)
    opt = build_optimizer(model, 1e-4, (0.9, 0.95), 0.02, device)
    loss_module = LossModule(model)
    step_fn: Any = torch.compile(loss_module) if args.compile else loss_module  # as the trainer does
    target = cast(DJEPA, ema.model)
    generator = torch.Generator(device=device).manual_seed(0)
    tokens = torch.randn(args.batch, cfg.seq_len, cfg.token_dim, device=device)
    labels = torch.randint(0, cfg.num_classes, (args.batch,), device=device)

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        with autocast():
            total = step_fn(tokens, labels, target, generator)[0]
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(model)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    flops = count_flops(step) / args.batch
    timer = clock(args.clock)
    rate = matmul_rate(torch.bfloat16 if bf16 else torch.float32, device, timer=timer)
    for _ in range(args.warmup):
        step()
    times: list[float] = []
    for _ in range(args.steps):
        sync()
        t0 = timer()
        step()
        sync()
        times.append(timer() - t0)
    med = statistics.median(times)
    ips = args.batch / med
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.preset} ({params / 1e6:.1f}M params) on {device}, {'bf16 autocast' if bf16 else 'fp32'}"
          f"{', compiled' if args.compile else ''}, batch {args.batch}, {torch.get_num_threads()} threads: "
          f"{ips:.2f} images/s (median step {med:.3f} s over {args.steps}), {flops / 1e9:.1f} GFLOP/image, "
          f"MFU {flops * ips / rate:.0%} of the measured {'bf16' if bf16 else 'fp32'} matmul rate "
          f"{rate / 1e9:.1f} GFLOP/s")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(p)
    return run(p.parse_args(argv))
