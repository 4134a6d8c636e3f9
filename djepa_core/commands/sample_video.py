"""`djepa sample-video`: class-conditional clips as GIF / WebP / .npz files, plus a PNG sheet of their frames."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from djepa_core.presets import PRESETS

DEFAULT_VIDEO_PRESET = "djepa-video-tiny"


def _sample_video(args: argparse.Namespace) -> int:
    import torch

    from djepa_core.assets import default_video_checkpoint
    from djepa_core.checkpoint import load_video_generator
    from djepa_core.images import grid_image, save_png
    from djepa_core.presets import get_preset
    from djepa_core.video_pipeline import VideoGenerator
    from djepa_core.videos import clip_to_uint8, save_video

    if args.per_class < 1:
        print(f"error: --per-class must be >= 1, got {args.per_class}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    checkpoint = args.checkpoint
    if checkpoint is None and args.preset is None:
        checkpoint = default_video_checkpoint()
    if checkpoint is not None:
        gen = load_video_generator(checkpoint, device=args.device)
        source = str(checkpoint)
    else:
        preset = args.preset or DEFAULT_VIDEO_PRESET
        gen = VideoGenerator.from_config(get_preset(preset), seed=args.init_seed).to(args.device)
        source = f"preset {preset} (untrained, init seed {args.init_seed})"
    num_classes = gen.config.model.num_classes
    classes = args.classes if args.classes is not None else list(range(min(num_classes, 10)))
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        print(f"error: class ids {bad} are outside [0, {num_classes})", file=sys.stderr)
        return 2
    labels = [c for c in classes for _ in range(args.per_class)]
    settings = gen.settings(num_steps=args.steps, cfg_scale=args.cfg, temperature=args.temperature,
                            head_steps=args.head_steps, order=args.order)
    print(f"sampling {len(labels)} clips from {source}: {settings.num_steps} AR steps ({settings.order} order), "
          f"cfg {settings.cfg_scale}", file=sys.stderr)
    clips = gen.generate(labels, seeds=[args.seed + i for i in range(len(labels))], settings=settings,
                         num_frames=args.num_frames).cpu()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (label, clip) in enumerate(zip(labels, clips, strict=True)):
        upscale = 1 if args.format == "npz" else args.upscale
        save_video(clip_to_uint8(clip), args.out / f"class{label}-seed{args.seed + i}.{args.format}", args.fps, upscale)
    sheet = save_png(grid_image(clips.flatten(0, 1), ncols=clips.shape[1]), args.out / "frames.png")
    print(f"wrote {len(labels)} {args.format} files and {sheet} (one row per clip) to {args.out} in "
          f"{time.perf_counter() - t0:.1f}s")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("sample-video", help="write class-conditional video clips (GIF, WebP or .npz)",
                       description="Generate class-conditional clips with a video model (default: the embedded "
                                   "moving-digits model) and write one file per clip plus frames.png.")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="a djepa video .safetensors checkpoint")
    src.add_argument("--preset", choices=sorted(k for k, v in PRESETS.items() if v.tokenizer.kind == "video"),
                     help="an untrained video preset")
    s.add_argument("--classes", type=int, nargs="+", help="class ids (default: the first 10)")
    s.add_argument("--per-class", type=int, default=1, help="clips per class (default 1)")
    s.add_argument("--num-frames", type=int, help="frames per clip (default: the model's)")
    s.add_argument("--order", choices=["random", "frames"], help="generation order (default random)")
    s.add_argument("--steps", type=int, help="masked-AR steps (default: the model's)")
    s.add_argument("--cfg", type=float, help="classifier-free guidance scale (1 = none)")
    s.add_argument("--temperature", type=float)
    s.add_argument("--head-steps", type=int, help="ODE grid points / respaced DDPM steps")
    s.add_argument("--seed", type=int, default=0, help="seed of the first clip; clip i uses seed+i")
    s.add_argument("--init-seed", type=int, default=0, help="weight init seed for untrained presets")
    s.add_argument("--format", choices=["gif", "webp", "npz"], default="gif")
    s.add_argument("--fps", type=float, default=8.0)
    s.add_argument("--upscale", type=int, default=4, help="GIF/WebP pixels per model pixel (default 4)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.add_argument("--out", type=Path, default=Path("out/videos"), help="output folder (default out/videos)")
    s.set_defaults(func=_sample_video)
