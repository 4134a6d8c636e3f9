"""Text-to-speech with the per-slot local text condition (`SpeechConfig.local_text`): alignment, shapes, switch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from djepa_core.models.durations import proportional_alignment
from djepa_core.models.tts import SpeechConfig, TextToSpeechDJEPA
from djepa_core.samplers.noise import PerSampleNoise
from djepa_core.samplers.speech import sample_speech_tokens
from djepa_core.speech_pipeline import SPEECH_PRESETS, SpeechGenerator, with_speech
from tests.models.test_tts import tiny_batch

TINY = SPEECH_PRESETS["djepa-speech-tiny"]
LOCAL = SPEECH_PRESETS["djepa-speech-tiny-local"]
LOCAL_NP = SPEECH_PRESETS["djepa-speech-tiny-local-np"]


def test_proportional_alignment_stretches_durations_to_the_frames() -> None:
    # symbols of 1, 3, 0 (pad) durations over 16 frames: symbol 0 spans frames [0, 4), symbol 1 [4, 16)
    durations = torch.tensor([[1.0, 3.0, 0.0], [2.0, 2.0, 0.0]])
    idx, phase = proportional_alignment(durations, torch.tensor([16, 8]), slots=5, frames_per_token=4)
    # slot centres at frames 2, 6, 10, 14, 18
    assert idx[0].tolist() == [0, 1, 1, 1, 1]
    assert idx[1].tolist() == [0, 1, 1, 1, 1]  # past the end: the last real symbol, never padding
    assert phase[0, 0] == pytest.approx(0.5) and phase[0, 1] == pytest.approx(2 / 12)
    assert phase[1, 1] == pytest.approx(0.5) and phase[1, 4] == 1.0
    assert ((phase >= 0) & (phase <= 1)).all()


def test_the_switch_and_shapes() -> None:
    with pytest.raises(ValueError, match="text must condition"):
        SpeechConfig(local_text=False, text_prefix=False)
    assert LOCAL.model.buffer_size == TINY.model.buffer_size  # the prefix is kept
    assert LOCAL_NP.model.buffer_size == LOCAL_NP.speech.num_buffer  # no text rows
    assert with_speech(TINY, local_text=True) == dataclasses.replace(LOCAL, name=TINY.name)
    old = TextToSpeechDJEPA(TINY.model, TINY.speech)
    new = TextToSpeechDJEPA(LOCAL.model, LOCAL.speech)
    extra = set(new.state_dict()) - set(old.state_dict())
    assert extra and all(k.startswith("local_") for k in extra)  # the old layout is untouched
    text = torch.tensor([[3, 4, 5, 0], [0, 0, 0, 0]])
    frames = torch.tensor([20, 20])
    prefix, local = old.condition(text, frames, slots=10)
    assert prefix.shape == (2, TINY.speech.prefix_len, TINY.model.encoder_dim) and local is None
    with torch.no_grad():
        new.length_model.durations.fill_(2.0)
    prefix, local = new.condition(text, frames, slots=10)
    assert prefix.shape == (2, LOCAL.speech.prefix_len, LOCAL.model.encoder_dim)
    assert local is not None and local.shape == (2, 10, LOCAL.model.encoder_dim)
    assert local[0, :5].abs().sum(-1).gt(0).all()  # the 20 frames fill 5 slots of 4 frames
    assert (local[0, 5:] == 0).all() and (local[1] == 0).all()  # past the end; the empty (null) text
    np_model = TextToSpeechDJEPA(LOCAL_NP.model, LOCAL_NP.speech)
    prefix, local = np_model.condition(text, frames, slots=10)
    assert prefix.shape == (2, LOCAL_NP.speech.num_buffer, LOCAL_NP.model.encoder_dim) and local is not None
    z = np_model(torch.zeros(2, 10, LOCAL_NP.model.token_dim), torch.zeros(2, 10), prefix, local)
    assert z.shape == (2, 10, LOCAL_NP.model.decoder_dim)


@pytest.mark.parametrize("preset", ["djepa-speech-tiny-local", "djepa-speech-tiny-local-np"])
def test_local_models_train_and_sample(one_thread: None, preset: str) -> None:
    config = SPEECH_PRESETS[preset]
    torch.manual_seed(0)
    model = TextToSpeechDJEPA(config.model, config.speech).train()
    with torch.no_grad():
        model.length_model.durations.fill_(2.0)
    batch = tiny_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        out = model.loss(batch, generator=g)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(float(out.denoise.detach()))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert model.local_emb.weight.grad is not None and model.local_emb.weight.grad.abs().sum() > 0
    model.eval()
    gen = SpeechGenerator(config, model)
    settings = gen.settings(num_steps=4, cfg_scale=2.0)
    text = torch.randint(1, config.speech.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([9, 30])
    tokens = sample_speech_tokens(model, text, lengths, PerSampleNoise([3, 4]), settings, frames=lengths * 4 - 1)
    assert tokens.shape == (2, config.model.seq_len, config.model.token_dim) and torch.isfinite(tokens).all()
    assert (tokens[0, 9:] == config.speech.silence).all()
    alone = sample_speech_tokens(model, text[1:], lengths[1:], PerSampleNoise([4]), settings,
                                 frames=lengths[1:] * 4 - 1)
    assert torch.allclose(alone[0], tokens[1], atol=1e-4)  # rows stay independent of their batch
