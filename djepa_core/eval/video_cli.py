"""`djepa eval video`: the command's body (arguments are defined by `djepa_core/commands/eval.py`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run_video_eval(args: argparse.Namespace) -> int:
    import torch

    from djepa_core.assets import default_video_checkpoint
    from djepa_core.checkpoint import load_video_generator
    from djepa_core.eval.runs import named_checkpoints, write_report
    from djepa_core.eval.video import evaluate_video_generator, format_table, get_reference, reference_summary

    if args.threads:
        torch.set_num_threads(args.threads)
    per_class = 50 if args.per_class is None else args.per_class
    if per_class < 2:
        print("error: --per-class must be >= 2", file=sys.stderr)
        return 2
    try:
        runs = named_checkpoints(args.checkpoint, args.name, default_video_checkpoint(), "video")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    settings = {"num_steps": args.steps, "cfg_scale": args.cfg, "temperature": args.temperature,
                "head_steps": args.head_steps, "cfg_schedule": args.cfg_schedule, "order": args.order}
    generators = [load_video_generator(c, device=args.device) for _, c in runs]
    shapes = {(g.config.tokenizer.num_frames, g.config.tokenizer.image_size, g.config.tokenizer.channels,
               g.config.model.num_classes) for g in generators}
    if len(shapes) != 1 or next(iter(shapes))[2:] != (1, 10):
        print("error: moving-digits evaluation needs 1-channel, 10-class video generators of one clip shape",
              file=sys.stderr)
        return 2
    frames, canvas, _, _ = shapes.pop()
    print(f"fitting the frame classifier on real moving-digits frames ({frames} frames, {canvas}x{canvas}) ...",
          file=sys.stderr)
    reference = get_reference(frames, canvas, seed=args.classifier_seed)
    rows: dict[str, dict[str, Any]] = {}
    for (name, ckpt), gen in zip(runs, generators, strict=True):
        print(f"evaluating {name} ({ckpt}) ...", file=sys.stderr)
        rows[name] = {"checkpoint": str(ckpt), **evaluate_video_generator(gen, reference, per_class, args.seed,
                                                                          **settings)}
    print(format_table(reference, rows))
    write_report(args.out, {"data": "moving-digits", "reference": reference_summary(reference), "models": rows})
    return 0
