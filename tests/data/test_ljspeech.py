"""The LJSpeech-1.1 layout loader: metadata rules, resampling, the fixed split, a generated corpus."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from djepa_core.audio_io import write_wav
from djepa_core.data.ljspeech import LJSpeech, is_held_out, read_metadata
from djepa_core.tokenizers.audio import MelTokenizer
from tests.conftest import REQUIRE_FIXTURES


def tone(seconds: float, rate: int, f: float = 220.0) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return 0.3 * torch.sin(2 * math.pi * f * t)


@pytest.fixture
def handmade(tmp_path: Path) -> Path:
    root = tmp_path / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    rows = [
        'LJ001-0001|Printing, in the only sense with which we are at present concerned, about 1455.|'
        'Printing, in the only sense with which we are at present concerned, about fourteen fifty-five.',
        'LJ001-0002|He said "in being comparatively modern."|',  # empty normalized column: ours is used
        "LJ001-0003|Mr. Smith paid $3",  # two columns only
    ]
    (root / "metadata.csv").write_text("\n".join(rows) + "\n\n", encoding="utf-8")
    write_wav(root / "wavs" / "LJ001-0001.wav", tone(0.5, 22050), 22050)
    write_wav(root / "wavs" / "LJ001-0002.wav", tone(0.5, 16000), 16000)  # resampled on load
    write_wav(root / "wavs" / "LJ001-0003.wav", tone(0.25, 44100), 44100)
    return root


def test_metadata_and_audio(handmade: Path) -> None:
    items = read_metadata(handmade)
    assert [u.id for u in items] == ["LJ001-0001", "LJ001-0002", "LJ001-0003"]
    assert items[0].normalized == ("printing, in the only sense with which we are at present concerned, "
                                   "about fourteen fifty-five.")
    assert items[1].text == 'He said "in being comparatively modern."'
    assert items[1].normalized == "he said in being comparatively modern."
    assert items[2].normalized == "mister smith paid three dollars"
    ds = LJSpeech(handmade)
    assert len(ds) == 3
    for i, seconds in enumerate((0.5, 0.5, 0.25)):
        audio, text = ds[i]
        assert text == items[i].normalized
        assert audio.dtype == torch.float32 and abs(audio.numel() - seconds * 22050) <= 1
        spec = torch.fft.rfft(audio)
        assert abs(float(spec.abs().argmax()) * 22050 / audio.numel() - 220.0) < 4  # still a 220 Hz tone
    tokens = MelTokenizer().encode(ds[1][0][None])
    assert tokens.shape == (1, math.ceil((11025 // 256) / 4), 320)


def test_split_is_fixed_by_id(handmade: Path, tmp_path: Path) -> None:
    ids = [f"LJ{c:03d}-{i:04d}" for c in range(1, 5) for i in range(1, 101)]
    held = [u for u in ids if is_held_out(u, 5)]
    assert 5 <= len(held) <= 40 and held == [u for u in ids if is_held_out(u, 5)]
    ds_all, ds_train, ds_test = (LJSpeech(handmade, s, test_percent=50) for s in ("all", "train", "test"))
    assert len(ds_train) + len(ds_test) == len(ds_all)
    assert {u.id for u in ds_train.items}.isdisjoint({u.id for u in ds_test.items})
    with pytest.raises(ValueError, match="split"):
        LJSpeech(handmade, "val")  # type: ignore[arg-type]


def test_errors_name_the_problem(handmade: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"metadata\.csv"):
        LJSpeech(tmp_path / "nowhere")
    (handmade / "wavs" / "LJ001-0003.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"LJ001-0003\.wav"):
        LJSpeech(handmade)
    (handmade / "metadata.csv").write_text("LJ9-1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"metadata\.csv:1"):
        read_metadata(handmade)


def test_loads_a_generated_corpus(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        if REQUIRE_FIXTURES:
            pytest.fail("espeak-ng is not installed (apt-get install espeak-ng; DJEPA_REQUIRE_FIXTURES=1)")
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from djepa_core.data.speech_corpus import build_corpus

    root = build_corpus(tmp_path / "corpus", 10, seed=0)
    ds = LJSpeech(root)
    assert len(ds) == 10
    tok = MelTokenizer()
    for audio, text in ds:
        tokens = tok.encode(audio[None])
        assert tokens.shape[1] == tok.num_tokens(audio.numel()) and len(text) > 10
        assert -3 < float(tokens.mean()) < 3 and 0.3 < float(tokens.std()) < 3  # the documented scale
