"""The sampler benchmark (`djepa bench sampler`, `bench/sampler.py`).

For each preset, case (head sampler, steps, guidance) and batch size: the median wall time of a full
generation over `repeats` runs after one warm-up, as images/s and ms/image; the model FLOPs per image
(encoder, predictor and head counted separately); the achieved FLOP/s divided by the same machine's
matmul FLOP/s at the same dtype, measured in the same run; and the peak memory (CUDA: the allocator's
peak for the case; CPU: the process's peak RSS so far, which only grows).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from djepa_core.fastpath import add_fast_path_arguments, fast_path_from_args
from djepa_core.pipeline import ImageGenerator
from djepa_core.presets import PRESETS, get_preset
from djepa_core.profiling.flops import FlopSplit, clock, matmul_rate, split_flops
from djepa_core.samplers.masked_ar import SampleSettings

# name -> SampleSettings overrides; "ref" is the reference's default sampling (64 AR steps, 100 head steps)
CASES: dict[str, dict[str, Any]] = {
    "ref-64x100": {"num_steps": 64, "head_steps": 100},
    "ar16-x100": {"num_steps": 16, "head_steps": 100},
    "ar64-euler32": {"num_steps": 64, "head_steps": 32, "ode_method": "euler"},
    "ar16-euler32": {"num_steps": 16, "head_steps": 32, "ode_method": "euler"},
    "ar16-heun8": {"num_steps": 16, "head_steps": 8, "ode_method": "heun"},
    "ar16-euler8": {"num_steps": 16, "head_steps": 8, "ode_method": "euler"},
    "ar4-euler16": {"num_steps": 4, "head_steps": 16, "ode_method": "euler"},  # the embedded image model's default
}
GAUSS_CASES = ("ref-64x100", "ar16-x100")
FLOW_CASES = ("ar64-euler32", "ar16-euler32", "ar16-heun8", "ar16-euler8", "ar4-euler16")


@dataclass
class Row:
    preset: str
    case: str
    batch: int
    cfg_scale: float
    ms_per_image: float
    images_per_s: float
    gflop_per_image: dict[str, float]
    achieved_gflop_s: float
    matmul_gflop_s: float  # the machine's matmul rate at the same dtype, measured around this row
    matmul_fraction: float
    peak_mem_mib: float
    times_s: list[float] = field(default_factory=list)


def _peak_mem_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_case(gen: ImageGenerator, preset: str, case: str, settings: SampleSettings, batch: int, repeats: int,
               matmul_flops: Callable[[], float], timer: Callable[[], float] = time.perf_counter,
               flops_batch: int = 4) -> Row:
    """One row. FLOPs per image are counted on a batch of `flops_batch` (every image costs the same arithmetic);
    `matmul_flops()` measures the matmul rate, here just before and just after the timed runs (their mean is
    the row's reference, so a machine whose speed drifts during a long sweep is compared with itself)."""
    device = gen.device
    labels = [i % gen.config.model.num_classes for i in range(batch)]

    def run(n: int = batch) -> Any:
        return gen.generate(labels[:n], seed=0, settings=settings)

    small = max(1, min(batch, flops_batch))
    flops = split_flops(gen.model, lambda: run(small)).per_image(small)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run()  # warm-up
    rate_before = matmul_flops()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = timer()
        run()
        _sync(device)
        times.append(timer() - t0)
    med = statistics.median(times)
    rate = (rate_before + matmul_flops()) / 2
    achieved = flops.total * batch / med
    return Row(preset=preset, case=case, batch=batch, cfg_scale=settings.cfg_scale,
               ms_per_image=1000 * med / batch, images_per_s=batch / med,
               gflop_per_image=_gflop(flops), achieved_gflop_s=achieved / 1e9,
               matmul_gflop_s=rate / 1e9, matmul_fraction=achieved / rate, peak_mem_mib=_peak_mem_mib(device),
               times_s=times)


def _gflop(f: FlopSplit) -> dict[str, float]:
    return {"encoder": f.encoder / 1e9, "predictor": f.predictor / 1e9, "head": f.head / 1e9, "total": f.total / 1e9}


def table(rows: list[Row], header: str) -> str:
    lines = [header, "",
             "| preset | case | cfg | batch | ms/image | images/s | GFLOP/image (enc / pred / head) | head share "
             "| achieved GFLOP/s | matmul GFLOP/s | of matmul rate | peak MiB |",
             "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        g = r.gflop_per_image
        share = g["head"] / g["total"] if g["total"] else 0.0
        lines.append(f"| {r.preset} | {r.case} | {r.cfg_scale:g} | {r.batch} | {r.ms_per_image:.1f} | "
                     f"{r.images_per_s:.2f} | {g['total']:.3f} ({g['encoder']:.3f} / {g['predictor']:.3f} / "
                     f"{g['head']:.3f}) | {share:.0%} | {r.achieved_gflop_s:.1f} | {r.matmul_gflop_s:.1f} | "
                     f"{r.matmul_fraction:.0%} | "
                     f"{r.peak_mem_mib:.0f} |")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", default="djepa-digits,djepa-s",
                   help="comma-separated presets (untrained weights: speed does not depend on training)")
    p.add_argument("--cases", default=None,
                   help=f"comma-separated cases (default: the ones matching each preset's head); known: "
                        f"{', '.join(CASES)}")
    p.add_argument("--batch", default="1,16,64", help="comma-separated batch sizes")
    p.add_argument("--cfg", default="1.0,3.0", help="comma-separated guidance scales (1.0 = no guidance)")
    p.add_argument("--ar-steps", type=int, default=None, help="override every case's masked-AR steps")
    p.add_argument("--head-steps", type=int, default=None, help="override every case's head steps")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row (the median is reported)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="model weights dtype (the matmul rate is measured at the same dtype; --precision bf16 "
                        "keeps fp32 weights and measures it at bfloat16)")
    add_fast_path_arguments(p)
    p.add_argument("--flops-batch", type=int, default=4,
                   help="batch on which FLOPs per image are counted (every image costs the same arithmetic)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall: elapsed time; cpu: this process's CPU time (a shared machine, with --threads 1)")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    presets = [s.strip() for s in args.presets.split(",") if s.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        print(f"error: unknown presets {unknown}; known: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    wanted = [c.strip() for c in args.cases.split(",")] if args.cases else None
    if wanted and any(c not in CASES for c in wanted):
        print(f"error: unknown cases {[c for c in wanted if c not in CASES]}; known: {', '.join(CASES)}",
              file=sys.stderr)
        return 2
    try:
        batches = [int(b) for b in args.batch.split(",")]
        scales = [float(s) for s in args.cfg.split(",")]
    except ValueError as e:
        print(f"error: --batch and --cfg take comma-separated numbers ({e})", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    timer = clock(args.clock)
    fast = fast_path_from_args(args)
    matmul_dtype = torch.bfloat16 if fast.precision == "bf16" else dtype

    def rate() -> float:
        return matmul_rate(matmul_dtype, device, timer=timer)

    first_rate = rate()
    print(f"matmul rate at {matmul_dtype} on {device}: {first_rate / 1e9:.1f} GFLOP/s "
          f"({torch.get_num_threads()} threads)", file=sys.stderr)
    rows: list[Row] = []
    with torch.inference_mode():
        for preset in presets:
            config = get_preset(preset)
            gen = ImageGenerator.from_config(config).to(device)
            gen.model.to(dtype)
            gen.accelerate(fast)
            own = GAUSS_CASES if config.model.head == "gauss" else FLOW_CASES
            for case in wanted or own:
                if case not in own:
                    continue  # e.g. a flow case on a diffusion-head preset
                for scale in scales:
                    overrides = {**CASES[case], "num_steps": args.ar_steps or CASES[case]["num_steps"],
                                 "head_steps": args.head_steps or CASES[case]["head_steps"]}
                    settings = gen.settings(cfg_scale=scale, **overrides)
                    for batch in batches:
                        row = bench_case(gen, preset, case, settings, batch, args.repeats, rate, timer,
                                         args.flops_batch)
                        rows.append(row)
                        print(f"{preset} {case} cfg {scale:g} batch {batch}: {row.ms_per_image:.1f} ms/image, "
                              f"{row.matmul_fraction:.0%} of matmul rate", file=sys.stderr)
    header = (f"## Sampler benchmark: {args.device}, {args.dtype} weights, {fast.describe()}, "
              f"{torch.get_num_threads()} threads, {args.clock} clock, torch {torch.__version__}")
    print(table(rows, header))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"matmul_flops": first_rate, "fast_path": fast.describe(),
                       "threads": torch.get_num_threads(), "device": args.device,
                       "clock": args.clock,
                       "dtype": args.dtype, "rows": [asdict(r) for r in rows]}, f, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(p)
    return run(p.parse_args(argv))
