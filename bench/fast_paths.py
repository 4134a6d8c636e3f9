"""The opt-in fast paths (djepa_core/fastpath.py) against the plain fp32 path, interleaved in one process.

    python bench/fast_paths.py --preset djepa-digits --steps 4 --head-steps 16 --batch 64 \\
        --paths fp32,bf16,fp32+all,bf16+all --rounds 5

Every path gets its own copy of the same generator (the embedded model's weights for `djepa-digits`, else an
untrained preset); after a warm-up (which pays torch.compile) the paths take turns, one generation each per
round, so a machine whose speed drifts slows every path alike. Reported: median ms/image (this process's CPU
time with one thread by default: the repeatable clock on a shared machine), the ratio to the first path, and
the largest and mean absolute pixel difference to the first path's images (same seeds).
A path is PRECISION[+COMPILE[:MODE]]: fp32, bf16, fp32+head, bf16+all, bf16+all:reduce-overhead (CUDA).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys

import torch

from djepa_core.assets import default_image_checkpoint
from djepa_core.checkpoint import load_generator
from djepa_core.fastpath import FastPath
from djepa_core.pipeline import ImageGenerator
from djepa_core.presets import get_preset
from djepa_core.profiling.flops import clock


def parse_path(text: str) -> FastPath:
    precision, _, rest = text.partition("+")
    target, _, mode = rest.partition(":")
    return FastPath(precision=precision, compile=target or "none", compile_mode=mode or "default")  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--preset", default="djepa-digits",
                   help="djepa-digits: the embedded model's weights; other presets: untrained (same arithmetic)")
    p.add_argument("--steps", type=int, help="AR steps (default: the preset's)")
    p.add_argument("--head-steps", type=int, help="head steps (default: the preset's)")
    p.add_argument("--cfg", type=float, default=3.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--paths", default="fp32,bf16,fp32+all,bf16+all")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--clock", default="cpu", choices=["wall", "cpu"])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    timer = clock(args.clock)
    try:
        paths = {name: parse_path(name) for name in args.paths.split(",")}
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ckpt = default_image_checkpoint() if args.preset == "djepa-digits" else None
    base = load_generator(ckpt) if ckpt is not None else ImageGenerator.from_config(get_preset(args.preset))
    base.to(args.device)
    gens = {name: copy.deepcopy(base).accelerate(fast) for name, fast in paths.items()}
    labels = [i % base.config.model.num_classes for i in range(args.batch)]
    seeds = list(range(args.batch))
    settings = base.settings(num_steps=args.steps, head_steps=args.head_steps, cfg_scale=args.cfg)
    dev = torch.device(args.device)

    def run(gen: ImageGenerator) -> torch.Tensor:
        out = gen.generate(labels, seeds=seeds, settings=settings)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return out

    times: dict[str, list[float]] = {name: [] for name in gens}
    with torch.inference_mode():
        images = {name: run(gen) for name, gen in gens.items()}  # warm-up (and compilation)
        for _ in range(args.rounds):
            for name, gen in gens.items():
                t0 = timer()
                run(gen)
                times[name].append(timer() - t0)
    first = next(iter(gens))
    ref_ms = 1000 * statistics.median(times[first]) / args.batch
    print(f"## Fast paths: {args.preset}, {settings.num_steps} AR steps x {settings.head_steps} head steps, "
          f"cfg {args.cfg:g}, batch {args.batch}, {args.device}, {torch.get_num_threads()} thread(s), "
          f"{args.clock} clock, median of {args.rounds} interleaved rounds\n")
    print("| path | ms/image | vs " + first + " | max abs diff | mean abs diff |")
    print("|---|---:|---:|---:|---:|")
    for name in gens:
        ms = 1000 * statistics.median(times[name]) / args.batch
        diff = (images[name] - images[first]).abs()
        print(f"| {paths[name].describe()} | {ms:.1f} | {ms / ref_ms:.2f}x | {diff.max().item():.4f} | "
              f"{diff.mean().item():.5f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
