"""Rank-0 metrics: CSV rows (`metrics.csv`) and/or TensorBoard scalars; one schema for both."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

FIELDS = ("step", "epoch", "lr", "loss", "denoise", "jepa", "grad_norm", "images_per_s", "mask_ratio",
          "elapsed_s")


class MetricsLogger:
    def __init__(self, run_dir: str | Path, backend: str = "csv") -> None:
        self.run_dir = Path(run_dir)
        self._csv_file: Any = None
        self._writer: Any = None
        self._tb: Any = None
        if backend in ("csv", "both"):
            path = self.run_dir / "metrics.csv"
            new = not path.exists() or path.stat().st_size == 0
            self._csv_file = open(path, "a", newline="")  # noqa: SIM115 (closed in close())
            self._writer = csv.DictWriter(self._csv_file, fieldnames=FIELDS)
            if new:
                self._writer.writeheader()
        if backend in ("tensorboard", "both"):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ValueError(f"log.backend {backend!r} needs the `tensorboard` package ({e})") from None
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    def log(self, row: dict[str, float]) -> None:
        if self._writer is not None:
            self._writer.writerow({k: row.get(k, "") for k in FIELDS})
            self._csv_file.flush()
        if self._tb is not None:
            step = int(row["step"])
            for k, v in row.items():
                if k != "step":
                    self._tb.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        if self._csv_file is not None:
            self._csv_file.close()
        if self._tb is not None:
            self._tb.close()


def truncate_csv(path: str | Path, step: int) -> None:
    """Drop rows after `step` (a resumed run rewrites the steps it repeats)."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= step]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(keep)
