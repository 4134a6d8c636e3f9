"""Parity of our modules with the reference fixtures (shared/fixtures/official)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from djepa_core.compat.parity import main
from djepa_core.compat.parity_model import run_model_parity

SETTINGS = ("cfg_scale", "temperature", "step_t_index", "euler_step_grid_index")


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_whole_official_folder_matches(fixtures_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([str(fixtures_dir)])
    out = capsys.readouterr().out
    last = _last_line(out)
    assert rc == 0, out
    assert last.startswith("parity: ") and last.endswith(" outputs match"), last
    ok, total = last.removeprefix("parity: ").removesuffix(" outputs match").split("/")
    assert int(ok) == int(total) >= 100
    # one printed line per result, none of them a mismatch
    assert len(out.strip().splitlines()) == int(total) + 1
    assert "MISMATCH" not in out


def test_tiny_model_parity_covers_every_golden_output(fixtures_dir: Path) -> None:
    folder = fixtures_dir / "tiny"
    results = run_model_parity(folder)
    bad = [r.line() for r in results if not r.ok]
    assert not bad, "\n".join(bad)
    names = {r.name for r in results}
    for variant in ("gauss", "flow"):
        desc = json.loads((folder / f"golden_{variant}.json").read_text())
        expected = [k.removeprefix("outputs.") for k in desc["tensors"] if k.startswith("outputs.")]
        expected = [k for k in expected if k not in SETTINGS and not k.endswith("_noise_stream")]
        assert len(expected) > 20
        missing = [k for k in expected if f"tiny/{variant}/{k}" not in names]
        assert not missing, f"{variant}: outputs not checked: {missing}"


def test_perturbed_golden_is_a_mismatch(fixtures_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "tiny"
    shutil.copytree(fixtures_dir / "tiny", copy)
    golden_path = copy / "golden_gauss.safetensors"
    tensors = load_file(str(golden_path))
    tensors["outputs.encoder_output"] = tensors["outputs.encoder_output"].clone()
    tensors["outputs.encoder_output"].view(-1)[5] += 1e-2
    save_file(tensors, str(golden_path))

    rc = main([str(copy)])
    out = capsys.readouterr().out
    assert rc == 1
    lines = out.strip().splitlines()
    bad = [line for line in lines if "MISMATCH" in line]
    assert len(bad) == 1 and bad[0].startswith("tiny/gauss/encoder_output "), bad
    ok, total = _last_line(out).removeprefix("parity: ").removesuffix(" outputs match").split("/")
    assert int(ok) == int(total) - 1


def test_non_folder_path_returns_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "not_a_folder.txt"
    f.write_text("x")
    assert main([str(f)]) == 2
    assert main([str(tmp_path / "missing")]) == 2
    # an empty folder holds no fixture
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 2
    assert "error" in capsys.readouterr().err
