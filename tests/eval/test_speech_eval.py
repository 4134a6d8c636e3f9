"""`djepa eval speech`: word error rate, length-aligned mel L1, the corpus language model, the recognizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from djepa_core.eval.speech import bigram_arpa, edit_distance, length_aligned_l1, word_error_rate, words
from tests.conftest import REQUIRE_FIXTURES


def need(tool: str, what: str) -> None:
    import importlib.util

    present = shutil.which(tool) is not None if tool == "espeak-ng" else importlib.util.find_spec(tool) is not None
    if not present:
        if REQUIRE_FIXTURES:
            pytest.fail(f"{tool} is not installed ({what}; DJEPA_REQUIRE_FIXTURES=1)")
        pytest.skip(f"{tool} is not installed ({what})")


def test_words_and_word_error_rate() -> None:
    assert words("Eighty-six cents, Mr. Smith's!") == ["eighty", "six", "cents", "mr", "smith's"]
    assert edit_distance(["a", "b", "c", "d"], ["a", "x", "c"]) == 2  # one substitution, one deletion
    assert edit_distance([], ["a", "b"]) == 2 and edit_distance(["a"], []) == 1
    assert word_error_rate(["the cat sat"], ["the cat sat"]) == 0.0
    # corpus-level: (1 substitution + 2 insertions) / 5 reference words
    assert word_error_rate(["the cat sat", "on mats"], ["the bat sat", "on the red mats"]) == pytest.approx(3 / 5)
    assert word_error_rate(["one two"], [""]) == 1.0
    with pytest.raises(ValueError):
        word_error_rate(["a"], [])
    with pytest.raises(ValueError, match="no words"):
        word_error_rate(["?!"], ["a"])


def test_length_aligned_mel_l1() -> None:
    ref = torch.linspace(0, 1, 50)[None].expand(80, -1)
    stretched = torch.linspace(0, 1, 100)[None].expand(80, -1)  # the same contour at half speed
    assert length_aligned_l1(stretched, ref) < 1e-6
    assert length_aligned_l1(ref + 0.5, ref) == pytest.approx(0.5)
    assert length_aligned_l1(ref[:, :7], ref) > 0
    with pytest.raises(ValueError):
        length_aligned_l1(ref[:40], ref)


def test_bigram_language_model_is_normalized() -> None:
    arpa = bigram_arpa(["the cat sat.", "the dog sat!", "a cat ran"])
    lines = arpa.splitlines()
    assert lines[0] == "\\data\\" and lines[-1] == "\\end\\"
    first, second = lines.index("\\1-grams:"), lines.index("\\2-grams:")
    uni = {ln.split("\t")[1]: ln.split("\t") for ln in lines[first + 1: second - 1]}
    assert {"<s>", "</s>", "the", "cat", "sat", "dog", "a", "ran"} == set(uni)
    total = sum(10 ** float(v[0]) for w, v in uni.items() if w != "<s>")
    assert total == pytest.approx(1.0, abs=1e-3)
    bi = [ln.split("\t") for ln in lines[second + 1: -2]]
    # p(w | "the") over every w: seen bigrams plus back-off mass times the unseen words' unigrams
    seen = {b.split()[1]: 10 ** float(p) for p, b in bi if b.split()[0] == "the"}
    alpha = 10 ** float(uni["the"][2])
    mass = sum(seen.values()) + alpha * sum(10 ** float(v[0]) for w, v in uni.items() if w not in seen and w != "<s>")
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_recognizer_and_the_command_on_a_generated_corpus(one_thread: None, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    need("espeak-ng", "apt-get install espeak-ng")
    need("pocketsphinx", "pip install 'djepa[speech-eval]'")
    from djepa_core.cli import main
    from djepa_core.data.ljspeech import LJSpeech
    from djepa_core.data.speech_corpus import build_corpus
    from djepa_core.eval.speech import corpus_recognizer
    from djepa_core.speech_pipeline import SPEECH_PRESETS, SpeechGenerator, save_speech_generator, with_speech

    corpus = build_corpus(tmp_path / "corpus", 24, seed=0)
    test = LJSpeech(corpus, "test")
    assert len(test) >= 1
    rec = corpus_recognizer(corpus, workdir=tmp_path)
    heard = rec.transcribe(test.audio(0), test.sample_rate)
    assert word_error_rate([test.items[0].normalized], [heard]) < 1.0  # the reference is partly understood

    config = with_speech(SPEECH_PRESETS["djepa-speech-tiny-local-np"], max_text=192)  # corpus sentences fit
    gen = SpeechGenerator.from_config(config, seed=0)
    with torch.no_grad():
        gen.model.length_model.durations.fill_(1.0)
    ckpt = save_speech_generator(tmp_path / "tts.safetensors", gen)
    out = tmp_path / "eval.json"
    assert main(["eval", "speech", "--checkpoint", str(ckpt), "--corpus", str(corpus), "--sentences", "1",
                 "--steps", "2", "--head-steps", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())["models"]["tts"]
    assert report["sentences"] == 1 and report["wer_reference"] < 1.0
    assert report["wer_generated"] >= 0 and report["mel_l1"] > 0 and report["duration_ratio_mean"] > 0
    assert len(report["rows"]) == 1 and "WER ratio" in capsys.readouterr().out
    assert main(["eval", "speech", "--checkpoint", str(ckpt)]) == 2  # no corpus
