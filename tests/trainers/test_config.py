from __future__ import annotations

import math
from pathlib import Path

import pytest

from djepa_core.cli import main
from djepa_core.trainers.config import TrainConfig, apply_overrides, dump_config, load_config
from djepa_core.trainers.schedule import lr_at

REPO = Path(__file__).resolve().parents[2]


def test_yaml_strict_keys_and_set(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("preset: djepa-tiny\nloop:\n  steps: 7\n")
    cfg = load_config(path, ["loop.batch_size=32", "optim.betas=[0.9, 0.99]", "generator.model.jepa_weight=0"])
    assert cfg.loop.steps == 7 and cfg.loop.batch_size == 32 and cfg.optim.betas == (0.9, 0.99)
    assert cfg.generator_config().model.jepa_weight == 0
    with pytest.raises(ValueError, match="stepz"):
        load_config(path, ["loop.stepz=3"])
    with pytest.raises(ValueError, match="bogus"):
        load_config(path, ["bogus=1"])
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(path, ["generator.model.width=3"])
    assert load_config(path, ["optim.lr=1e-4"]).optim.lr == 1e-4  # YAML 1.1 reads 1e-4 as a string
    with pytest.raises(ValueError, match=r"loop\.steps: expected an integer"):
        load_config(path, ["loop.steps=ten"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["loop.steps"])


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(REPO / "configs" / "digits.yaml")
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_lr_schedules() -> None:
    assert lr_at(0, 1.0, 4, 10) == 0.25 and lr_at(3, 1.0, 4, 10) == 1.0 and lr_at(9, 1.0, 4, 10) == 1.0
    assert lr_at(4, 1.0, 4, 10, "cosine") == 1.0
    assert math.isclose(lr_at(7, 1.0, 4, 10, "cosine", 0.1), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert math.isclose(lr_at(10, 1.0, 4, 10, "cosine", 0.1), 0.1)
    with pytest.raises(ValueError):
        lr_at(5, 1.0, 0, 10, "linear")


def test_cli_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(REPO / "configs" / "digits.yaml"), "--set", "loop.steps=5", "--print-config"]) == 0
    assert "steps: 5" in capsys.readouterr().out
    assert main(["train", str(REPO / "configs" / "digits.yaml"), "--set", "loop.nope=5"]) == 2
