"""`djepa convert`: reference checkpoint + MAR VAE -> our format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from djepa_core.presets import PRESETS

DEFAULT_PRESET = "djepa-s"

def _convert(args: argparse.Namespace) -> int:
    from djepa_core.compat.convert import convert_reference

    path = convert_reference(args.checkpoint, args.vae, args.out, which=args.which, preset=args.preset,
                             name=args.name)
    print(f"wrote {path}")
    return 0


def register(sub: Any) -> None:
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

