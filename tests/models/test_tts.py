"""Text-to-speech D-JEPA: prefix conditioning, equal drop counts, length model, sampling, generator."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from djepa_core.models.djepa import DJEPA
from djepa_core.models.durations import LengthModel
from djepa_core.models.tts import SpeechBatch, TextToSpeechDJEPA, equalize_drop
from djepa_core.samplers.noise import PerSampleNoise
from djepa_core.samplers.speech import sample_speech_tokens
from djepa_core.speech_pipeline import (
    SPEECH_PRESETS,
    SpeechGenerator,
    load_speech_generator,
    save_speech_generator,
)

TINY = SPEECH_PRESETS["djepa-speech-tiny"]


def tiny_batch(b: int = 4, seed: int = 0) -> SpeechBatch:
    g = torch.Generator().manual_seed(seed)
    cfg = TINY.model
    lengths = torch.randint(8, cfg.seq_len + 1, (b,), generator=g)
    tokens = torch.full((b, cfg.seq_len, cfg.token_dim), TINY.speech.silence)
    pattern = torch.sin(torch.arange(cfg.seq_len)[:, None] / 3 + torch.arange(cfg.token_dim)[None] / 10)  # learnable
    for i, n in enumerate(lengths.tolist()):
        tokens[i, :n] = pattern[:n]
    text = torch.randint(1, TINY.speech.vocab_size, (b, 20), generator=g)
    return SpeechBatch(tokens, lengths, text)


def test_the_backbone_is_djepa_with_a_text_prefix() -> None:
    model = TextToSpeechDJEPA(TINY.model, TINY.speech)
    base = set(DJEPA(TINY.model).state_dict())
    names = set(model.state_dict())
    assert base <= names
    assert names - base == {"text_emb.weight", "length_model.durations", "length_model.bias"}
    assert model.buffer.shape == (1, TINY.speech.num_buffer + TINY.speech.max_text, TINY.model.encoder_dim)
    prefix = model.text_prefix(torch.tensor([[3, 4, 5]]))
    assert prefix.shape == (1, TINY.model.buffer_size, TINY.model.encoder_dim)
    with pytest.raises(ValueError, match="longer"):
        model.text_prefix(torch.ones(1, TINY.speech.max_text + 1, dtype=torch.long))


def test_equalize_drop() -> None:
    real = torch.arange(10)[None] < torch.tensor([[10], [6], [3]])
    masked = torch.zeros(3, 10, dtype=torch.bool)
    masked[0, :7] = True
    masked[1, 1:4] = True
    masked[2, 0] = True
    tie = torch.linspace(0.9, 0, 10).expand(3, -1)
    drop = equalize_drop(masked, real, tie, 7)
    assert drop.sum(1).tolist() == [7, 7, 7]
    assert (drop | ~masked).all()  # masked slots are always dropped
    assert drop[1, 6:].all() and not drop[1, [0, 4, 5]].any()  # silence first
    assert drop[2, 3:].sum() == 6 and drop[2, 0]  # all from silence
    with pytest.raises(ValueError):
        equalize_drop(masked, real, tie, 5)


def test_loss_trains_and_skips_silence(one_thread: None) -> None:
    torch.manual_seed(0)
    model = TextToSpeechDJEPA(TINY.model, TINY.speech).train()
    batch = tiny_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        first = model.loss(batch, generator=g)
    assert math.isfinite(float(first.total)) and float(first.jepa) > 0
    losses = []
    for _ in range(40):
        out = model.loss(batch, generator=g)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(float(out.denoise.detach()))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert model.text_emb.weight.grad is not None and model.text_emb.weight.grad.abs().sum() > 0
    # a batch padded to its longest row uses fewer slots; longer rows than slots are refused
    short = SpeechBatch(batch.tokens[:, :40], batch.lengths.clamp(max=40), batch.text)
    assert math.isfinite(float(model.loss(short, generator=g).total.detach()))
    with pytest.raises(ValueError, match="do not fit"):
        model.loss(SpeechBatch(batch.tokens[:, :4], batch.lengths, batch.text), generator=g)


def test_length_model_fit_recovers_durations() -> None:
    g = torch.Generator().manual_seed(0)
    vocab = 12
    true = torch.rand(vocab, generator=g) * 5
    true[0] = 0
    text = torch.randint(1, vocab, (200, 30), generator=g)
    n = torch.randint(5, 31, (200, 1), generator=g)
    text = text * (torch.arange(30)[None] < n)  # padding (0) is not counted
    frames = LengthModel.counts(text, vocab) @ true + 7.0
    lm = LengthModel(vocab)
    assert lm.fit(text, frames) < 1e-4
    assert torch.allclose(lm.durations[1:], true[1:], atol=1e-3)
    assert float(lm.bias.detach()) == pytest.approx(7.0, abs=1e-2)
    assert torch.allclose(lm(text[:3], speed=2.0), frames[:3] / 2, rtol=1e-4)


def test_sampling_silence_lengths_and_batch_independence(one_thread: None) -> None:
    torch.manual_seed(1)
    model = TextToSpeechDJEPA(TINY.model, TINY.speech).eval()
    gen = SpeechGenerator(TINY, model)
    settings = gen.settings(num_steps=6, cfg_scale=2.0)
    text = torch.randint(1, TINY.speech.vocab_size, (3, 16), generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([5, 64, 23])
    out = sample_speech_tokens(model, text, lengths, PerSampleNoise([7, 8, 9]), settings)
    assert out.shape == (3, 64, TINY.model.token_dim) and torch.isfinite(out).all()
    for i, n in enumerate(lengths.tolist()):
        assert (out[i, n:] == TINY.speech.silence).all() and (out[i, :n] != TINY.speech.silence).any()
    # a row depends only on its own text, length and seed, not on the rest of the batch
    alone = sample_speech_tokens(model, text[2:], lengths[2:], PerSampleNoise([9]), settings)
    assert torch.allclose(alone[0], out[2], atol=1e-4)
    with pytest.raises(ValueError, match="lengths"):
        sample_speech_tokens(model, text[:1], torch.tensor([65]), PerSampleNoise([0]), settings)
    # fewer slots (a length bucket): same contract over L' slots
    few = sample_speech_tokens(model, text[::2], lengths[::2], PerSampleNoise([7, 9]), settings, slots=32)
    assert few.shape == (2, 32, TINY.model.token_dim) and (few[0, 5:] == TINY.speech.silence).all()
    with pytest.raises(ValueError, match="slots"):
        sample_speech_tokens(model, text[:1], lengths[:1], PerSampleNoise([0]), settings, slots=65)


def test_generator_lengths_speed_errors_and_checkpoint(one_thread: None, tmp_path: Path) -> None:
    gen = SpeechGenerator.from_config(TINY, seed=0)
    with torch.no_grad():  # a plausible length model: 1.5 frames per symbol + 4
        gen.model.length_model.durations.fill_(1.5)
        gen.model.length_model.bias.fill_(4.0)
    texts = ["Hi 2!", "About 1455."]
    audio = gen.generate(texts, seeds=[1, 2], settings=gen.settings(num_steps=3), vocoder_iters=4)
    ids = gen.encode_texts(texts)
    frames = gen.frames(ids).tolist()
    assert [a.numel() for a in audio] == [f * 256 for f in frames]
    assert frames[0] == round(1.5 * len("hi two!") + 4)
    slow = gen.frames(ids, speed=0.5).tolist()
    assert slow == [round((1.5 * n + 4) / 0.5) for n in (len("hi two!"), len("about fourteen fifty-five."))]
    for bad, match in (([""], "nothing to say"), (["word " * 20], "at most"), ([], "at least one")):
        with pytest.raises(ValueError, match=match):
            gen.generate(bad)
    with pytest.raises(ValueError, match="speed"):
        gen.generate(["hello"], speed=0.0)
    with torch.no_grad():
        gen.model.length_model.bias.fill_(1000.0)
    with pytest.raises(ValueError, match="longer than"):
        gen.generate(["hello"])
    with torch.no_grad():
        gen.model.length_model.bias.fill_(4.0)
    path = save_speech_generator(tmp_path / "tts.safetensors", gen)
    back = load_speech_generator(path)
    assert back.config == gen.config
    again = back.generate(texts, seeds=[1, 2], settings=back.settings(num_steps=3), vocoder_iters=4)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(audio, again, strict=True))


def test_smoke_training_on_a_generated_corpus(one_thread: None, tmp_path: Path) -> None:
    import shutil

    from tests.conftest import REQUIRE_FIXTURES

    if shutil.which("espeak-ng") is None:
        if REQUIRE_FIXTURES:
            pytest.fail("espeak-ng is not installed (apt-get install espeak-ng; DJEPA_REQUIRE_FIXTURES=1)")
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from djepa_core.data.speech_corpus import build_corpus
    from djepa_core.speech_train import train_speech

    corpus = build_corpus(tmp_path / "corpus", 8, seed=0)
    gen, history = train_speech(corpus, "djepa-speech-xs", steps=2, batch_size=2, warmup=1, log_every=1)
    assert len(history) == 2 and all(math.isfinite(r["loss"]) for r in history)
    assert float(gen.model.length_model.bias.detach()) != 0  # fit on the corpus
    audio = gen.generate(["About 1455."], seeds=[0], settings=gen.settings(num_steps=2, head_steps=2),
                         vocoder_iters=2)[0]
    assert 0.3 < audio.numel() / 22050 < 4  # a plausible duration for four words
