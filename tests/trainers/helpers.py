"""Tiny run configs for trainer tests (djepa-tiny on digits, CPU, 1 thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from djepa_core.trainers.config import TrainConfig, apply_overrides


def tiny_config(run_dir: Path, *overrides: str, **sections: Any) -> TrainConfig:
    data: dict[str, Any] = {
        "run_dir": str(run_dir), "preset": "djepa-tiny", "device": "cpu", "seed": 3,
        "data": {"kind": "digits"},
        "optim": {"lr": 1e-3, "warmup_steps": 2, "schedule": "cosine"},
        "loop": {"steps": 4, "batch_size": 8, "ema_decay": 0.9, "threads": 1},
        "checkpoint": {"every": 2, "keep": 2},
        "log": {"every": 1, "progress": False, "sample_per_class": 1, "sample_classes": 2},
        "generator": {"sampling": {"num_steps": 2, "head_steps": 4}},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v}
    return TrainConfig.from_dict(apply_overrides(data, list(overrides)))
