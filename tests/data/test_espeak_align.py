"""Measured alignments of an espeak-ng corpus (`data/espeak_align.py`) and their use by the speech loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from djepa_core.data.espeak_align import (
    ALIGNMENTS,
    WordTime,
    char_durations,
    read_alignments,
    word_times,
)
from djepa_core.data.ljspeech import LJSpeech
from djepa_core.data.speech_batches import SpeechExamples
from djepa_core.speech_pipeline import SPEECH_PRESETS

ALIGNED = SPEECH_PRESETS["djepa-speech-xs-aligned"]  # (only its speech settings and slots: 17 s, 192 symbols)


def test_char_durations_share_words_and_pauses() -> None:
    text = "ab cd, ef."
    #       0123456789
    words = [WordTime(0, 10.0, 50.0), WordTime(3, 50.0, 90.0), WordTime(7, 130.0, 170.0)]
    d = char_durations(text, words, 200.0)
    assert len(d) == len(text) and sum(d) == pytest.approx(200.0)
    assert d[0] == pytest.approx(30.0) and d[1] == pytest.approx(20.0)  # the 10 ms lead goes to the first letter
    assert d[2] == pytest.approx(0.0)  # a space without a pause
    assert d[3] == pytest.approx(20.0) and d[4] == pytest.approx(20.0)
    assert d[5] == pytest.approx(20.0) and d[6] == pytest.approx(20.0)  # ", " shares the 40 ms pause
    assert d[7] == pytest.approx(20.0) and d[9] == pytest.approx(30.0)  # "." holds the final pause
    # a word event that covers two words ("that the"): its time spreads over both, the space included
    d = char_durations("ab cd.", [WordTime(0, 0.0, 50.0)], 60.0)
    assert d[:5] == pytest.approx([10.0] * 5) and d[5] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="do not fit"):
        char_durations("ab", [WordTime(5, 0.0, 1.0)], 10.0)
    with pytest.raises(ValueError, match="no word"):
        char_durations("ab", [], 10.0)


def test_word_times_end_at_the_next_pause() -> None:
    # (type, text position 1-based, ms, phoneme): words at 1 and 4, a pause phoneme at 80 ms, the end at 120
    events = [(1, 1, 0.0, ""), (7, 1, 10.0, "h"), (7, 1, 80.0, "_:"), (1, 4, 100.0, ""), (7, 4, 110.0, "_")]
    assert word_times(events, 120.0) == [WordTime(0, 0.0, 80.0), WordTime(3, 100.0, 110.0)]
    out_of_order = [(1, 4, 0.0, ""), (1, 2, 10.0, "")]
    assert word_times(out_of_order, 50.0) == [WordTime(3, 0.0, 50.0)]


@pytest.fixture
def corpus(espeak_corpus: Path) -> Path:
    return espeak_corpus


def test_a_built_corpus_is_aligned(corpus: Path) -> None:
    import json

    info = json.loads((corpus / "corpus.json").read_text())
    assert info["alignments"] == {"file": ALIGNMENTS, "phonemes": "phonemes.csv", "aligned": 5, "left_out": 0}
    aligned = read_alignments(corpus)
    ds = LJSpeech(corpus)
    assert set(aligned) == {u.id for u in ds.items}
    for i, item in enumerate(ds.items):
        a = aligned[item.id]
        assert a.samples == ds.audio(i).numel()  # the aligned audio is the written audio
        total_ms = 1000.0 * a.samples / 22050
        starts = [w.start for w in a.words]
        assert starts == sorted(starts) and [w.pos for w in a.words] == sorted({w.pos for w in a.words})
        assert all(w.start <= w.end <= total_ms + 1 for w in a.words)
        assert a.words[0].pos == 0 and a.words[0].start < 300  # the speech starts at once
        assert a.words[-1].end < total_ms  # the final pause
        text = item.normalized
        assert all(w.pos == 0 or text[w.pos - 1] in " -" for w in a.words)  # events start words
        assert 0.7 * len(text.split()) <= len(a.words) <= len(text.split()) + text.count("-")
        d = char_durations(text, a.words, total_ms)
        assert sum(d) == pytest.approx(total_ms) and min(d) >= 0


def test_loader_with_and_without_the_alignments(corpus: Path, tmp_path: Path) -> None:
    ds = LJSpeech(corpus)
    ex = SpeechExamples(ds, ALIGNED.speech, ALIGNED.model.seq_len)
    usable = [i for i in range(len(ex))]
    assert usable and all(ex.durations[i] is not None for i in usable)
    for i in usable:
        d = ex.durations[i]
        assert d is not None and d.shape == ex.ids[i].shape and float(d.sum()) == pytest.approx(ex.frames[i], rel=1e-4)
    batch = ex.batch(usable[:2])
    assert batch.durations is not None and batch.durations.shape == batch.text.shape
    assert ((batch.durations > 0) <= (batch.text != 0)).all()  # nothing at padding
    # a saved cache keeps them
    ex.save(tmp_path / "cache.pt")
    again = SpeechExamples.load(tmp_path / "cache.pt", ALIGNED.speech, ALIGNED.model.seq_len)
    assert all(torch.equal(a, b) for a, b in zip(again.durations, ex.durations, strict=True))  # type: ignore[arg-type]
    # the same corpus without alignments.csv: it loads, no durations, batches without them
    bare = tmp_path / "bare"
    shutil.copytree(corpus, bare)
    (bare / ALIGNMENTS).unlink()
    plain = SpeechExamples(LJSpeech(bare), ALIGNED.speech, ALIGNED.model.seq_len)
    assert len(plain) == len(ex) and all(d is None for d in plain.durations)
    assert plain.batch([0, 1]).durations is None
