"""`djepa sample`: a PNG grid of class-conditional samples."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from djepa_core.fastpath import add_fast_path_arguments, fast_path_from_args
from djepa_core.presets import PRESETS

DEFAULT_PRESET = "djepa-s"

def _tick(bar: Any) -> None:
    bar.update(1)


def _sample(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from djepa_core.assets import default_image_checkpoint
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
    checkpoint = args.checkpoint
    if checkpoint is None and args.preset is None:
        checkpoint = default_image_checkpoint()  # the embedded default model, when this build ships one
    if checkpoint is not None:
        gen = load_generator(checkpoint, device=args.device)
        source = str(checkpoint)
    else:
        args.preset = args.preset or DEFAULT_PRESET
        gen = ImageGenerator.from_config(get_preset(args.preset), seed=args.init_seed).to(args.device)
        source = f"preset {args.preset} (untrained, init seed {args.init_seed})"
    gen.accelerate(fast_path_from_args(args))
    num_classes = gen.config.model.num_classes
    classes = args.classes if args.classes is not None else list(range(min(num_classes, 10)))
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        print(f"error: class ids {bad} are outside [0, {num_classes})", file=sys.stderr)
        return 2
    labels = [c for c in classes for _ in range(args.per_class)]
    settings = gen.settings(num_steps=args.steps, cfg_scale=args.cfg, temperature=args.temperature,
                            head_steps=args.head_steps, cfg_schedule=args.cfg_schedule, ode_method=args.ode,
                            time_shift=args.time_shift,
                            diffusion_method=args.diffusion_method)
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


def register(sub: Any) -> None:
    s = sub.add_parser("sample", help="write a PNG grid of class-conditional samples",
                       description="Generate class-conditional images and write them as one PNG grid "
                                   "(one row per class).")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="a djepa .safetensors checkpoint (see `djepa convert`)")
    src.add_argument("--preset", choices=sorted(PRESETS),
                     help="an untrained model of this preset (default: the embedded default model, or "
                          f"{DEFAULT_PRESET} untrained when none is shipped)")
    s.add_argument("--classes", type=int, nargs="+", help="class ids (default: the first 10)")
    s.add_argument("--per-class", type=int, default=4, help="images per class (default 4)")
    s.add_argument("--steps", type=int, help="masked-AR steps (default: the model's)")
    s.add_argument("--cfg", type=float, help="classifier-free guidance scale (1 = none)")
    s.add_argument("--cfg-schedule", choices=["linear", "constant"], help="guidance schedule over AR steps")
    s.add_argument("--temperature", type=float, help="noise temperature of the Gaussian head")
    s.add_argument("--head-steps", type=int, help="denoising steps (respaced DDPM) or ODE grid points")
    s.add_argument("--ode", choices=["euler", "heun"], help="ODE solver of the flow head")
    s.add_argument("--time-shift", type=float,
                   help="flow head: shift s of the ODE time grid, t -> t / (t + s - s t) (default: the model's)")
    s.add_argument("--diffusion-method", choices=["ddpm", "ddim"],
                   help="sampler of the Gaussian head: ancestral DDPM (the reference) or DDIM (fewer steps)")
    s.add_argument("--seed", type=int, default=0, help="seed of the first image; image i uses seed+i")
    s.add_argument("--init-seed", type=int, default=0, help="weight init seed for untrained presets")
    s.add_argument("--batch-size", type=int, default=64, help="images per forward batch")
    s.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    add_fast_path_arguments(s)
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.add_argument("--out", type=Path, default=Path("out/samples.png"), help="output PNG (default out/samples.png)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    s.set_defaults(func=_sample)

