"""The measured phoneme-level alignment of an espeak-ng corpus (`phonemes.csv`, `data/espeak_align.py`), the
`phoneme-events` symbols at sampling, and their use by the speech loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from djepa_core.data.espeak_align import (
    PHONEME_ALIGNMENTS,
    PhonemeTime,
    pause_events,
    phoneme_durations,
    phoneme_times,
    read_phoneme_alignments,
    spoken_phonemes,
)
from djepa_core.data.ljspeech import LJSpeech
from djepa_core.data.speech_batches import SpeechExamples
from djepa_core.speech_pipeline import SPEECH_PRESETS
from djepa_core.text import PHONEMES, text_to_ids

PHON = SPEECH_PRESETS["djepa-speech-xs-phonemes"]  # (its speech settings and slots only)
CHARS = SPEECH_PRESETS["djepa-speech-xs-aligned"]

# (type, text position 1-based, ms, IPA name) of "ab cd, ef." as the library reports them in IPA mode:
# word 1 at 0 ms, an in-word syllable break (unnamed, followed by a phoneme), word 2, a comma pause (unnamed,
# followed by the next word), word 3, the final pause twice and the end event
EVENTS = [(1, 1, 0.0, ""), (7, 1, 10.0, "a"), (7, 1, 30.0, ""), (7, 1, 40.0, "oʊ"),
          (1, 4, 60.0, ""), (7, 4, 70.0, "k"), (7, 4, 90.0, ""), (5, 4, 120.0, ""),
          (1, 8, 120.0, ""), (7, 8, 120.0, "ɛ"), (7, 8, 150.0, "f"), (7, 10, 170.0, ""), (7, 10, 190.0, ""),
          (5, 10, 200.0, "")]
TEXT = "ab cd, ef."


def test_pauses_and_syllable_breaks() -> None:
    pauses = pause_events(EVENTS)
    assert [i for i, p in enumerate(pauses) if p] == [6, 11, 12]  # not the break at 30 ms
    assert pause_events([(7, 1, 0.0, "_:"), (7, 1, 5.0, "h")]) == [True, False]  # names without IPA


def test_phoneme_times_and_durations() -> None:
    times = phoneme_times(EVENTS, TEXT)
    assert times == [PhonemeTime("a", 10.0), PhonemeTime("-", 30.0), PhonemeTime("oʊ", 40.0),
                     PhonemeTime(" ", 60.0), PhonemeTime("k", 70.0), PhonemeTime(",", 90.0),
                     PhonemeTime("ɛ", 120.0), PhonemeTime("f", 150.0), PhonemeTime(".", 170.0)]
    symbols, ms = phoneme_durations(times, 200.0)
    assert symbols == "a-oʊ k,ɛf."
    # the first symbol takes the leading silence, a two-character phoneme splits its time, the last the rest
    assert ms == pytest.approx([30.0, 10.0, 10.0, 10.0, 10.0, 20.0, 30.0, 30.0, 20.0, 30.0])
    assert len(PHONEMES.encode(symbols)) == len(symbols)
    # characters outside the symbol set give their time to the symbol before
    symbols, ms = phoneme_durations([PhonemeTime("a", 0.0), PhonemeTime("§", 10.0), PhonemeTime("b", 20.0)], 30.0)
    assert symbols == "ab" and ms == pytest.approx([20.0, 10.0])
    with pytest.raises(ValueError, match="no phoneme"):
        phoneme_durations([PhonemeTime("§", 0.0)], 10.0)


def test_read_phoneme_alignments(tmp_path: Path) -> None:
    assert read_phoneme_alignments(tmp_path) == {}
    (tmp_path / PHONEME_ALIGNMENTS).write_text("X-1|441|a b|10.0 0.0 10.0\n", encoding="utf-8")
    a = read_phoneme_alignments(tmp_path)["X-1"]
    assert (a.samples, a.symbols, a.ms) == (441, "a b", [10.0, 0.0, 10.0])
    (tmp_path / PHONEME_ALIGNMENTS).write_text("X-1|441|ab|10.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"phonemes.csv:1: .*2 symbols, 1 durations"):
        read_phoneme_alignments(tmp_path)


@pytest.fixture
def corpus(espeak_corpus: Path) -> Path:
    return espeak_corpus


def test_a_built_corpus_has_phoneme_timings_that_sampling_reproduces(corpus: Path) -> None:
    ds = LJSpeech(corpus)
    aligned = read_phoneme_alignments(corpus)
    assert set(aligned) == {u.id for u in ds.items}
    for i, item in enumerate(ds.items):
        a = aligned[item.id]
        assert a.samples == ds.audio(i).numel()
        assert sum(a.ms) == pytest.approx(1000.0 * a.samples / 22050, abs=0.5) and min(a.ms) >= 0
        assert a.symbols[-1] in ".!?" and a.ms[-1] > 100  # the final pause
        assert a.symbols.count(" ") + a.symbols.count(",") >= 2  # word boundaries
        # sampling speaks the text again in this process (a used library): the same symbols
        assert spoken_phonemes(item.normalized) == a.symbols
        assert text_to_ids(item.text, "phoneme-events") == PHONEMES.encode(a.symbols)


def test_loader_takes_phoneme_ids_and_durations(corpus: Path, tmp_path: Path) -> None:
    ds = LJSpeech(corpus)
    aligned = read_phoneme_alignments(corpus)
    ex = SpeechExamples(ds, PHON.speech, PHON.model.seq_len)
    assert len(ex) == len(ds) and all(d is not None for d in ex.durations)
    for i, uid in enumerate(ex.uids):
        d = ex.durations[i]
        assert ex.ids[i].tolist() == PHONEMES.encode(aligned[uid].symbols)
        assert d is not None and d.shape == ex.ids[i].shape and float(d.sum()) == pytest.approx(ex.frames[i], rel=1e-4)
    batch = ex.batch([0, 1])
    assert batch.durations is not None and batch.durations.shape == batch.text.shape
    # a feature cache of character symbols serves the phoneme preset: same mel tokens, phoneme ids and durations
    chars = SpeechExamples(ds, CHARS.speech, CHARS.model.seq_len)
    chars.save(tmp_path / "chars.pt")
    with pytest.raises(ValueError, match="other symbols"):
        SpeechExamples.load(tmp_path / "chars.pt", PHON.speech, PHON.model.seq_len)
    again = SpeechExamples.load(tmp_path / "chars.pt", PHON.speech, PHON.model.seq_len, corpus=corpus)
    assert again.uids == ex.uids and all(torch.equal(a, b) for a, b in zip(again.ids, ex.ids, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(again.tokens, ex.tokens, strict=True))
    assert all(a is not None and b is not None and torch.allclose(a, b)
               for a, b in zip(again.durations, ex.durations, strict=True))
    # without phonemes.csv: ids from the library, no durations
    bare = tmp_path / "bare"
    shutil.copytree(corpus, bare)
    (bare / PHONEME_ALIGNMENTS).unlink()
    plain = SpeechExamples(LJSpeech(bare), PHON.speech, PHON.model.seq_len)
    assert all(torch.equal(a, b) for a, b in zip(plain.ids, ex.ids, strict=True))
    assert all(d is None for d in plain.durations) and plain.batch([0, 1]).durations is None
