"""`djepa train`: train (or resume) a generator from a YAML run config; torchrun for several GPUs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def _train(args: argparse.Namespace) -> int:
    from djepa_core.trainers.config import dump_config, load_config

    if args.export is not None:
        import yaml

        from djepa_core.trainers.export import export_checkpoint

        if args.out is None:
            print("error: --export needs --out", file=sys.stderr)
            return 2
        sampling = {}
        for item in args.sampling or []:
            key, sep, raw = item.partition("=")
            if not sep:
                print(f"error: --sampling expects key=value, got {item!r}", file=sys.stderr)
                return 2
            sampling[key] = yaml.safe_load(raw)
        print(f"wrote {export_checkpoint(args.export, args.out, sampling, args.name, half=args.half)}")
        return 0
    config = load_config(args.config, args.set or [])
    if args.print_config:
        print(dump_config(config), end="")
        return 0
    from djepa_core.trainers.loop import train

    last = train(config, args.max_steps)
    if last and os.environ.get("RANK", "0") == "0":
        print("final: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items()), file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("train", help="train a generator from a YAML run config",
                       description="Train (or resume) a D-JEPA generator. One process per GPU under torchrun "
                                   "(`torchrun --nproc_per_node=N -m djepa_core.cli train ...`): DDP with NCCL on "
                                   "CUDA, gloo on CPU. Writes config.yaml, metrics.csv, checkpoints/, samples/ and "
                                   "model.safetensors (EMA weights) into the run folder.")
    s.add_argument("config", type=Path, nargs="?",
                   help="run config (YAML, strict keys; see configs/); omitted: defaults + --set")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set loop.steps=100 --set optim.lr=1e-3 (repeatable)")
    s.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    s.add_argument("--max-steps", type=int, help="stop (with a checkpoint) after this many steps of this session")
    s.add_argument("--export", type=Path, metavar="CKPT",
                   help="write a training checkpoint's EMA weights as a djepa .safetensors (needs --out) and exit")
    s.add_argument("--out", type=Path, help="output of --export")
    s.add_argument("--sampling", action="append", metavar="KEY=VALUE",
                   help="with --export: override a sampling default stored in the file, e.g. cfg_scale=3.0")
    s.add_argument("--name", help="with --export: the generator's name")
    s.add_argument("--half", action="store_true",
                   help="with --export: store the weights as float16 (half the bytes; loaded back as float32)")
    s.set_defaults(func=_train)
