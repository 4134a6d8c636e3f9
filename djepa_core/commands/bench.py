"""`djepa bench sampler|train`: speed, FLOPs and matmul-rate fraction of the sampler and the trainer step
(see bench/RESULTS.md)."""

from __future__ import annotations

import argparse
from typing import Any


def _sampler(args: argparse.Namespace) -> int:
    from djepa_core.profiling.sampler import run

    return run(args)


def _train(args: argparse.Namespace) -> int:
    from djepa_core.profiling.train import run

    return run(args)


def register(sub: Any) -> None:
    from djepa_core.profiling import train
    from djepa_core.profiling.sampler import add_arguments

    b = sub.add_parser("bench", help="benchmarks: the sampler's speed and FLOP use")
    kinds = b.add_subparsers(dest="bench_kind", required=True, metavar="{sampler,train}")
    s = kinds.add_parser("sampler", help="images/s, ms/image, FLOPs per image and achieved/matmul FLOP/s per "
                                          "preset, case and batch size",
                         description="Time full generations per preset, head-sampler case, guidance scale and "
                                     "batch size; count FLOPs per part; compare with the measured matmul rate.")
    add_arguments(s)
    s.set_defaults(func=_sampler)
    t = kinds.add_parser("train", help="training images/s and MFU of a preset (loss, backward, AdamW, EMA)",
                         description=(train.__doc__ or "").split("\n\n")[0])
    train.add_arguments(t)
    t.set_defaults(func=_train)
