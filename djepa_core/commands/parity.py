"""`djepa parity`: check our code against reference fixtures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_PRESET = "djepa-s"

def _parity(args: argparse.Namespace) -> int:
    from djepa_core.compat.parity import main as parity_main

    return parity_main([str(p) for p in args.fixture_dirs])


def register(sub: Any) -> None:
    pa = sub.add_parser("parity", help="check our code against reference fixtures")
    pa.add_argument("fixture_dirs", nargs="+", type=Path)
    pa.set_defaults(func=_parity)
