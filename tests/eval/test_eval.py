from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from djepa_core.checkpoint import save_generator
from djepa_core.cli import main
from djepa_core.data.digits import load_digits_split
from djepa_core.eval.digits import DigitsReference, evaluate_generator, get_reference
from djepa_core.eval.frechet import frechet_between, frechet_distance, gaussian_stats
from djepa_core.pipeline import ImageGenerator
from djepa_core.presets import get_preset


def test_frechet_matches_closed_forms() -> None:
    from scipy import linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    m1, s1 = gaussian_stats(a)
    m2, s2 = gaussian_stats(b)
    ref = float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(linalg.sqrtm(s1 @ s2))))
    assert frechet_between(a, b) == pytest.approx(ref, rel=1e-8)
    assert frechet_between(a, a) == pytest.approx(0.0, abs=1e-8)
    # 1-d Gaussians: (m1 - m2)^2 + (sd1 - sd2)^2; singular covariances stay finite
    assert frechet_distance(np.zeros(1), np.eye(1) * 4, np.ones(1), np.eye(1)) == pytest.approx(2.0)
    z = np.zeros((50, 3))
    z[:, 0] = rng.normal(size=50)
    assert np.isfinite(frechet_between(z, a[:, :3]))


@pytest.fixture(scope="module")
def reference() -> DigitsReference:
    return get_reference(16, 0)  # the one the CLI uses in this process


def test_reference_classifier_and_floor(reference: DigitsReference) -> None:
    assert reference.test_accuracy > 0.93
    assert 0 < reference.floor < 10
    x, y = load_digits_split("test")
    real = reference.score(x, y)
    assert real["accuracy"] == reference.test_accuracy and real["frechet"] == pytest.approx(0.0, abs=1e-6)
    noise = reference.score(torch.rand_like(x) * 2 - 1, y)
    assert noise["accuracy"] < 0.3 and noise["frechet_ratio"] > 10


def test_evaluate_untrained_generator_and_cli(reference: DigitsReference, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    gen = ImageGenerator.from_config(get_preset("djepa-tiny"), seed=0)
    row = evaluate_generator(gen, reference, per_class=2, seed=0, num_steps=2, head_steps=4)
    assert row["samples"] == 20 and row["settings"]["num_steps"] == 2 and not row["meets_targets"]
    again = evaluate_generator(gen, reference, per_class=2, seed=0, num_steps=2, head_steps=4)
    assert again["frechet"] == row["frechet"]  # fixed seeds
    path = save_generator(tmp_path / "tiny.safetensors", gen)
    out = tmp_path / "report.json"
    assert main(["eval", "--checkpoint", str(path), "--per-class", "2", "--steps", "2", "--head-steps", "4",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["models"]) == {"tiny"} and report["reference"]["test_size"] == 360
    assert "| tiny |" in capsys.readouterr().out
