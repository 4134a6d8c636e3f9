"""Text-to-speech on phoneme-event symbols (presets `djepa-speech-*-phonemes`): the symbols come from
espeak-ng's phoneme events of the text, the duration model reads them, and generation runs from raw text."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from djepa_core.data.espeak_align import espeak_library_available, spoken_phonemes
from djepa_core.models.tts import TextToSpeechDJEPA
from djepa_core.speech_pipeline import SPEECH_PRESETS, SpeechGenerator, load_speech_generator, save_speech_generator
from djepa_core.text import PHONEMES, normalize, symbol_set
from tests.conftest import REQUIRE_FIXTURES

PHON = SPEECH_PRESETS["djepa-speech-tiny-phonemes"]
ALIGNED = SPEECH_PRESETS["djepa-speech-tiny-aligned"]


@pytest.fixture(scope="module", autouse=True)
def _espeak() -> None:
    if not espeak_library_available():
        if REQUIRE_FIXTURES:
            pytest.fail("espeak-ng is not installed (apt-get install espeak-ng; DJEPA_REQUIRE_FIXTURES=1)")
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")


def test_preset_is_the_aligned_one_on_phonemes() -> None:
    assert PHON.speech.symbols == "phoneme-events" and PHON.speech.alignment == "measured"
    assert symbol_set("phoneme-events") is PHONEMES and PHON.speech.vocab_size == len(PHONEMES)
    assert PHON.sampling.temperature == ALIGNED.sampling.temperature == 0.01 and PHON.sampling.cfg_scale == 1.0
    assert PHON.model.encoder_dim == ALIGNED.model.encoder_dim
    xs = SPEECH_PRESETS["djepa-speech-xs-phonemes"]
    assert xs.model == SPEECH_PRESETS["djepa-speech-xs-aligned"].model  # same network, other embedding rows
    model = TextToSpeechDJEPA(PHON.model, PHON.speech)
    assert model.duration_model.emb.num_embeddings == len(PHONEMES)


def test_text_becomes_the_spoken_phonemes() -> None:
    gen = SpeechGenerator.from_config(PHON, seed=0)
    text = gen.encode_texts(["Dr. Smith paid $5.", "Hello, world!"])
    for row, raw in zip(text, ["Dr. Smith paid $5.", "Hello, world!"], strict=True):
        symbols = spoken_phonemes(normalize(raw))
        assert row[row != 0].tolist() == PHONEMES.encode(symbols)
    assert PHONEMES.decode(text[1].tolist()) == "həloʊ,wɜːld!"
    # the duration model reads them: one duration per symbol
    d = gen.model.duration_model(text)
    assert d.shape == text.shape and (d[text == 0] == 0).all()


def test_generation_from_text_and_round_trip(tmp_path: Path) -> None:
    gen = SpeechGenerator.from_config(PHON, seed=0)
    with torch.no_grad():
        gen.model.length_model.durations.fill_(1.0)
        gen.model.length_model.bias.fill_(4.0)
    settings = gen.settings(num_steps=2, head_steps=2)
    audio = gen.generate(["A cat sat.", "Hello there."], seeds=[0, 1], settings=settings, vocoder_iters=2)
    frames = gen.frames(gen.encode_texts(["A cat sat.", "Hello there."]))
    assert [a.numel() for a in audio] == [int(f) * gen.tokenizer.cfg.hop for f in frames]
    assert all(torch.isfinite(a).all() for a in audio)
    path = save_speech_generator(tmp_path / "phonemes.safetensors", gen, dtype=torch.float16)
    again = load_speech_generator(path)
    assert again.config == PHON
    assert torch.equal(again.encode_texts(["A cat sat."]), gen.encode_texts(["A cat sat."]))
