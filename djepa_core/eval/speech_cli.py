"""`djepa eval speech`: the command's body (arguments are defined by `djepa_core/commands/eval.py`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run_speech_eval(args: argparse.Namespace) -> int:
    import torch

    from djepa_core.eval.runs import named_checkpoints, write_report
    from djepa_core.eval.speech import evaluate_speech, format_report
    from djepa_core.speech_pipeline import default_speech_checkpoint, load_speech_generator

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.corpus is None:
        print("error: speech evaluation needs --corpus (an LJSpeech-layout folder; `djepa data speech` builds one)",
              file=sys.stderr)
        return 2
    if args.sentences < 1:
        print("error: --sentences must be >= 1", file=sys.stderr)
        return 2
    try:
        runs = named_checkpoints(args.checkpoint, args.name, default_speech_checkpoint(), "speech")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    overrides = {"num_steps": args.steps, "cfg_scale": args.cfg, "temperature": args.temperature,
                 "head_steps": args.head_steps}
    rows: dict[str, dict[str, Any]] = {}
    for name, ckpt in runs:
        gen = load_speech_generator(ckpt, device=args.device)
        print(f"evaluating {name} ({ckpt}) on {args.sentences} held-out sentences ...", file=sys.stderr)
        report = evaluate_speech(gen, args.corpus, args.sentences, args.seed, lm=args.lm,
                                 settings_overrides=overrides,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
        rows[name] = {"checkpoint": str(ckpt), **report}
        print(f"== {name}\n{format_report(report)}")
    write_report(args.out, {"data": str(args.corpus), "models": rows})
    return 0
