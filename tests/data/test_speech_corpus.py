"""`djepa data speech`: a seeded espeak-ng corpus in the LJSpeech layout (needs espeak-ng)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from djepa_core.audio_io import read_wav
from djepa_core.cli import main
from djepa_core.data.speech_corpus import generate_sentences
from djepa_core.text import normalize
from tests.conftest import REQUIRE_FIXTURES


@pytest.fixture(scope="module")
def espeak() -> None:
    if shutil.which("espeak-ng") is None:
        if REQUIRE_FIXTURES:
            pytest.fail("espeak-ng is not installed (apt-get install espeak-ng; DJEPA_REQUIRE_FIXTURES=1)")
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")


def test_sentences_are_seeded_varied_and_normalizable() -> None:
    a = generate_sentences(300, seed=3)
    assert a == generate_sentences(300, seed=3) and a != generate_sentences(300, seed=4)
    assert len(set(a)) == 300
    assert sum(any(c.isdigit() for c in s) for s in a) > 100  # numbers, years, money, times
    assert any("$" in s or "£" in s for s in a) and any("%" in s for s in a)
    assert any(s.split()[0] in ("Mr.", "Mrs.", "Dr.", "Capt.", "Gen.", "Prof.", "Col.", "Rev.", "Sgt.") for s in a)
    for s in a:
        n = normalize(s)
        assert n and not any(c.isdigit() for c in n)


def test_cli_builds_a_corpus(espeak: None, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    assert main(["data", "speech", "--out", str(out), "--sentences", "6", "--seed", "1", "--workers", "2"]) == 0
    lines = (out / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6
    texts = generate_sentences(6, seed=1)
    for line, raw in zip(lines, texts, strict=True):
        uid, text, norm = line.split("|")
        assert text == raw and norm == normalize(raw)
        audio, rate = read_wav(out / "wavs" / f"{uid}.wav")
        assert rate == 22050
        seconds = audio.numel() / rate
        words = len(norm.split())
        assert 0.15 * words < seconds < 1.0 * words + 1  # a plausible speaking rate
        assert audio.abs().max() > 0.05
    assert lines[0].startswith("DJ001-0001|")
    info = json.loads((out / "corpus.json").read_text())
    assert info["seed"] == 1 and info["voice"] == "en-us" and "eSpeak" in info["espeak_ng"]
    # refuses to overwrite without --force
    assert main(["data", "speech", "--out", str(out), "--sentences", "2"]) == 2


def test_missing_espeak_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on this PATH
    assert main(["data", "speech", "--out", str(tmp_path / "c"), "--sentences", "2"]) == 2
    assert "espeak-ng" in capsys.readouterr().err
    assert not (tmp_path / "c" / "metadata.csv").exists()
