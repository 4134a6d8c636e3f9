"""Parity runner: recompute every recorded output of a reference fixture folder with our code.

    python -m djepa_core.compat.parity FIXTURE_DIR [FIXTURE_DIR ...]

FIXTURE_DIR is a model fixture (holding `index.json`, like shared/fixtures/official/tiny), a VAE
fixture (holding `golden.json` with VAE weights recipe, like tiny-vae), or a folder of such
fixtures (searched recursively). Prints one line per output with its largest absolute difference,
ends with `parity: N/N outputs match`, and exits 1 on any mismatch (2 when nothing was found).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from djepa_core.compat.compare import ParityResult


def find_fixtures(root: Path) -> list[tuple[str, Path]]:
    """(kind, folder) of every fixture under `root` (itself included)."""
    found: list[tuple[str, Path]] = []
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        if (folder / "index.json").is_file():
            found.append(("model", folder))
        elif (folder / "golden.json").is_file() and (folder / "golden.safetensors").is_file():
            desc = json.loads((folder / "golden.json").read_text())
            if "weights" in desc and "structure" in desc:
                found.append(("vae", folder))
    return found


def run(root: Path, log=print) -> list[ParityResult]:  # type: ignore[no-untyped-def]
    from djepa_core.compat.parity_model import run_model_parity

    results: list[ParityResult] = []
    for kind, folder in find_fixtures(root):
        if kind == "model":
            results.extend(run_model_parity(folder))
        else:
            from djepa_core.compat.vae_parity import run_vae_parity

            results.extend(replace(r, name=f"{folder.name}/{r.name.removeprefix('outputs.')}")
                           for r in run_vae_parity(folder))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m djepa_core.compat.parity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fixture_dirs", nargs="+", type=Path, help="fixture folder(s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (the goldens were made with 1; default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results: list[ParityResult] = []
    for root in args.fixture_dirs:
        if not root.is_dir():
            print(f"error: {root} is not a folder", file=sys.stderr)
            return 2
        for r in run(root):
            print(r.line())
            results.append(r)
    if not results:
        print("error: no fixture found (expected index.json or golden.json)", file=sys.stderr)
        return 2
    ok = sum(r.ok for r in results)
    print(f"parity: {ok}/{len(results)} outputs match")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
