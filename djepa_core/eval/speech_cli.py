"""`djepa eval speech`: the command's body (arguments are defined by `djepa_core/commands/eval.py`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def run_speech_eval(args: argparse.Namespace) -> int:
    import torch

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
    checkpoints = list(args.checkpoint or [])
    if not checkpoints:
        default = default_speech_checkpoint()
        if default is None:
            print("error: no --checkpoint given and this build ships no embedded speech model", file=sys.stderr)
            return 2
        checkpoints = [default]
    names = list(args.name or [])
    if names and len(names) != len(checkpoints):
        print("error: give one --name per --checkpoint", file=sys.stderr)
        return 2
    names = names or [Path(c).stem for c in checkpoints]
    overrides = {"num_steps": args.steps, "cfg_scale": args.cfg, "temperature": args.temperature,
                 "head_steps": args.head_steps}
    rows: dict[str, dict[str, Any]] = {}
    for name, ckpt in zip(names, checkpoints, strict=True):
        gen = load_speech_generator(ckpt, device=args.device)
        print(f"evaluating {name} ({ckpt}) on {args.sentences} held-out sentences ...", file=sys.stderr)
        report = evaluate_speech(gen, args.corpus, args.sentences, args.seed, lm=args.lm,
                                 settings_overrides=overrides,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
        rows[name] = {"checkpoint": str(ckpt), **report}
        print(f"== {name}\n{format_report(report)}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"data": str(args.corpus), "models": rows}, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
