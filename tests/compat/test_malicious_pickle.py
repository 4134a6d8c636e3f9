"""A planted malicious pickle (a .pth whose unpickling runs code) is refused by every loader, unrun.

The payload writes a marker file when unpickled. A positive control first shows that a full unpickle
really runs it (in a subprocess); then each of our loaders (read_container, the reference importer,
the MAR VAE reader, training-checkpoint resume, the djepa checkpoint loader, the service engine, and
`djepa convert`) must refuse the same file and leave no marker.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from djepa_core.checkpoint import load_generator
from djepa_core.cli import main
from djepa_core.compat.convert import import_reference
from djepa_core.compat.mar_vae import read_state_dict
from djepa_core.compat.state_dict import read_container
from djepa_core.trainers.state import load_checkpoint


class Payload:
    """Unpickling this calls exec() on code that writes `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def plant(folder: Path, marker: Path, legacy: bool = False) -> Path:
    """A .pth that looks like a reference checkpoint but carries the payload."""
    path = folder / ("evil_legacy.pth" if legacy else "evil.pth")
    container = {"model": {"w": torch.zeros(2)}, "model_ema": {"w": torch.zeros(2)}, "args": Payload(marker)}
    torch.save(container, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_the_planted_file_really_runs_code_when_fully_unpickled(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "control.txt"
    path = plant(tmp_path, marker, legacy)
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True)
    assert marker.read_text() == "pwned"  # so the refusals below are refusals of a real attack


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_every_loader_refuses_it_without_running_it(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "marker.txt"
    path = plant(tmp_path, marker, legacy)
    loaders = {
        "read_container": lambda: read_container(path),
        "import_reference": lambda: import_reference(path, path),
        "mar_vae.read_state_dict": lambda: read_state_dict(path),
        "trainer resume": lambda: load_checkpoint(path),
        "load_generator": lambda: load_generator(path),
    }
    for name, load in loaders.items():
        with pytest.raises((ValueError, pickle.UnpicklingError)) as info:
            load()
        assert not marker.exists(), f"{name} ran the payload"
        text = str(info.value)
        assert "weights_only" in text or "djepa convert" in text or "Unsupported global" in text, (name, text)


def test_the_service_engine_refuses_it(tmp_path: Path) -> None:
    from service.config import EngineConfig
    from service.engine import TorchImageEngine

    marker = tmp_path / "marker.txt"
    path = plant(tmp_path, marker)
    for config in (EngineConfig(reference=str(path), vae=str(path)), EngineConfig(checkpoint=str(path))):
        with pytest.raises(ValueError):
            TorchImageEngine.load(config)
        assert not marker.exists()


def test_djepa_convert_refuses_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker.txt"
    path = plant(tmp_path, marker)
    out = tmp_path / "out.safetensors"
    assert main(["convert", str(path), "--vae", str(path), "--out", str(out)]) == 2
    assert "weights_only" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()
