"""The `djepa` command line. Run `djepa COMMAND --help` for each command's options.

Commands are discovered, not listed: every module of `djepa_core.commands` and every entry point of
the group `djepa.commands` (how the `service` package adds `djepa serve` without djepa_core importing
it) defines `register(subparsers)`, which adds its parser and sets `func`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

import djepa_core.commands
from djepa_core.allocator import tune_malloc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="djepa", description="D-JEPA generative models: sample, convert, check.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(djepa_core.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"djepa_core.commands.{info.name}").register(sub)
    for ep in sorted(entry_points(group="djepa.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as e:  # an optional extra that is not installed
            sub.add_parser(ep.name, help=f"(unavailable: {e})")
            continue
        register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    tune_malloc()  # no page faults per sampler step (djepa_core/allocator.py); DJEPA_MALLOC=default skips it
    args = build_parser().parse_args(argv)
    if not hasattr(args, "func"):
        print(f"error: command {args.command!r} is unavailable (missing optional dependencies)", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
