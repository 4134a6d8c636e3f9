"""The `djepa` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from djepa_core.cli import main
from djepa_core.presets import PRESETS

REPO = Path(__file__).resolve().parents[1]


def _exit_code(argv: list[str]) -> int:
    """main()'s return value, or the code of a SystemExit it raised (a message means 1)."""
    try:
        return main(argv)
    except SystemExit as e:
        if e.code is None:
            return 0
        return e.code if isinstance(e.code, int) else 1


def test_sample_writes_png(tmp_path: Path, one_thread: None) -> None:
    out = tmp_path / "g.png"
    rc = main(["sample", "--preset", "djepa-tiny", "--classes", "1", "2", "--per-class", "2",
               "--out", str(out), "--quiet"])
    assert rc == 0
    with Image.open(out) as img:
        img.load()
        assert img.format == "PNG" and img.mode == "RGB"
        # 16 px images upscaled x4 to 64 px cells, 2 px padding: 2 columns (per class) x 2 rows (classes)
        assert img.size == (2 * (64 + 2) + 2, 2 * (64 + 2) + 2)
        assert img.getpixel((0, 0)) == (255, 255, 255)  # padding is white


def test_sample_is_deterministic(tmp_path: Path, one_thread: None) -> None:
    args = ["sample", "--preset", "djepa-tiny", "--classes", "3", "--per-class", "2", "--seed", "5", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a.png")]) == 0
    assert main([*args, "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.parametrize("cls", ["10", "-1"])
def test_invalid_class_id(tmp_path: Path, cls: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad.png"
    rc = _exit_code(["sample", "--preset", "djepa-tiny", "--classes", cls, "--per-class", "1", "--out", str(out),
                     "--quiet"])
    assert rc != 0
    assert not out.exists()


def test_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = _exit_code(["sample", "--checkpoint", str(tmp_path / "none.safetensors"), "--out",
                     str(tmp_path / "x.png"), "--quiet"])
    assert rc != 0
    assert "none.safetensors" in capsys.readouterr().err


def test_presets_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    from djepa_core.speech_pipeline import SPEECH_PRESETS

    assert len(lines) == len(PRESETS) + len(SPEECH_PRESETS)
    for name in [*PRESETS, *SPEECH_PRESETS]:
        assert any(line.split()[0] == name for line in lines), name
    b_line = next(line for line in lines if line.split()[0] == "djepa-b")
    assert "212.41M" in b_line


def test_sample_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sample", "--help"])
    assert info.value.code == 0
    assert "--per-class" in capsys.readouterr().out


def test_no_command_is_an_error() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code != 0


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "djepa"
    if not script.is_file():
        script = REPO / ".venv" / "bin" / "djepa"
    if not script.is_file():
        pytest.skip("the djepa console script is not installed")
    out = tmp_path / "x.png"
    proc = subprocess.run([str(script), "sample", "--preset", "djepa-tiny", "--per-class", "1", "--classes", "0",
                           "--out", str(out), "--quiet", "--threads", "1"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    with Image.open(out) as img:
        assert img.size == (64 + 4, 64 + 4)
