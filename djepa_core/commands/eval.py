"""`djepa eval`: quality measures of class-conditional image generators on the built-in digits.

Class accuracy of samples under a classifier fit on the real training split (next to its accuracy
on the real test split), and the Fréchet distance of its features against the real test split
(next to the train-vs-test floor). Seeds fixed; prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from djepa_core.fastpath import add_fast_path_arguments


def _eval(args: argparse.Namespace) -> int:
    import torch

    if args.target != "digits":
        given = {"--precision": args.precision != "fp32", "--compile": args.compile != "none",
                 "--time-shift": args.time_shift is not None}
        image_only = [flag for flag, on in given.items() if on]
        if image_only:
            print(f"error: {', '.join(image_only)} apply to the digits (image) evaluation only", file=sys.stderr)
            return 2
    if args.target == "video":
        from djepa_core.eval.video_cli import run_video_eval

        return run_video_eval(args)
    if args.target == "speech":
        from djepa_core.eval.speech_cli import run_speech_eval

        return run_speech_eval(args)

    from djepa_core.assets import default_image_checkpoint
    from djepa_core.checkpoint import load_generator
    from djepa_core.eval.digits import evaluate_generator, format_table, get_reference, reference_summary
    from djepa_core.eval.runs import named_checkpoints, write_report
    from djepa_core.fastpath import fast_path_from_args

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.per_class is None:
        args.per_class = 144
    if args.per_class < 2:
        print("error: --per-class must be >= 2", file=sys.stderr)
        return 2
    try:
        runs = named_checkpoints(args.checkpoint, args.name, default_image_checkpoint(), "image")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    settings = {"num_steps": args.steps, "cfg_scale": args.cfg, "temperature": args.temperature,
                "head_steps": args.head_steps, "cfg_schedule": args.cfg_schedule, "ode_method": args.ode,
                "diffusion_method": args.diffusion_method, "time_shift": args.time_shift}
    generators = [load_generator(c, device=args.device).accelerate(fast_path_from_args(args)) for _, c in runs]
    sizes = {g.config.tokenizer.image_size for g in generators}
    channels = {g.config.tokenizer.channels for g in generators}
    if len(sizes) != 1 or channels != {1} or {g.config.model.num_classes for g in generators} != {10}:
        print("error: digits evaluation needs 1-channel, 10-class generators of one image size", file=sys.stderr)
        return 2
    reference = get_reference(sizes.pop(), seed=args.classifier_seed)
    rows: dict[str, dict[str, Any]] = {}
    for (name, ckpt), gen in zip(runs, generators, strict=True):
        print(f"evaluating {name} ({ckpt}) ...", file=sys.stderr)
        measures = evaluate_generator(gen, reference, args.per_class, args.seed, **settings)
        rows[name] = {"checkpoint": str(ckpt), "fast_path": gen.fast.describe(), **measures}
    print(format_table(reference, rows))
    write_report(args.out, {"data": "digits", "reference": reference_summary(reference), "models": rows})
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("eval", help="class accuracy and feature Fréchet distance of samples (digits)",
                       description="Evaluate class-conditional generators on the built-in digits data: "
                                   "accuracy of samples under a classifier fit on the real training split "
                                   "and the Fréchet distance of its features against the real test split, "
                                   "next to the real test accuracy and the train-vs-test floor.")
    s.add_argument("target", nargs="?", choices=["digits", "video", "speech"], default="digits",
                   help="digits (images, the default) or video (moving digits: per-frame class accuracy and "
                        "temporal consistency of clips; --per-class defaults to 50 there) or speech (held-out "
                        "sentences of --corpus: recognizer WER of generated vs reference audio, mel L1, "
                        "duration ratio; needs the speech-eval extra)")
    s.add_argument("--checkpoint", type=Path, action="append",
                   help="djepa .safetensors generator (repeatable; default: the embedded model)")
    s.add_argument("--name", action="append", help="row name per --checkpoint")
    s.add_argument("--per-class", type=int, default=None,
                   help="samples per class (default 144: 1,440, the size of the training split, so the sample-size "
                        "bias of the Fréchet distance matches the train-vs-test floor's; video: 50)")
    s.add_argument("--seed", type=int, default=0, help="seed of the first sample; sample i uses seed+i")
    s.add_argument("--classifier-seed", type=int, default=0, help="seed of the evaluation classifier")
    s.add_argument("--steps", type=int, help="masked-AR steps (default: the model's)")
    s.add_argument("--cfg", type=float, help="classifier-free guidance scale")
    s.add_argument("--cfg-schedule", choices=["linear", "constant"])
    s.add_argument("--temperature", type=float)
    s.add_argument("--head-steps", type=int)
    s.add_argument("--ode", choices=["euler", "heun"], help="ODE solver of the flow head")
    s.add_argument("--time-shift", type=float,
                   help="flow head: shift s of the ODE time grid, t -> t / (t + s - s t) (default: the model's)")
    s.add_argument("--diffusion-method", choices=["ddpm", "ddim"], help="sampler of the Gaussian head")
    s.add_argument("--order", choices=["random", "frames"], help="video: generation order over space-time tokens")
    s.add_argument("--corpus", type=Path, help="speech: an LJSpeech-layout corpus (its held-out split is used)")
    s.add_argument("--sentences", type=int, default=40, help="speech: held-out sentences to speak (default 40)")
    s.add_argument("--lm", choices=["corpus", "generic"], default="corpus",
                   help="speech: recognizer language model, a bigram of the corpus's training text (default) "
                        "or pocketsphinx's generic English one")
    s.add_argument("--device", default="cpu")
    add_fast_path_arguments(s)
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    s.add_argument("--out", type=Path, help="write the JSON report here")
    s.set_defaults(func=_eval)
