"""Text-to-speech on the measured alignment (`SpeechConfig.alignment="measured"`): the duration model, the
local condition from measured or predicted durations, and `speed`."""

from __future__ import annotations

import pytest
import torch

from djepa_core.models.durations import DurationModel, proportional_alignment
from djepa_core.models.tts import SpeechBatch, SpeechConfig, TextToSpeechDJEPA
from djepa_core.speech_pipeline import SPEECH_PRESETS, SpeechGenerator, load_speech_generator, save_speech_generator

ALIGNED = SPEECH_PRESETS["djepa-speech-tiny-aligned"]
LOCAL_NP = SPEECH_PRESETS["djepa-speech-tiny-local-np"]


def test_config_and_layout() -> None:
    with pytest.raises(ValueError, match="alignment must be"):
        SpeechConfig(local_text=True, alignment="guessed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs local_text"):
        SpeechConfig(alignment="measured")
    assert ALIGNED.speech.alignment == "measured" and not ALIGNED.speech.text_prefix
    old = TextToSpeechDJEPA(LOCAL_NP.model, LOCAL_NP.speech)
    new = TextToSpeechDJEPA(ALIGNED.model, ALIGNED.speech)
    extra = set(new.state_dict()) - set(old.state_dict())
    assert extra and all(k.startswith("duration_model.") for k in extra)  # the proportional layout is untouched
    assert set(old.state_dict()) <= set(new.state_dict())


def test_duration_model_shapes_and_fit() -> None:
    torch.manual_seed(0)
    model = DurationModel(vocab_size=10, width=16)
    text = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]])
    d = model(text)
    assert d.shape == text.shape and (d[text == 0] == 0).all() and (d >= 0).all()
    # a learnable rule: symbol s lasts s frames
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 10, (64, 12), generator=g)
    ids[:, 9:] = 0
    target = ids.float()
    err = model.fit(ids, target, steps=300, batch_size=32, lr=1e-2)
    assert err < 1.0
    with torch.no_grad():
        pred = model(ids)
    assert (pred[ids == 0] == 0).all() and float(((pred - target).abs() * (ids != 0)).max()) < 3.0


def test_measured_or_predicted_durations_place_the_text() -> None:
    torch.manual_seed(0)
    model = TextToSpeechDJEPA(ALIGNED.model, ALIGNED.speech).eval()
    text = torch.tensor([[3, 4, 0], [5, 6, 7]])
    frames = torch.tensor([16, 24])
    measured = torch.tensor([[4.0, 12.0, 0.0], [8.0, 8.0, 8.0]])
    sym, tail = model.symbol_durations(text, measured)
    assert tail == 0.0 and (sym[text == 0] == 0).all() and (sym[text != 0] > 0).all()
    local = model.local_condition(text, frames, slots=6, durations=measured)
    assert local is not None and local.shape == (2, 6, ALIGNED.model.encoder_dim)
    assert (local[0, 4:] == 0).all() and local[1].abs().sum(-1).gt(0).all()  # row 0 ends after 16 frames
    # symbol 0 of row 0 spans frames [0, 4) (slot 0), symbol 1 the rest: slots 1-3 see the same symbol
    idx, _ = proportional_alignment(sym, frames, 6, ALIGNED.speech.frames_per_token, tail)
    assert idx[0, :4].tolist() == [0, 1, 1, 1] and idx[1].tolist() == [0, 0, 1, 1, 2, 2]
    predicted = model.local_condition(text, frames, slots=6)  # no measurement: the duration model's
    assert predicted is not None and predicted.shape == local.shape
    null = model.local_condition(torch.zeros_like(text), frames, slots=6)
    assert null is not None and (null == 0).all()  # the guidance's empty text
    # training loss with and without measured durations
    batch = SpeechBatch(torch.randn(2, 6, ALIGNED.model.token_dim), torch.tensor([4, 6]), text, frames=frames,
                        durations=measured)
    model.train()
    for b in (batch, SpeechBatch(batch.tokens, batch.lengths, batch.text, frames=frames)):
        out = model.loss(b, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(out.total)


def test_speed_and_checkpoint_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    gen = SpeechGenerator.from_config(ALIGNED, seed=0)
    with torch.no_grad():
        gen.model.length_model.durations.fill_(1.0)
        gen.model.length_model.bias.fill_(4.0)
    text = gen.encode_texts(["hello there.", "a cat."])
    slow, fast = gen.frames(text, 1.0), gen.frames(text, 2.0)
    assert (fast < slow).all() and torch.allclose(fast.float(), (slow.float() / 2), atol=1)
    # the local condition follows the (speed-scaled) frames: at double speed the text ends in half the slots
    loc_slow = gen.model.local_condition(text, slow, slots=8)
    loc_fast = gen.model.local_condition(text, fast, slots=8)
    assert loc_slow is not None and loc_fast is not None
    inside = loc_fast.abs().sum(-1).gt(0).sum(1)
    assert (inside < loc_slow.abs().sum(-1).gt(0).sum(1)).all()
    audio = gen.generate(["a cat."], seeds=[0], settings=gen.settings(num_steps=2, head_steps=2), speed=2.0,
                         vocoder_iters=2)
    assert audio[0].numel() == int(fast[1]) * gen.tokenizer.cfg.hop
    path = save_speech_generator(Path(str(tmp_path)) / "aligned.safetensors", gen, dtype=torch.float16)
    again = load_speech_generator(path)
    assert again.config == ALIGNED
    assert torch.equal(again.model.duration_model.out.weight, gen.model.duration_model.out.weight.half().float())


def test_temperature_scales_the_flow_heads_initial_noise() -> None:
    from djepa_core.samplers.noise import PerSampleNoise
    from djepa_core.speech_pipeline import TemperedNoise

    a = PerSampleNoise([3]).normal((4, 5), [4], device=torch.device("cpu"), dtype=torch.float32)
    b = TemperedNoise(PerSampleNoise([3]), 0.25).normal((4, 5), [4], device=torch.device("cpu"),
                                                        dtype=torch.float32)
    assert torch.allclose(b, 0.25 * a)
    assert torch.equal(TemperedNoise(PerSampleNoise([3]), 0.25).orders(1, 6, torch.device("cpu")),
                       PerSampleNoise([3]).orders(1, 6, torch.device("cpu")))
    gen = SpeechGenerator.from_config(ALIGNED, seed=0)
    assert gen.config.model.head == "flow"
    with torch.no_grad():
        gen.model.length_model.durations.fill_(1.0)
        gen.model.length_model.bias.fill_(4.0)

    def speak(temperature: float) -> torch.Tensor:
        settings = gen.settings(num_steps=2, head_steps=2, temperature=temperature)
        return gen.generate(["a cat."], seeds=[0], settings=settings, vocoder_iters=2)[0]

    one, cold = speak(1.0), speak(0.05)
    assert torch.equal(one, speak(1.0)) and one.shape == cold.shape and not torch.equal(one, cold)
