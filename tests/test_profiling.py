"""The sampler benchmark's measurements: FLOP split, matmul rate, and the command end to end (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from djepa_core.config import GeneratorConfig
from djepa_core.pipeline import ImageGenerator
from djepa_core.profiling.flops import count_flops, matmul_rate, split_flops
from djepa_core.profiling.sampler import main


def test_split_flops_adds_up_and_counts_the_parts(tiny_config: GeneratorConfig) -> None:
    gen = ImageGenerator.from_config(tiny_config)
    settings = gen.settings(num_steps=4, head_steps=5)

    def run() -> torch.Tensor:
        return gen.generate([0, 1], seed=0, settings=settings)

    split = split_flops(gen.model, run)
    assert split.encoder > 0 and split.predictor > 0 and split.head > 0
    assert split.total == count_flops(run)
    assert "encode" not in vars(gen.model)  # the instance-level wrap is undone
    # the head loop scales with its steps, the backbone does not
    more = split_flops(gen.model, lambda: gen.generate([0, 1], seed=0, settings=gen.settings(num_steps=4,
                                                                                             head_steps=10)))
    assert more.encoder == split.encoder and more.predictor == split.predictor and more.head > split.head


def test_matmul_rate_is_positive() -> None:
    assert matmul_rate(size=64, seconds=0.01) > 0


def test_bench_sampler_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rows.json"
    assert main(["--presets", "djepa-tiny", "--cases", "ar16-x100", "--batch", "2", "--cfg", "1.0,3.0",
                 "--ar-steps", "2", "--head-steps", "3", "--repeats", "1", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| djepa-tiny | ar16-x100 | 3 | 2 |" in table
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 2 and all(r["ms_per_image"] > 0 and r["gflop_per_image"]["head"] > 0 for r in rows)
    guided, plain = rows[1]["gflop_per_image"], rows[0]["gflop_per_image"]
    assert guided["total"] > plain["total"]  # guidance doubles the rows
    assert main(["--presets", "nope"]) == 2


def test_bench_train_command(capsys: pytest.CaptureFixture[str]) -> None:
    from djepa_core.profiling.train import main as train_main

    assert train_main(["--preset", "djepa-tiny", "--batch", "2", "--steps", "1", "--warmup", "0"]) == 0
    line = capsys.readouterr().out
    assert "djepa-tiny" in line and "images/s" in line and "MFU" in line
    assert train_main(["--preset", "djepa-tiny", "--batch", "0"]) == 2
