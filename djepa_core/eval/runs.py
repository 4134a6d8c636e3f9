"""What every `djepa eval` target shares: which checkpoints a run scores (and their row names), and the report file."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def named_checkpoints(checkpoints: Sequence[str | Path] | None, names: Sequence[str] | None, default: Path | None,
                      modality: str) -> list[tuple[str, str | Path]]:
    """(row name, checkpoint) pairs: the given checkpoints, else the embedded default model of `modality`.

    Names default to each file's stem (its folder's name for a run folder's `model.safetensors`). Raises
    ValueError with the message for the user when there is nothing to score or the names don't pair up."""
    paths: list[str | Path] = list(checkpoints or [])
    if not paths:
        if default is None:
            raise ValueError(f"no --checkpoint given and this build ships no embedded {modality} model")
        paths = [default]
    given = list(names or [])
    if given and len(given) != len(paths):
        raise ValueError("give one --name per --checkpoint")
    rows = given or [Path(c).stem if Path(c).stem != "model" else Path(c).parent.name for c in paths]
    return list(zip(rows, paths, strict=True))


def write_report(out: Path | None, report: dict[str, Any]) -> None:
    """Write the run's JSON report to `out` (when given), creating its folder."""
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
