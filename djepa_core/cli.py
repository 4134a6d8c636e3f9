"""The `djepa` command line: sample, convert, presets, parity.

Run `djepa COMMAND --help` for each command's options.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from djepa_core.presets import PRESETS

DEFAULT_PRESET = "djepa-s"


def _tick(bar: Any) -> None:
    bar.update(1)


def _sample(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from djepa_core.checkpoint import load_generator
    from djepa_core.images import grid_image, save_png
    from djepa_core.pipeline import ImageGenerator
    from djepa_core.presets import get_preset

    for flag, value in (("--per-class", args.per_class), ("--batch-size", args.batch_size)):
        if value < 1:
            print(f"error: {flag} must be >= 1, got {value}", file=sys.stderr)
            return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.checkpoint:
        gen = load_generator(args.checkpoint, device=args.device)
        source = str(args.checkpoint)
    else:
        gen = ImageGenerator.from_config(get_preset(args.preset), seed=args.init_seed).to(args.device)
        source = f"preset {args.preset} (untrained, init seed {args.init_seed})"
    num_classes = gen.config.model.num_classes
    classes = args.classes if args.classes is not None else list(range(min(num_classes, 10)))
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        print(f"error: class ids {bad} are outside [0, {num_classes})", file=sys.stderr)
        return 2
    labels = [c for c in classes for _ in range(args.per_class)]
    settings = gen.settings(num_steps=args.steps, cfg_scale=args.cfg, temperature=args.temperature,
                            head_steps=args.head_steps, cfg_schedule=args.cfg_schedule, ode_method=args.ode)
    seeds = [args.seed + i for i in range(len(labels))]
    print(f"sampling {len(labels)} images ({len(classes)} classes x {args.per_class}) from {source}: "
          f"{settings.num_steps} AR steps, cfg {settings.cfg_scale} ({settings.cfg_schedule}), "
          f"temperature {settings.temperature}, head steps {settings.head_steps or gen.config.model.sampling_steps}",
          file=sys.stderr)
    images = []
    batches = [list(range(i, min(i + args.batch_size, len(labels)))) for i in range(0, len(labels), args.batch_size)]
    with tqdm(total=len(batches) * settings.num_steps, desc="sampling", unit="step",
              disable=args.quiet or (not sys.stderr.isatty() and not args.progress)) as bar:
        for idx in batches:
            images.append(gen.generate([labels[i] for i in idx], seeds=[seeds[i] for i in idx],
                                       settings=settings, progress=lambda k, n: _tick(bar)))
    grid = grid_image(torch.cat(images), ncols=args.per_class)
    path = save_png(grid, args.out)
    print(f"wrote {path} ({grid.width}x{grid.height}, {len(labels)} images) in {time.perf_counter() - t0:.1f}s")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from djepa_core.compat.convert import convert_reference

    path = convert_reference(args.checkpoint, args.vae, args.out, which=args.which, preset=args.preset,
                             name=args.name)
    print(f"wrote {path}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    import torch

    from djepa_core.models.djepa import DJEPA

    for name, cfg in PRESETS.items():
        m = cfg.model
        with torch.device("meta"):
            n = sum(p.numel() for p in DJEPA(m).parameters())
        print(f"{name:<14} {n / 1e6:9.2f}M params  width {m.encoder_dim} depth {m.encoder_depth}/{m.decoder_depth} "
              f"heads {m.encoder_heads}  head {m.head} {m.head_depth}x{m.head_width}  tokens {m.grid}x{m.token_dim} "
              f"({cfg.tokenizer.kind} {cfg.tokenizer.image_size}px)  classes {m.num_classes}")
    return 0


def _parity(args: argparse.Namespace) -> int:
    from djepa_core.compat.parity import main as parity_main

    return parity_main([str(p) for p in args.fixture_dirs])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="djepa", description="D-JEPA generative models: sample, convert, check.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("sample", help="write a PNG grid of class-conditional samples",
                       description="Generate class-conditional images and write them as one PNG grid "
                                   "(one row per class).")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="a djepa .safetensors checkpoint (see `djepa convert`)")
    src.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                     help=f"untrained model of this preset when no checkpoint is given (default {DEFAULT_PRESET})")
    s.add_argument("--classes", type=int, nargs="+", help="class ids (default: the first 10)")
    s.add_argument("--per-class", type=int, default=4, help="images per class (default 4)")
    s.add_argument("--steps", type=int, help="masked-AR steps (default: the model's)")
    s.add_argument("--cfg", type=float, help="classifier-free guidance scale (1 = none)")
    s.add_argument("--cfg-schedule", choices=["linear", "constant"], help="guidance schedule over AR steps")
    s.add_argument("--temperature", type=float, help="noise temperature of the Gaussian head")
    s.add_argument("--head-steps", type=int, help="denoising steps (respaced DDPM) or ODE grid points")
    s.add_argument("--ode", choices=["euler", "heun"], help="ODE solver of the flow head")
    s.add_argument("--seed", type=int, default=0, help="seed of the first image; image i uses seed+i")
    s.add_argument("--init-seed", type=int, default=0, help="weight init seed for untrained presets")
    s.add_argument("--batch-size", type=int, default=64, help="images per forward batch")
    s.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.add_argument("--out", type=Path, default=Path("out/samples.png"), help="output PNG (default out/samples.png)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    s.set_defaults(func=_sample)

    c = sub.add_parser("convert", help="import a reference D-JEPA .pth (+ MAR VAE) into our format",
                       description="Convert the reference implementation's checkpoint (model_ema weights) "
                                   "and MAR's KL-16 VAE into one djepa .safetensors file.")
    c.add_argument("checkpoint", type=Path, help="reference checkpoint (.pth with model/model_ema/args)")
    c.add_argument("--vae", type=Path, required=True, help="MAR's KL-16 VAE file (kl16.ckpt)")
    c.add_argument("--out", type=Path, required=True, help="output .safetensors")
    c.add_argument("--which", choices=["model_ema", "model"], default="model_ema",
                   help="weights to take (default model_ema, the ones the reference samples with)")
    c.add_argument("--preset", choices=sorted(PRESETS), help="sizes to assume when the file has no args")
    c.add_argument("--name", help="model name stored in the checkpoint")
    c.set_defaults(func=_convert)

    pr = sub.add_parser("presets", help="list the model presets")
    pr.set_defaults(func=_presets)

    pa = sub.add_parser("parity", help="check our code against reference fixtures")
    pa.add_argument("fixture_dirs", nargs="+", type=Path)
    pa.set_defaults(func=_parity)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
